"""How far behind the caller live recognition runs, and what it costs: the shared call at real time.

Run: .venv/bin/python -m bench.live_recognition [--calls N] [--workers N] [--rate 8000|16000]

The stream server's own seam (``stream_server.recognition.RecognitionPool``, ``--workers``
worker processes spawned as the container does, PocketSphinx in them) hears ``--calls`` copies of the shared
support call, both tracks, each 20 ms frame fed at the moment the caller would have said it.
For every result the clock starts when the last sample it covers was spoken:

* **partial lag**: a partial's arrival minus when the audio it covers up to was spoken
  (what a console shows is this far behind the caller);
* **provisional lag**: when our VAD closes the utterance (the assembler's ``UtteranceFound``,
  where the session sends the line's last partial at once as ``provisional``) minus when its
  last sample was spoken: the VAD's 500 ms of silence to be sure, and the frame;
* **final lag**: the recogniser's final's arrival minus when its utterance's last sample was
  spoken;
* **worker CPU**: the worker process's CPU seconds per second of call, per call.

Also the words: each final against the script (word error rate), beside the per-utterance path
(the same utterances decoded whole, as ``transcribe_utterance`` does) in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench.transcript_accuracy import word_error_rate
from callstream.adapters.transcribe_local import PocketSphinxTranscriber
from callstream.audio.vad import Segmenter
from callstream.ports import LiveResult
from callstream.vocabulary import AudioLimits
from local.vobiz_frames import read_wav
from stream_server.recognition import RecognitionPool
from stream_server.wiring import recognition_spawner

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = json.loads((ROOT / "samples" / "support_call.json").read_text())


def aligned(lines: list[tuple[str, float, str]]) -> list[str]:
    """Each script utterance's line: the one on its track that starts nearest (or nothing)."""
    out = []
    for u in SCRIPT["utterances"]:
        near = [
            (abs(start - u["start_s"]), text)
            for track, start, text in lines
            if track == u["track"] and abs(start - u["start_s"]) < 1.5
        ]
        out.append(min(near)[1] if near else "")
    return out


def per_utterance(tracks: dict[str, bytes], rate: int) -> list[tuple[str, float, str]]:
    """Today's path: the VAD's utterances, each decoded whole after it ended."""
    transcriber = PocketSphinxTranscriber()
    lines = []
    for track, pcm in tracks.items():
        segmenter = Segmenter(rate, track, AudioLimits())
        frame = rate // 50
        for start in range(0, len(pcm) // 2, frame):
            segmenter.receive(pcm[2 * start : 2 * (start + frame)], start)
        for u in segmenter.close():
            lines.append(
                (track, u.start_sample / rate, transcriber.transcribe(u.pcm, rate, "en-US").text)
            )
    return lines


class Ear:
    """What the pool heard, each result stamped on arrival; set once ``tracks`` are closed."""

    def __init__(self, tracks: int) -> None:
        self.got: list[tuple[str, str, LiveResult, float]] = []
        self.closed: set[tuple[str, str]] = set()
        self.all_closed = asyncio.Event()
        self._tracks = tracks

    def on_closed(self, key: str, track: str) -> None:
        self.closed.add((key, track))
        if len(self.closed) == self._tracks:
            self.all_closed.set()

    def on_heard(self, key: str, track: str, results: list[LiveResult]) -> None:
        now = time.monotonic()
        self.got.extend((key, track, r, now) for r in results)


async def at_real_time(samples: int, frame: int) -> AsyncIterator[tuple[int, float]]:
    """Each 20 ms frame's first sample, at the moment it would have been spoken (and that time)."""
    begun = time.monotonic()
    for i, start in enumerate(range(0, samples, frame)):
        ahead = begun + i * 0.02 - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        yield start, time.monotonic()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(calls: int, rate: int, workers: int) -> dict[str, object]:
    tracks = {
        t: read_wav(ROOT / "samples" / f"support_call_{rate}_{t}.wav")[0]
        for t in ("inbound", "outbound")
    }
    frame = rate // 50
    spoken: dict[tuple[str, str], dict[int, float]] = {}  # (call, track) → end sample → time
    ear = Ear(2 * calls)
    got = ear.got
    recognition = RecognitionPool(
        recognition_spawner("local"), ear.on_heard, on_closed=ear.on_closed, workers=workers
    )
    recognition.start()
    await asyncio.sleep(3)  # the worker loads its model: not part of any call
    pids = [s._worker.pid for s in recognition.shards if s._worker is not None]
    cpu_before = sum(_cpu_s(pid) for pid in pids if pid is not None)
    keys = [f"call-{i}" for i in range(calls)]
    for key in keys:
        for track in tracks:
            recognition.open(key, track, rate, "en-US")
            spoken[(key, track)] = {}
    samples = min(len(pcm) for pcm in tracks.values()) // 2
    vads = {track: Segmenter(rate, track, AudioLimits()) for track in tracks}
    closed_at: list[tuple[str, int, float]] = []  # (track, utterance end sample, VAD closed)
    async for start, now in at_real_time(samples, frame):
        for key in keys:
            for track, pcm in tracks.items():
                recognition.feed(key, track, start, pcm[2 * start : 2 * (start + frame)])
                spoken[(key, track)][start + frame] = now
        for track, vad in vads.items():  # what the session's assembler does with each frame
            vad.receive(tracks[track][2 * start : 2 * (start + frame)], start)
            closed_at += [(track, u.end_sample, now) for u in vad.utterances_ready()]
    call_s = samples / rate
    for key in keys:
        for track in tracks:
            recognition.close(key, track)
    async with asyncio.timeout(120):  # the worker's last finals
        await ear.all_closed.wait()
    cpu = sum(_cpu_s(pid) for pid in pids if pid is not None) - cpu_before
    await recognition.stop()

    def said_at(key: str, track: str, sample: int) -> float:
        ends = spoken[(key, track)]
        exact = ends.get(sample)
        if exact is not None:
            return exact
        frame_end = -(-sample // frame) * frame
        return ends.get(frame_end, max(ends.values()))

    partial_lag = [t - said_at(k, tr, r.end_sample) for k, tr, r, t in got if not r.final]
    final_lag = [t - said_at(k, tr, r.end_sample) for k, tr, r, t in got if r.final and r.text]
    provisional_lag = [t - said_at(keys[0], tr, end) for tr, end, t in closed_at]
    live = [
        (tr, r.start_sample / rate, r.text)
        for k, tr, r, _ in got
        if r.final and r.text and k == keys[0]
    ]
    truth = [u["text"] for u in SCRIPT["utterances"]]
    return {
        "calls": calls,
        "rate": rate,
        "partials": len(partial_lag),
        "partial_lag_p50_ms": 1000 * statistics.median(partial_lag),
        "partial_lag_p95_ms": 1000 * _pct(partial_lag, 0.95),
        "provisional_lag_p50_ms": 1000 * statistics.median(provisional_lag),
        "provisional_lag_p95_ms": 1000 * _pct(provisional_lag, 0.95),
        "finals": len(final_lag),
        "final_lag_p50_ms": 1000 * statistics.median(final_lag),
        "final_lag_p95_ms": 1000 * _pct(final_lag, 0.95),
        "worker_cpu_per_call_pct": 100 * cpu / call_s / calls,
        "wer_live_finals": word_error_rate(truth, aligned(live)),
        "wer_per_utterance": word_error_rate(truth, aligned(per_utterance(tracks, rate))),
        "dropped_ms": recognition.stats.dropped_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=int, default=8000, choices=[8000, 16000])
    args = parser.parse_args()
    result = asyncio.run(run(args.calls, args.rate, args.workers))
    print(
        "| calls | rate | partials | partial lag p50 / p95 ms | finals | final lag p50 / p95 ms "
        "| worker CPU per call | WER live finals / per utterance | audio dropped |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {result['calls']} | {result['rate']} | {result['partials']} "
        f"| {result['partial_lag_p50_ms']:.0f} / {result['partial_lag_p95_ms']:.0f} "
        f"| {result['provisional_lag_p50_ms']:.0f} / {result['provisional_lag_p95_ms']:.0f} "
        f"| {result['finals']} "
        f"| {result['final_lag_p50_ms']:.0f} / {result['final_lag_p95_ms']:.0f} "
        f"| {result['worker_cpu_per_call_pct']:.0f} % "
        f"| {result['wer_live_finals']:.2f} / {result['wer_per_utterance']:.2f} "
        f"| {result['dropped_ms']:.0f} ms |"
    )


if __name__ == "__main__":
    main()
