"""The offline recogniser's whole-utterance decodes in a child process of the worker: the same
finals, in call order, no partial held back by them, and nothing lost when the child dies."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

from callstream.adapters.recognize_local import DecoderPool, PocketSphinxLive
from callstream.adapters.transcribe_local import PocketSphinxTranscriber
from callstream.audio.vad import Segmenter
from callstream.ports import LiveResult
from callstream.vocabulary import AudioLimits
from stream_server.recognition_finals import FinalsProcess

SAMPLES = Path(__file__).resolve().parents[3] / "samples"
RATE = 8000
FRAME = RATE // 50


def call(seconds: float | None = None) -> bytes:
    with wave.open(str(SAMPLES / f"support_call_{RATE}_inbound.wav")) as w:
        pcm = w.readframes(w.getnframes())
    return pcm if seconds is None else pcm[: int(seconds * RATE) * 2]


def per_utterance(pcm: bytes) -> list[str]:
    segmenter = Segmenter(RATE, "inbound", AudioLimits())
    for offset in range(0, len(pcm), 2 * FRAME):
        segmenter.receive(pcm[offset : offset + 2 * FRAME], offset // 2)
    transcriber = PocketSphinxTranscriber()  # the same decoder history as the finals'
    return [transcriber.transcribe(u.pcm, RATE, "en-US").text for u in segmenter.close()]


def recogniser(background: FinalsProcess, notify=lambda: None) -> PocketSphinxLive:
    return PocketSphinxLive(
        "inbound",
        RATE,
        AudioLimits(),
        DecoderPool(),
        PocketSphinxTranscriber(),
        background=background,
        notify=notify,
    )


def feed(live: PocketSphinxLive, pcm: bytes) -> list[LiveResult]:
    """Feed it all at once, 20 ms a frame; what came while feeding."""
    results: list[LiveResult] = []
    for offset in range(0, len(pcm), 2 * FRAME):
        live.feed(pcm[offset : offset + 2 * FRAME], offset // 2)
        results += live.results_ready()
    return results


async def hear(background: FinalsProcess, pcm: bytes) -> tuple[list[LiveResult], list[LiveResult]]:
    """Feed it all at once; returns what came before the close, and everything."""
    ready = asyncio.Event()
    live = recogniser(background, ready.set)
    fed = feed(live, pcm)
    results = [*fed, *live.close()]
    async with asyncio.timeout(120):
        while not live.finished:
            ready.clear()
            await ready.wait()
            results += live.results_ready()
    return fed, results


async def test_finals_decoded_in_the_child_are_the_same_and_hold_no_partial_back() -> None:
    background = FinalsProcess()
    try:
        fed, results = await hear(background, call())
    finally:
        background.shutdown()
    assert not [r for r in fed if r.final], "no line waited for its final to be decoded"
    assert len({r.result_id for r in fed}) >= 4, "every line's partials came as it was fed"
    finals = [r for r in results if r.final]
    assert [f.text for f in finals] == per_utterance(call())
    assert [f.start_sample for f in finals] == sorted(f.start_sample for f in finals)


async def test_a_child_killed_mid_decode_loses_no_final_and_the_next_decode_starts_another() -> (
    None
):
    background = FinalsProcess()
    try:
        first = background.submit(call(3), RATE, "en-US")
        await asyncio.wrap_future(first)  # the child is up
        child = background._child
        assert child is not None
        pending = asyncio.ensure_future(hear(background, call(12)))
        await asyncio.sleep(0.5)
        child.kill()  # mid-call: the decodes waiting fail, the recogniser decodes them itself
        _, results = await pending
        assert [r.text for r in results if r.final] == per_utterance(call(12))
        again = await asyncio.wrap_future(background.submit(call(3), RATE, "en-US"))
        assert again == (await asyncio.wrap_future(first)) and background.started == 2
    finally:
        background.shutdown()


def test_a_finals_process_shut_down_refuses_work_and_the_recogniser_decodes_here() -> None:
    background = FinalsProcess()
    background.shutdown()
    live = recogniser(background)
    pcm = call(12)
    results = [*feed(live, pcm), *live.close()]
    assert [r.text for r in results if r.final] == per_utterance(pcm) and live.finished
