"""Cost model: $ per 1,000 call-minutes in us-east-1, itemised, beside an LCA-sized deployment.

Run: .venv/bin/python -m bench.cost [--streams-per-core N] [--kb-per-stream K] [--call-minutes M]

Built from measured figures (defaults: the latest bench/RESULTS.md; ``make bench`` passes the
figures of its own run) and the shared call (utterances per minute, their length and text).
A call is one Vobiz stream with both tracks, μ-law 8 kHz. Prices are AWS's public on-demand list
prices for us-east-1 (x86, no free tier, no savings plans), as of 2026-11; check before relying on
them. Where a figure is an assumption rather than a measurement, its row says so.

The reference is sized like AWS Live Call Analytics: one 2 vCPU / 4 GB Fargate task per WebSocket
server. Its server is a single Node.js event loop, so a task does one core's work: we give it the
per-core capacity of the bare websockets baseline of our own run (generous to it: LCA also relays
the audio to Transcribe in-process). LCA transcribes the whole call with one Transcribe stream
(both channels, channel identification), where callstream transcribes each utterance the voice
activity detector found.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "samples" / "support_call.json"

# us-east-1 list prices (USD).
FARGATE_VCPU_H = 0.04048
FARGATE_GB_H = 0.004445
KINESIS_ON_DEMAND_STREAM_H = 0.04
KINESIS_ON_DEMAND_INGEST_GB = 0.08
KINESIS_ON_DEMAND_READ_GB = 0.04
#: The enhanced fan-out consumer of UtteranceStream (transcribe_utterance): the provisioned
#: mode's published rates, assumed for the on-demand stream too (not confirmed), on the 4 shards
#: an on-demand stream starts with.
KINESIS_FAN_OUT_GB = 0.013
KINESIS_FAN_OUT_CONSUMER_SHARD_H = 0.015
FAN_OUT_SHARDS = 4
LAMBDA_GB_S = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1e6
S3_PUT = 0.005 / 1000
S3_GET = 0.0004 / 1000
S3_GB_MONTH = 0.023
DDB_WRITE = 0.625 / 1e6  # on-demand write request unit
DDB_READ = 0.125 / 1e6
TRANSCRIBE_MIN = 0.024  # standard streaming, tier 1; billed per second, 15 s minimum a request
TRANSCRIBE_MIN_S = 15
#: The two readings of Transcribe streaming's price (docs/transcription.md): the long-standing
#: sheet, and a 2026-09 reading of AWS's price list that nobody here could confirm.
PRICE_SHEETS = {
    "$0.024/min, 15 s minimum a request (long-standing)": (0.024, 15),
    "$0.010/min, no minimum (2026-09 reading, unconfirmed)": (0.010, 0),
}
COMPREHEND_UNIT = 0.0001  # 100 characters; 3 units minimum a request
EVENTBRIDGE_EVENT = 1.0 / 1e6
HTTP_API_REQUEST = 1.0 / 1e6
#: Measured: ``Transcript Partial`` events per call-minute of the shared call heard live at
#: real time on the embedded stack (``bench.latency --live local``, 2026-12-07).
PARTIALS_PER_MIN = 195.0  # 130 in the 40 s call


@dataclass(frozen=True)
class Inputs:
    """What the model is built from (per call unless stated)."""

    streams_per_core: float  # measured: single-track μ-law streams one core holds
    baseline_streams_per_core: float  # measured: the bare websockets server, same run
    kb_per_stream: float  # measured: server memory per single-track stream
    kinesis_kb_per_track_min: float  # measured: on-demand billed KB per track-minute
    records_per_track_min: float  # measured: audio records per track-minute
    utterances_per_min: float  # the shared call, both tracks
    utterance_s: float  # the shared call: mean utterance length (with VAD pre-roll and tail)
    transcript_chars: float  # the shared call: mean characters per utterance
    call_minutes: float  # assumption: mean call length
    task_vcpu: float = 1.0  # template.yaml
    task_gb: float = 2.0
    headroom: float = 0.7  # assumption: the scaling target keeps tasks at 70 % of capacity


def shared_call() -> tuple[float, float, float]:
    """Utterances per minute, mean length (s, with 0.2 s pre-roll + 0.5 s tail), mean chars."""
    script = json.loads(SCRIPT.read_text())
    utterances = script["utterances"]
    minutes = script["duration_s"] / 60
    spans = [u["end_s"] - u["start_s"] + 0.7 for u in utterances]
    return (
        len(utterances) / minutes,
        sum(spans) / len(spans),
        sum(len(u["text"]) for u in utterances) / len(utterances),
    )


def per_call_minute(i: Inputs, *, reference: bool = False) -> list[tuple[str, float, str]]:
    """Itemised $ per call-minute: (item, dollars, how it is computed)."""
    tracks = 2
    rows: list[tuple[str, float, str]] = []
    if reference:
        calls_per_task = i.baseline_streams_per_core / tracks * i.headroom
        task_h = 2 * FARGATE_VCPU_H + 4 * FARGATE_GB_H
        shape = "2 vCPU / 4 GB task, one core's work"
    else:
        by_cpu = i.streams_per_core * i.task_vcpu / tracks * i.headroom
        by_memory = i.task_gb * 1024 * 1024 * 0.8 / (i.kb_per_stream * tracks)
        calls_per_task = min(by_cpu, by_memory)
        task_h = i.task_vcpu * FARGATE_VCPU_H + i.task_gb * FARGATE_GB_H
        shape = f"{i.task_vcpu:g} vCPU / {i.task_gb:g} GB task"
    rows.append(
        (
            "Fargate (stream server)",
            task_h / 60 / calls_per_task,
            f"{shape} at ${task_h:.4f}/h holds {calls_per_task:.0f} two-track calls "
            f"({i.headroom:.0%} of measured capacity)",
        )
    )
    audio_gb = tracks * i.kinesis_kb_per_track_min / 1024 / 1024
    utterance_gb = i.utterances_per_min * i.utterance_s * 16000 * 2 / 1024**3  # PCM16, ≤ 16 kHz
    rows.append(
        (
            "Kinesis on-demand, ingest + 1 reader each",
            (audio_gb + utterance_gb) * (KINESIS_ON_DEMAND_INGEST_GB + KINESIS_ON_DEMAND_READ_GB),
            f"{tracks * i.kinesis_kb_per_track_min:.0f} KB audio + utterances per call-minute "
            "(stream-hours are fixed: $58/month for the two streams)",
        )
    )
    records = tracks * i.records_per_track_min
    rows.append(
        (
            "Lambda store_recording",
            records * (0.030 * 1.0 * LAMBDA_GB_S) + records / 50 * LAMBDA_REQUEST,
            f"{records:.0f} records; assumed 30 ms of 1 GB each (one S3 PUT), 50 per batch",
        )
    )
    utterances = i.utterances_per_min
    if not reference:
        rows.append(
            (
                "Lambda transcribe_utterance",
                utterances * (i.utterance_s * 0.5 * 1.0 * LAMBDA_GB_S + LAMBDA_REQUEST),
                f"{utterances:.0f} utterances; assumed half their length at 1 GB waiting on "
                "Transcribe",
            )
        )
    rows.append(
        (
            "Lambda analyze_sentiment",
            utterances * (0.15 * 0.5 * LAMBDA_GB_S + LAMBDA_REQUEST),
            "assumed 150 ms of 512 MB per utterance (one DetectSentiment)",
        )
    )
    segment_puts = records
    wav_mb = tracks * 8000 * 2 * 60 / 1e6  # PCM16 WAV, 8 kHz
    rows.append(
        (
            "S3 requests + 1 month of storage",
            segment_puts * S3_PUT
            + segment_puts * S3_GET
            + (wav_mb / 5 + 2) / i.call_minutes * S3_PUT
            + wav_mb / 1024 * S3_GB_MONTH,
            f"{segment_puts:.0f} segment PUTs (read back once), multipart WAV of {wav_mb:.2f} MB",
        )
    )
    writes_per_call = 12  # registry start/started/ended/recording, nonce, idempotency, summary
    rows.append(
        (
            "DynamoDB on-demand",
            writes_per_call / i.call_minutes * DDB_WRITE
            + utterances * (DDB_WRITE + DDB_READ)
            + 4 / i.call_minutes * DDB_READ,
            f"~{writes_per_call} writes a call, one transcript write + read per utterance",
        )
    )
    if reference:
        rows.append(
            (
                "Transcribe (whole call, one stream)",
                TRANSCRIBE_MIN,
                "every second of the call, both channels in one stream",
            )
        )
    else:
        billed_s = max(TRANSCRIBE_MIN_S, i.utterance_s)
        rows.append(
            (
                "Transcribe (one request per utterance)",
                utterances * billed_s / 60 * TRANSCRIBE_MIN,
                f"{utterances:.0f} utterances of {i.utterance_s:.1f} s, each billed "
                f"{billed_s:.0f} s (15 s minimum a request)",
            )
        )
    units = max(3, math.ceil(i.transcript_chars / 100))
    rows.append(
        (
            "Comprehend DetectSentiment",
            utterances * units * COMPREHEND_UNIT,
            f"{utterances:.0f} requests of {units} units (100 characters, 3 minimum)",
        )
    )
    events = utterances * 2 + 4 / i.call_minutes
    rows.append(
        (
            "EventBridge + HTTP API",
            events * EVENTBRIDGE_EVENT + 6 / i.call_minutes * HTTP_API_REQUEST,
            f"{events:.0f} events, ~6 API requests and callbacks a call",
        )
    )
    return rows


def transcription(i: Inputs, live_cpu_factor: float) -> str:
    """Transcribe per 1,000 call-minutes, per utterance and live, at both price sheets.

    Live is one stereo session a call (``recognize_transcribe``, channel identification: both
    tracks billed once, its length); a session per track, as first built, billed a two-track
    call twice its length and is the column beside it. Per utterance pays for each utterance,
    at least the sheet's minimum. Live also costs the ingest loop CPU (``live_cpu_factor``:
    measured with ``bench.load --live``), a change to the Fargate row only.
    """
    fargate = per_call_minute(i)[0][1]
    lines = [
        "| Transcribe price sheet (assumption) | per utterance $/1,000 call-min "
        "| live, one stereo session a call (as built) $/1,000 call-min "
        "| live, a session per track (as first built) $/1,000 call-min "
        "| Fargate with live $/1,000 call-min |",
        "|---|---|---|---|---|",
    ]
    for sheet, (per_min, minimum_s) in PRICE_SHEETS.items():
        billed_s = max(minimum_s, i.utterance_s)
        per_utterance = i.utterances_per_min * billed_s / 60 * per_min
        lines.append(
            f"| {sheet} | {per_utterance * 1000:.2f} | {per_min * 1000:.2f} "
            f"| {2 * per_min * 1000:.2f} | {fargate * live_cpu_factor * 1000:.4f} |"
        )
    return "\n".join(lines)


def fan_out(i: Inputs) -> str:
    """What reading UtteranceStream through an enhanced fan-out consumer adds (an assumption)."""
    utterance_gb = i.utterances_per_min * i.utterance_s * 16000 * 2 / 1024**3
    per_1000 = utterance_gb * KINESIS_FAN_OUT_GB * 1000
    monthly = KINESIS_FAN_OUT_CONSUMER_SHARD_H * FAN_OUT_SHARDS * 730
    return (
        f"The live lines' fan-out consumer: ${per_1000:.3f} per 1,000 call-minutes of data read "
        f"(${KINESIS_FAN_OUT_GB}/GB) and ${monthly:.0f} a month fixed "
        f"({FAN_OUT_SHARDS} consumer-shards at ${KINESIS_FAN_OUT_CONSUMER_SHARD_H}/h; "
        "provisioned rates assumed for the on-demand stream, unconfirmed)."
    )


def console_lines(partials_per_min: float, records_per_partial: float = 1.0) -> str:
    """What a live line's growing costs, per 1,000 call-minutes: its partials on the bus.

    Each published ``Transcript Partial`` is a PutEvents entry, a console_feed invocation
    (512 MB, ~30 ms assumed) and two console-table writes (the timeline item and the card);
    each partial record also shares a transcribe_utterance invocation (batches of at most 4:
    counted as one each, the worst case) and is a Kinesis record (1 KB billed on demand).
    ``partials_per_min``: measured, published partials per call-minute (``bench.latency``).
    """
    feed = LAMBDA_REQUEST + 0.5 * 0.030 * LAMBDA_GB_S
    consumer = LAMBDA_REQUEST + 1.0 * 0.020 * LAMBDA_GB_S
    kinesis = (KINESIS_ON_DEMAND_INGEST_GB + KINESIS_ON_DEMAND_READ_GB) / 1e6  # 1 KB each
    per_partial = EVENTBRIDGE_EVENT + feed + 2 * DDB_WRITE
    per_record = consumer + kinesis
    cost = partials_per_min * (per_partial + records_per_partial * per_record) * 1000
    return (
        f"Live lines on the console: {partials_per_min:.0f} partials published per "
        f"call-minute cost ${cost:.2f} per 1,000 call-minutes (${per_partial * 1e6:.2f} per "
        f"million published: PutEvents, the feed's invocation and two table writes; "
        f"${per_record * 1e6:.2f} per million records for the consumer and Kinesis)."
    )


def report(i: Inputs) -> str:
    """Both deployments as one markdown table, $ per 1,000 call-minutes."""
    ours = per_call_minute(i)
    theirs = dict((name, cost) for name, cost, _ in per_call_minute(i, reference=True))
    lines = [
        f"Inputs: {i.streams_per_core:.0f} streams per core (bare websockets baseline "
        f"{i.baseline_streams_per_core:.0f}), {i.kb_per_stream:.0f} KB per stream, "
        f"{i.kinesis_kb_per_track_min:.0f} KB and {i.records_per_track_min:.1f} records per "
        f"track-minute, {i.utterances_per_min:.0f} utterances per call-minute of "
        f"{i.utterance_s:.1f} s and {i.transcript_chars:.0f} characters, calls of "
        f"{i.call_minutes:g} min.",
        "",
        "| item | callstream $/1,000 call-min | LCA-sized $/1,000 call-min | basis (callstream) |",
        "|---|---|---|---|",
    ]
    reference_rows = {name.split(" (")[0]: cost for name, cost in theirs.items()}
    for name, cost, basis in ours:
        key = name.split(" (")[0]
        ref = theirs.get(name, reference_rows.get(key))
        ref_text = f"{ref * 1000:.3f}" if ref is not None else "-"
        lines.append(f"| {name} | {cost * 1000:.3f} | {ref_text} | {basis} |")
    ours_total = sum(c for _, c, _ in ours) * 1000
    theirs_total = sum(theirs.values()) * 1000
    compute = ours[0][1] * 1000, theirs["Fargate (stream server)"] * 1000
    lines.append(f"| **total** | **{ours_total:.2f}** | **{theirs_total:.2f}** | |")
    lines += [
        "",
        f"Compute alone: callstream ${compute[0]:.4f} vs ${compute[1]:.4f} per 1,000 call-minutes "
        f"({compute[1] / compute[0]:.1f} times less). Fixed: Kinesis stream-hours $58/month, the ALB "
        "about $16/month plus LCUs, one stream-server task always on.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams-per-core", type=float, default=500)
    parser.add_argument("--baseline-streams-per-core", type=float, default=1000)
    parser.add_argument("--kb-per-stream", type=float, default=160)
    parser.add_argument("--kinesis-kb-per-track-min", type=float, default=485)
    parser.add_argument("--records-per-track-min", type=float, default=56.9)
    parser.add_argument("--call-minutes", type=float, default=5.0)
    parser.add_argument(
        "--live-cpu-factor",
        type=float,
        default=1.26,
        help="ingest CPU with live recognition over without (bench.load --live: 63 %% / 50 %%)",
    )
    parser.add_argument(
        "--partials-per-min",
        type=float,
        default=PARTIALS_PER_MIN,
        help="published Transcript Partials per call-minute (bench.latency, live)",
    )
    args = parser.parse_args()
    utterances, seconds, chars = shared_call()
    inputs = Inputs(
        streams_per_core=args.streams_per_core,
        baseline_streams_per_core=args.baseline_streams_per_core,
        kb_per_stream=args.kb_per_stream,
        kinesis_kb_per_track_min=args.kinesis_kb_per_track_min,
        records_per_track_min=args.records_per_track_min,
        utterances_per_min=utterances,
        utterance_s=seconds,
        transcript_chars=chars,
        call_minutes=args.call_minutes,
    )
    print(report(inputs))
    print()
    print(transcription(inputs, args.live_cpu_factor))
    print()
    print(console_lines(args.partials_per_min))
    print(fan_out(inputs))


if __name__ == "__main__":
    main()
