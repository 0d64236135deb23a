import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.audio.vad import Segmenter
from callstream.exceptions import InvalidAudioError
from callstream.vocabulary import AudioLimits
from local.vobiz_frames import read_wav

AUDIO = Path(__file__).resolve().parents[3] / "samples"
CFG = AudioLimits()


def voice(seconds: float, rate: int = 8000) -> bytes:
    """A buzzy harmonic tone with a 4 Hz tremolo: WebRTC's VAD calls it speech."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20))
    return (wave * 0.3 * (1 + 0.5 * np.sin(2 * np.pi * 4 * t)) * 12000).astype("<i2").tobytes()


def silence(seconds: float, rate: int = 8000) -> bytes:
    return bytes(2 * int(seconds * rate))


def run(pcm: bytes, rate: int = 8000, chunk: int = 320, cfg: AudioLimits = CFG):
    seg = Segmenter(rate, "inbound", cfg)
    out = []
    for i in range(0, len(pcm), chunk):
        seg.receive(pcm[i : i + chunk], i // 2)
        out += seg.utterances_ready()
    return out + seg.close()


def test_silence_gives_nothing():
    assert run(silence(3)) == []


def test_one_burst_gives_one_utterance_with_preroll_and_tail():
    (u,) = run(silence(1) + voice(1) + silence(1))
    assert u.index == 0 and not u.split
    assert u.start_ms == pytest.approx(1000 - CFG.vad_preroll_ms, abs=40)
    # the tail is 100 ms after the last voiced frame; WebRTC's VAD hangs on ~100 ms itself
    assert 2000 + 100 <= u.end_ms <= 2000 + 300
    assert len(u.pcm) == 2 * (u.end_sample - u.start_sample)
    assert u.onset_sample == pytest.approx(8000, abs=160)


def test_two_bursts_apart_give_two_and_close_together_give_one():
    apart = run(voice(0.5) + silence(1) + voice(0.5) + silence(1))
    assert [u.index for u in apart] == [0, 1]
    together = run(voice(0.5) + silence(CFG.vad_end_ms / 2000) + voice(0.5) + silence(1))
    assert len(together) == 1


def test_short_clicks_are_dropped():
    assert run(silence(0.5) + voice(0.1) + silence(1)) == []


def test_long_speech_is_split_and_the_pieces_join_up():
    cfg = AudioLimits(utterance_max_ms=2000)
    pcm = silence(0.5) + voice(5.3) + silence(1)
    pieces = run(pcm, cfg=cfg)
    assert [u.split for u in pieces] == [True, True, False]
    for a, b in itertools.pairwise(pieces):
        assert a.end_sample == b.start_sample
    first = pieces[0].start_sample
    assert b"".join(u.pcm for u in pieces) == pcm[2 * first : 2 * pieces[-1].end_sample]
    assert all(u.end_ms - u.start_ms <= 2000 for u in pieces)


def test_preroll_is_bounded_by_the_stream_start():
    (u,) = run(voice(1) + silence(1))
    assert u.start_sample == 0


def test_a_gap_inside_speech_is_zeros_and_the_span_stays_true():
    seg = Segmenter(8000, "inbound", CFG)
    speech = voice(1)
    seg.receive(speech[:8000], 0)  # 0.5 s
    seg.receive(speech[8000 + 1600 :], 4000 + 800)  # 100 ms lost
    (u,) = seg.close()
    assert len(u.pcm) == 2 * (u.end_sample - u.start_sample)
    assert u.pcm[8000 : 8000 + 1600] == bytes(1600)


def test_a_long_gap_ends_the_utterance_and_the_timeline_jumps():
    seg = Segmenter(8000, "inbound", CFG)
    seg.receive(voice(1), 0)
    seg.receive(voice(1), 80_000)  # 9 s later
    found = seg.close()
    assert len(found) == 2
    assert found[1].start_sample >= 80_000 - 8000 * CFG.vad_preroll_ms // 1000


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=900), min_size=1, max_size=40))
def test_any_split_of_the_input_gives_the_same_utterances(sizes):
    pcm = silence(0.3) + voice(0.8) + silence(0.8) + voice(0.6) + silence(0.7)
    reference = run(pcm)
    seg = Segmenter(8000, "inbound", CFG)
    found, offset, i = [], 0, 0
    while offset < len(pcm):
        size = 2 * sizes[i % len(sizes)]
        seg.receive(pcm[offset : offset + size], offset // 2)
        found += seg.utterances_ready()
        offset += size
        i += 1
    assert found + seg.close() == reference


def test_bad_input_is_refused():
    with pytest.raises(InvalidAudioError, match="44100"):
        Segmenter(44100, "inbound", CFG)
    with pytest.raises(InvalidAudioError, match="whole samples"):
        Segmenter(8000, "inbound", CFG).receive(b"\x00\x00\x00", 0)


@pytest.mark.parametrize("track", ["inbound", "outbound"])
def test_support_call_utterances_match_the_script(track):
    """Tolerance from bench/vad_accuracy.py: spans within 150 ms of the script's (worst 140)."""
    script = json.loads((AUDIO / "support_call.json").read_text())
    expected = [u for u in script["utterances"] if u["track"] == track]
    pcm, rate = read_wav(AUDIO / f"support_call_16000_{track}.wav")
    found = run(pcm, rate=rate, chunk=640)
    assert len(found) == len(expected) == 4
    for got, want in zip(found, expected, strict=True):
        assert got.start_ms == pytest.approx(want["start_s"] * 1000, abs=150)
        assert got.end_ms == pytest.approx(want["end_s"] * 1000, abs=150)


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_one_speech_detector_at_every_stream_rate_hears_the_caller_and_not_the_silence(rate):
    """The segmenter's detector and the voice agent's are one (24 kHz: a decimation)."""
    from callstream.audio.codecs import resample
    from callstream.audio.vad import speech_detector

    pcm, source = read_wav(AUDIO / "support_call_16000_inbound.wav")
    pcm = resample(pcm, source, rate)
    step = rate // 50 * 2
    is_speech = speech_detector(rate, 2)
    words = pcm[int(7.5 * rate) * 2 : int(9.5 * rate) * 2]  # "my internet has been down"
    heard = [is_speech(words[i : i + step]) for i in range(0, len(words) - step + 1, step)]
    assert sum(heard) > 0.6 * len(heard)
    quiet = [is_speech(b"\0" * step) for _ in range(60)]
    assert not any(quiet[20:]), "past its hangover, silence is no speech"
