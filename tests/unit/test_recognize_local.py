"""The offline live recogniser on the shared call: partials while a line is spoken, then the final
the per-utterance path gives for the same utterance. The audio is the repository's sample call;
every position asserted is in samples of the call, never a wall-clock time."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from callstream.adapters.recognize_local import DecoderPool, PocketSphinxLive
from callstream.adapters.transcribe_local import PocketSphinxTranscriber
from callstream.audio.vad import Segmenter
from callstream.ports import LiveResult
from callstream.vocabulary import AudioLimits

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
RATE = 8000
FRAME = RATE // 50


def call(track: str, seconds: float | None = None) -> bytes:
    with wave.open(str(SAMPLES / f"support_call_{RATE}_{track}.wav")) as w:
        pcm = w.readframes(w.getnframes())
    return pcm if seconds is None else pcm[: int(seconds * RATE) * 2]


def feed(recognizer: PocketSphinxLive, pcm: bytes, chunk: int = FRAME) -> list[LiveResult]:
    out: list[LiveResult] = []
    for offset in range(0, len(pcm), 2 * chunk):
        recognizer.feed(pcm[offset : offset + 2 * chunk], offset // 2)
        out += recognizer.results_ready()
    return out + recognizer.close()


@pytest.fixture(scope="module")
def inbound() -> tuple[list[LiveResult], DecoderPool]:
    pool = DecoderPool()
    live = PocketSphinxLive("inbound", RATE, AudioLimits(), pool, PocketSphinxTranscriber())
    return feed(live, call("inbound")), pool


def test_each_line_grows_while_spoken_and_settles_on_the_per_utterance_text(
    inbound: tuple[list[LiveResult], DecoderPool],
) -> None:
    results, _ = inbound
    finals = [r for r in results if r.final]
    segmenter = Segmenter(RATE, "inbound", AudioLimits())
    pcm = call("inbound")
    for offset in range(0, len(pcm), 2 * FRAME):
        segmenter.receive(pcm[offset : offset + 2 * FRAME], offset // 2)
    utterances = segmenter.close()
    per_utterance = PocketSphinxTranscriber()  # the same decoder history as the live finals'
    expected = [per_utterance.transcribe(u.pcm, RATE, "en-US").text for u in utterances]
    assert [f.text for f in finals] == expected and len(finals) == 4
    assert [(f.start_sample, f.end_sample) for f in finals] == [
        (u.start_sample, u.end_sample) for u in utterances
    ]
    for final in finals:
        partials = [r for r in results if r.result_id == final.result_id and not r.final]
        assert partials, f"no partial of {final.text!r} before its final"
        assert results.index(partials[-1]) < results.index(final)
        ends = [p.end_sample for p in partials]
        assert ends == sorted(ends) and len(set(ends)) == len(ends), "each partial covers more"
        # the first words show while the caller speaks: within a second of the line's audio
        assert ends[0] - final.start_sample <= RATE
        assert all(p.text for p in partials)


def test_one_track_borrows_one_decoder_and_gives_it_back(
    inbound: tuple[list[LiveResult], DecoderPool],
) -> None:
    _, pool = inbound
    assert pool.made == 1 and pool.take() is not None and pool.made == 1


def test_a_line_cut_short_by_the_end_of_the_track_still_gets_its_final() -> None:
    live = PocketSphinxLive(
        "inbound", RATE, AudioLimits(), DecoderPool(), PocketSphinxTranscriber()
    )
    results = feed(live, call("inbound", seconds=10.0))  # mid-way through the first line
    (final,) = [r for r in results if r.final]
    assert "been down" in final.text and final.end_sample <= 10 * RATE
    assert any(not r.final and r.result_id == final.result_id for r in results)


def test_the_same_audio_in_other_chunks_gives_the_same_lines() -> None:
    """A worker replaying a track after a restart sends other chunk sizes: the lines (ids and
    finals) are the same, so a consumer's upsert replaces what it had instead of doubling it."""
    pcm = call("inbound", seconds=21.0)
    runs = []
    for chunk in (FRAME, 5 * FRAME):
        finals = PocketSphinxTranscriber()  # a fresh decoder history each time
        live = PocketSphinxLive("inbound", RATE, AudioLimits(), DecoderPool(), finals)
        runs.append([(r.result_id, r.text) for r in feed(live, pcm, chunk) if r.final])
    assert runs[0] == runs[1] and len(runs[0]) == 2


def test_silence_and_a_click_make_no_line() -> None:
    pool = DecoderPool()
    live = PocketSphinxLive("inbound", RATE, AudioLimits(), pool, PocketSphinxTranscriber())
    click = bytes(4 * FRAME) + (b"\xff\x7f\x01\x80" * (FRAME // 2)) * 2 + bytes(100 * FRAME)
    assert [r for r in feed(live, click) if r.final and r.text] == []
    assert pool.take() is not None and pool.made <= 1, "a decoder is not kept by a dropped line"


def test_a_track_that_ends_inside_a_too_short_line_gives_its_decoder_back() -> None:
    """The segmenter drops a line under vad_min_ms even at the track's end: the decoder it
    had borrowed goes back, and any partial of it settles as an empty final."""
    from dataclasses import replace

    pool = DecoderPool()
    limits = replace(AudioLimits(), vad_min_ms=5000)  # nothing in the call is this long
    live = PocketSphinxLive("inbound", RATE, limits, pool, PocketSphinxTranscriber())
    results = feed(live, call("inbound", seconds=9.0))  # ends in the first spoken line
    assert live._decoder is None and len(pool._idle) == 1, "the decoder is back in the pool"
    assert all(r.text == "" for r in results if r.final)
    assert any(r.final for r in results) == any(not r.final for r in results)
