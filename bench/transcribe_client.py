"""What the Transcribe streaming client costs the recognition worker, and its own latency.

Run: .venv/bin/python -m bench.transcribe_client [--calls N] [--seconds S]

The stream server's seam (``RecognitionPool`` with the ``aws`` backend, its worker process
spawned as the container does) opens ``--calls`` two-track calls, a stereo Transcribe session
each (``--mono``: a session per track, as first built), and feeds each 20 ms frame at the
moment it would have been spoken; the sessions go to
``local.fake_transcribe`` on 127.0.0.1 (a process of its own: its CPU is not the worker's). The audio is tone words, which the fake hears, so results flow as they would.

* **worker CPU per call**: the worker process's CPU seconds per second of audio, per call
  (presigning, event-stream framing, the WebSocket, result decoding, the seam's messages);
* **word end → partial**: the first partial with a new word, at the server, minus when that
  word's last sample was spoken (the fake answers each 100 ms audio event at once: this is our
  chunking's, client's and seam's share, on top of Transcribe's own);
* **final lag**: a final's arrival minus when its last word was spoken (the fake's 600 ms pause
  to close a segment is in it; Transcribe's own is 1.1 s at the median, SPEECH.md).

Nothing here says how fast Transcribe is: only what our side adds to it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys

from bench.live_recognition import Ear, _cpu_s, _pct, at_real_time
from local.fake_transcribe import ACCESS_KEY, SECRET_KEY, silence, tone_words
from stream_server.recognition import RecognitionPool
from stream_server.wiring import recognition_spawner

RATE = 8000
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def track_audio(seconds: float, turn: int) -> bytes:
    """Lines of three tone words, each speaker's in turn (1.2 s of words, 1.2 s quiet)."""
    out = b""
    i = 0
    while len(out) < seconds * RATE * 2:
        line = tone_words([WORDS[(i + k) % 8] for k in range(3)], RATE)
        out += line + silence(1200, RATE) if i % 2 == turn else silence(1200 + 1200, RATE)
        i += 1
    return out[: int(seconds * RATE) * 2]


async def run(calls: int, seconds: float, *, stereo: bool = True) -> dict[str, float]:
    # the fake in a process of its own: its CPU is neither the worker's nor this feeding loop's
    fake = subprocess.Popen(  # noqa: ASYNC220 -- once, before the measured part
        [sys.executable, "-m", "local.fake_transcribe", "--max-sessions", "100000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None
    endpoint = fake.stdout.readline().strip()
    os.environ.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        CALLSTREAM_TRANSCRIBE_ENDPOINT=endpoint,
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    tracks = {"inbound": track_audio(seconds, 0), "outbound": track_audio(seconds, 1)}
    frame = RATE // 50
    spoken: dict[tuple[str, str, int], float] = {}
    ear = Ear(2 * calls)
    got = ear.got
    pool = RecognitionPool(
        recognition_spawner("aws"), ear.on_heard, on_closed=ear.on_closed, workers=1
    )
    pool.start()
    await asyncio.sleep(2)  # the worker imports and starts
    pids = [s._worker.pid for s in pool.shards if s._worker is not None]
    keys = [f"call-{i}" for i in range(calls)]
    together = tuple(tracks) if stereo else ()
    for key in keys:
        for track in tracks:
            pool.open(key, track, RATE, "en-US", together)
    cpu_before = sum(_cpu_s(pid) for pid in pids if pid is not None)
    samples = int(seconds * RATE)
    async for start, now in at_real_time(samples, frame):
        for key in keys:
            for track, pcm in tracks.items():
                pool.feed(key, track, start, pcm[2 * start : 2 * (start + frame)])
        spoken[("", "", start + frame)] = now
    for key in keys:
        for track in tracks:
            pool.close(key, track)
    async with asyncio.timeout(60):
        await ear.all_closed.wait()
    cpu = sum(_cpu_s(pid) for pid in pids if pid is not None) - cpu_before
    await pool.stop()
    fake.terminate()
    fake.wait(10)

    def said_at(sample: int) -> float:
        frame_end = -(-sample // frame) * frame
        return spoken.get(("", "", frame_end), max(spoken.values()))

    # word end → the first partial with that word (later partials repeat it through the pause)
    words: dict[str, int] = {}
    partial = []
    for key, _, r, t in got:
        line = f"{key}/{r.result_id}"
        count = len(r.text.split())
        if not r.final and count > words.get(line, 0):
            partial.append(t - said_at(r.end_sample))
        words[line] = count
    final = [t - said_at(r.end_sample) for _, _, r, t in got if r.final and r.text]
    return {
        "calls": calls,
        "sessions": calls if stereo else 2 * calls,
        "partials": len(partial),
        "partial_p50_ms": 1000 * statistics.median(partial),
        "partial_p95_ms": 1000 * _pct(partial, 0.95),
        "finals": len(final),
        "final_p50_ms": 1000 * statistics.median(final),
        "final_p95_ms": 1000 * _pct(final, 0.95),
        "cpu_per_call_pct": 100 * cpu / seconds / calls,
        "dropped_ms": pool.stats.dropped_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--mono", action="store_true", help="a session per track")
    args = parser.parse_args()
    r = asyncio.run(run(args.calls, args.seconds, stereo=not args.mono))
    print(
        "| calls | sessions | worker CPU per call | partials | partial lag p50 / p95 ms "
        "| finals | final lag p50 / p95 ms | audio dropped |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {r['calls']:.0f} | {r['sessions']:.0f} | {r['cpu_per_call_pct']:.2f} % "
        f"| {r['partials']:.0f} | {r['partial_p50_ms']:.0f} / {r['partial_p95_ms']:.0f} "
        f"| {r['finals']:.0f} | {r['final_p50_ms']:.0f} / {r['final_p95_ms']:.0f} "
        f"| {r['dropped_ms']:.0f} ms |"
    )


if __name__ == "__main__":
    main()
