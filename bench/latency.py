"""Latency on the embedded stack: utterance end → transcript and sentiment events; open → record.

Run: .venv/bin/python -m bench.latency [--codec mulaw|l16-16k] [--calls N]

The shared support call is played in real time by the Vobiz simulator through the public API
into the real stream server, and the real consumers run on the poller's Kinesis and EventBridge
events (moto stands in for AWS; PocketSphinx and VADER for Transcribe and Comprehend). Measured:

* utterance end → event: from the wall-clock moment the simulator sent the media time at which
  the script says an utterance's voice ends, to the moment its ``Utterance Transcribed`` (and its
  ``Sentiment Scored``) event reached the bus tap. This includes the voice-activity hangover
  (500 ms of silence ends an utterance), the local poller's Kinesis polling (every 200 ms here;
  Lambda's event source polls each shard about once a second) and the bus tap's 100 ms polling,
  and the local models' time (in AWS: Transcribe's and Comprehend's).
* socket open → first Kinesis record (the ``start`` event) and → first audio record, read from
  the moto Kinesis stream by polling every 5 ms.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
import uuid
import warnings
from typing import Any

from callstream.audio import records
from callstream.wiring import client
from local.stack import Stack
from local.vobiz_sim import AUDIO, SimCall

CONTENT_TYPES = {"mulaw": "audio/x-mulaw;rate=8000", "l16-16k": "audio/x-l16;rate=16000"}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def first_records(stream: str, stop: threading.Event, found: dict[str, float]) -> None:
    """Note when the first record, and the first audio record, appear in the audio stream."""
    kinesis = client("kinesis")
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    iterators = [
        kinesis.get_shard_iterator(
            StreamName=stream, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for s in shards
    ]
    while not stop.is_set() and "audio" not in found:
        for n, iterator in enumerate(iterators):
            answer = kinesis.get_records(ShardIterator=iterator, Limit=100)
            iterators[n] = answer["NextShardIterator"]
            now = time.time()
            for item in answer["Records"]:
                found.setdefault("any", now)
                if isinstance(records.decode(item["Data"]), records.AudioRecord):
                    found.setdefault("audio", now)
        time.sleep(0.005)


def run(codec: str = "mulaw", calls: int = 1) -> dict[str, list[float]]:
    """Play the shared call ``calls`` times at once; return the latencies in ms by measure."""
    script = json.loads((AUDIO / "support_call.json").read_text())
    rate = 8000 if codec == "mulaw" else 16000
    seen: dict[tuple[str, str, int], float] = {}  # (call, kind, utterance index) → wall time
    texts: dict[tuple[str, int], dict[str, Any]] = {}
    lock = threading.Lock()

    def on_event(event: dict[str, Any]) -> None:
        detail, now = event["detail"], time.time()
        kind = event["detail-type"]
        if kind in ("Utterance Transcribed", "Sentiment Scored"):
            key = (detail["call_uuid"], detail["utterance"])
            with lock:
                seen[(detail["call_uuid"], kind, detail["utterance"])] = now
                if kind == "Utterance Transcribed":
                    texts[key] = detail

    out: dict[str, list[float]] = {
        "utterance end → transcript event": [],
        "utterance end → sentiment event": [],
        "socket open → first Kinesis record (start event)": [],
        "socket open → first audio record": [],
    }
    with Stack(speed=1.0) as stack:
        assert stack.poller is not None
        stack.poller.listeners.append(on_event)
        stop, found = threading.Event(), {}
        watcher = threading.Thread(
            target=first_records, args=(stack.aws.names["AudioStream"], stop, found), daemon=True
        )
        watcher.start()
        sims = []
        for _ in range(calls):
            sim = stack.sim.add_call(
                SimCall(
                    str(uuid.uuid4()),
                    inbound=AUDIO / f"support_call_{rate}_inbound.wav",
                    outbound=AUDIO / f"support_call_{rate}_outbound.wav",
                )
            )
            request = urllib.request.Request(
                f"{stack.gateway.url}/v1/calls/{sim.call_uuid}/streams",  # type: ignore[union-attr]
                data=json.dumps(
                    {"audio_track": "both", "content_type": CONTENT_TYPES[codec]}
                ).encode(),
                headers={
                    "Authorization": f"Bearer {stack.token}",
                    "Content-Type": "application/json",
                },
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 201
            sims.append(sim)
        deadline = time.time() + script["duration_s"] + 60
        expected = len(script["utterances"]) * calls
        while time.time() < deadline:
            with lock:
                if sum(k[1] == "Sentiment Scored" for k in seen) >= expected:
                    break
            time.sleep(0.1)
        stop.set()
        for sim in sims:
            assert sim.media_began is not None and sim.opened_at is not None
            for key, detail in texts.items():
                if key[0] != sim.call_uuid:
                    continue
                truth = match(script["utterances"], detail)
                if truth is None:
                    continue
                voice_end = sim.media_began + truth["end_s"]
                for kind, label in (
                    ("Utterance Transcribed", "utterance end → transcript event"),
                    ("Sentiment Scored", "utterance end → sentiment event"),
                ):
                    at = seen.get((sim.call_uuid, kind, detail["utterance"]))
                    if at is not None:
                        out[label].append((at - voice_end) * 1000)
        opened = min(s.opened_at for s in sims if s.opened_at is not None)
        if "any" in found:
            out["socket open → first Kinesis record (start event)"].append(
                (found["any"] - opened) * 1000
            )
        if "audio" in found:
            out["socket open → first audio record"].append((found["audio"] - opened) * 1000)
    return out


def match(script: list[dict[str, Any]], detail: dict[str, Any]) -> dict[str, Any] | None:
    """The script's utterance on the same track that overlaps the transcribed span most."""
    start, end = detail["start_ms"] / 1000, detail["end_ms"] / 1000
    best, overlap = None, 0.0
    for u in script:
        if u["track"] != detail["track"]:
            continue
        shared = min(end, u["end_s"]) - max(start, u["start_s"])
        if shared > overlap:
            best, overlap = u, shared
    return best


def table(results: dict[str, list[float]], codec: str) -> str:
    """The measures as a markdown table."""
    lines = [
        f"Codec {codec}, both tracks, real time; the shared call (8 utterances).",
        "",
        "| measure | n | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for name, values in results.items():
        if values:
            lines.append(
                f"| {name} | {len(values)} | {percentile(values, 0.5):.0f} "
                f"| {percentile(values, 0.95):.0f} | {max(values):.0f} |"
            )
        else:
            lines.append(f"| {name} | 0 | - | - | - |")
    return "\n".join(lines)


def main() -> None:
    warnings.filterwarnings("ignore", "No application metrics to publish")  # read-only routes
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--codec", choices=sorted(CONTENT_TYPES), default="mulaw")
    parser.add_argument("--calls", type=int, default=1)
    args = parser.parse_args()
    print(table(run(args.codec, args.calls), args.codec))


if __name__ == "__main__":
    main()
