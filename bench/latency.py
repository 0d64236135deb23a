"""Latency on the embedded stack: utterance end → transcript and sentiment events; open → record.

Run: .venv/bin/python -m bench.latency [--codec mulaw|l16-16k] [--calls N] [--live off|local|both]

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

With the call heard live (``--live local``: PocketSphinx in the server's recognition worker;
``both``, the default, runs the per-utterance path and then the live one, in the same run):

* utterance end → first transcript event: the first ``Utterance Transcribed`` of the
  utterance, provisional or final (the line as the console and an agent first have it whole);
  → final transcript event: the ``kind: final`` one;
* spoken → partial on the bus: each ``Transcript Partial``'s arrival at the tap minus when the
  last audio it covers (its ``end_ms``) was sent. A word in it ended at or before that audio, so
  this is the least a word waited; PocketSphinx's first pass trails the audio by some frames.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
import uuid
import warnings
from typing import Any, Literal

from bench.transcript_accuracy import word_error_rate
from callstream.audio import records
from callstream.wiring import client
from local import poller
from local.stack import Stack
from local.vobiz_sim import AUDIO, SimCall

CONTENT_TYPES = {"mulaw": "audio/x-mulaw;rate=8000", "l16-16k": "audio/x-l16;rate=16000"}
PATHS = {"off": "per utterance", "local": "live (PocketSphinx)"}


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


def run(
    codec: str = "mulaw", calls: int = 1, live: Literal["off", "local"] = "off"
) -> tuple[dict[str, list[float]], float]:
    """Play the shared call ``calls`` times at once: the latencies in ms by measure, and the
    word error rate of the final transcripts against the script."""
    script = json.loads((AUDIO / "support_call.json").read_text())
    rate = 8000 if codec == "mulaw" else 16000
    seen: dict[tuple[str, str, int], float] = {}  # (call, kind, utterance index) → wall time
    texts: dict[tuple[str, int], dict[str, Any]] = {}
    lock = threading.Lock()

    partials: list[tuple[str, float, float, float]] = []  # (call, arrival, end_ms, heard_at)

    def on_event(event: dict[str, Any]) -> None:
        detail, now = event["detail"], time.time()
        kind = event["detail-type"]
        if kind == "Transcript Partial" and not detail.get("done"):
            with lock:
                partials.append(
                    (detail["call_uuid"], now, float(detail["end_ms"]), float(detail["heard_at"]))
                )
        if kind in ("Utterance Transcribed", "Sentiment Scored"):
            key = (detail["call_uuid"], detail["utterance"])
            with lock:
                seen.setdefault((detail["call_uuid"], kind, detail["utterance"]), now)
                if kind == "Utterance Transcribed" and detail.get("kind", "final") == "final":
                    texts[key] = detail
                    seen[(detail["call_uuid"], "final", detail["utterance"])] = now

    out: dict[str, list[float]] = {
        "utterance end → first transcript event": [],
        "utterance end → final transcript event": [],
        "utterance end → sentiment event": [],
        "spoken → partial on the bus": [],
        "spoken → partial made by the server": [],
        "partial made → on the bus": [],
        "socket open → first Kinesis record (start event)": [],
        "socket open → first audio record": [],
    }
    with Stack(speed=1.0, live=live) as stack:
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
        said, heard = [], []
        for sim in sims:
            assert sim.media_began is not None and sim.opened_at is not None
            for key, detail in texts.items():
                if key[0] != sim.call_uuid:
                    continue
                truth = match(script["utterances"], detail)
                if truth is None:
                    continue
                said.append(truth["text"])
                heard.append(detail.get("text") or "")
                voice_end = sim.media_began + truth["end_s"]
                for kind, label in (
                    ("Utterance Transcribed", "utterance end → first transcript event"),
                    ("final", "utterance end → final transcript event"),
                    ("Sentiment Scored", "utterance end → sentiment event"),
                ):
                    at = seen.get((sim.call_uuid, kind, detail["utterance"]))
                    if at is not None:
                        out[label].append((at - voice_end) * 1000)
            began = sim.media_began
            mine = [p for p in partials if p[0] == sim.call_uuid]
            out["spoken → partial on the bus"] += [
                (at - (began + end_ms / 1000)) * 1000 for _, at, end_ms, _ in mine
            ]
            out["spoken → partial made by the server"] += [
                (heard - (began + end_ms / 1000)) * 1000 for _, _, end_ms, heard in mine
            ]
            out["partial made → on the bus"] += [(at - heard) * 1000 for _, at, _, heard in mine]
        opened = min(s.opened_at for s in sims if s.opened_at is not None)
        if "any" in found:
            out["socket open → first Kinesis record (start event)"].append(
                (found["any"] - opened) * 1000
            )
        if "audio" in found:
            out["socket open → first audio record"].append((found["audio"] - opened) * 1000)
    return out, word_error_rate(said, heard)


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


def table(results: dict[str, tuple[dict[str, list[float]], float]], codec: str) -> str:
    """The measures of each path (``off``: per utterance, ``local``: live) as a markdown table."""
    lines = [
        f"Codec {codec}, both tracks, real time; the shared call (8 utterances).",
        "",
        "| path | measure | n | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for live, (measures, _) in results.items():
        path = PATHS[live]
        for name, values in measures.items():
            if values:
                lines.append(
                    f"| {path} | {name} | {len(values)} | {percentile(values, 0.5):.0f} "
                    f"| {percentile(values, 0.95):.0f} | {max(values):.0f} |"
                )
            elif live == "local" or "partial" not in name:
                lines.append(f"| {path} | {name} | 0 | - | - | - |")
    lines.append("")
    lines += [
        f"Word error rate of the finals, {PATHS[k]}: {w:.3f}" for k, (_, w) in results.items()
    ]
    return "\n".join(lines)


def main() -> None:
    warnings.filterwarnings("ignore", "No application metrics to publish")  # read-only routes
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--codec", choices=sorted(CONTENT_TYPES), default="mulaw")
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--live", choices=["off", "local", "both"], default="both")
    parser.add_argument(
        "--pushed-wait-s",
        type=float,
        default=poller.PUSHED_WAIT_S,
        help="how soon the local poller reads an empty fan-out shard again (0.2: as polled)",
    )
    args = parser.parse_args()
    poller.PUSHED_WAIT_S = args.pushed_wait_s
    paths = ["off", "local"] if args.live == "both" else [args.live]
    print(table({live: run(args.codec, args.calls, live) for live in paths}, args.codec))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
