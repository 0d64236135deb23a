"""The finalize_call consumer's domain: one JSON summary per stream, and ``Call Completed``.

Runs on ``Recording Ready``. It needs every utterance transcribed and scored: the stream's end
event says how many utterances there were; until they are all in, it raises
:class:`~callstream.exceptions.NotReadyError` and EventBridge retries it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from callstream import settings
from callstream.adapters.clients import client
from callstream.adapters.dynamodb import DynamoRegistry, DynamoTranscripts
from callstream.adapters.events import EventPublisher
from callstream.adapters.s3_recordings import RecordingStore
from callstream.exceptions import NotReadyError, RequestError
from callstream.ports import Registry
from callstream.sentiment import ROLLING_KEY


@dataclass(eq=False)
class SummaryServices:
    """What the summary consumer talks to."""

    store: RecordingStore
    transcripts: DynamoTranscripts
    registry: Registry
    events: EventPublisher


@cache
def services() -> SummaryServices:
    """The process's services."""
    cfg = settings.load(settings.ConsumerSettings)
    dynamodb = client("dynamodb")
    return SummaryServices(
        store=RecordingStore(client("s3"), cfg.recordings_bucket),
        transcripts=DynamoTranscripts(dynamodb, cfg.transcripts_table),
        registry=DynamoRegistry(dynamodb, cfg.registry_table),
        events=EventPublisher(client("events"), cfg.event_bus),
    )


def summary_key(call_uuid: str | None, stream_id: str) -> str:
    """Where a stream's summary lives."""
    return f"recordings/{call_uuid or 'unknown-call'}/{stream_id}.summary.json"


def handle(svc: SummaryServices, detail: dict[str, Any]) -> dict[str, Any]:
    """Build and store a stream's summary; publish ``Call Completed``.

    Raises:
        RequestError: the event lacks ``stream_id`` or ``sidecar``.
        NotReadyError: some utterances are not transcribed and scored yet.
    """
    try:
        stream_id, sidecar_key = str(detail["stream_id"]), str(detail["sidecar"])
    except KeyError as missing:
        raise RequestError(f"Recording Ready event without {missing}") from None
    sidecar = json.loads(svc.store.get(sidecar_key))
    end = next(
        (e for e in reversed(svc.store.events(stream_id)) if e["name"] in ("stop", "close")), None
    )
    expected = int(end["data"].get("utterances", 0)) if end else 0
    items = [i for i in svc.transcripts.for_stream(stream_id) if i["utterance"] != ROLLING_KEY]
    done = [i for i in items if i.get("sentiment")]
    if len(done) < expected:
        raise NotReadyError(
            f"stream {stream_id}: {len(done)} of {expected} utterances scored so far"
        )
    utterances = sorted(
        (
            {
                "track": i["track"],
                "role": i.get("role"),
                "start_s": round(float(i["start_ms"]) / 1000, 3),
                "end_s": round(float(i["end_ms"]) / 1000, 3),
                "text": i.get("text", ""),
                "sentiment": i.get("sentiment"),
                "confidence": i.get("confidence"),
            }
            for i in done
        ),
        key=lambda u: (u["start_s"], u["track"]),
    )
    talk = {
        t: round(sum(u["end_s"] - u["start_s"] for u in utterances if u["track"] == t), 3)
        for t in sidecar["channels"]
    }
    summary = {
        "stream_id": stream_id,
        "call_uuid": sidecar.get("call_uuid"),
        "recording": sidecar["recording"],
        "sidecar": sidecar_key,
        "codec": sidecar["codec"],
        "sample_rate": sidecar["sample_rate"],
        "duration_s": round(float(sidecar["duration_s"]), 3),
        "talk_time_s": talk,
        "gaps": sidecar["gaps"],
        "utterances": utterances,
    }
    key = summary_key(sidecar.get("call_uuid"), stream_id)
    if key in set(svc.store.keys(key)):  # a reconnected call is finalized once per connection
        newer = json.loads(svc.store.get(key))
        if float(newer.get("duration_s", 0)) > summary["duration_s"]:
            return dict(newer)  # a later connection's summary is already there: keep it
    svc.store.put(key, json.dumps(summary, indent=2).encode(), "application/json")
    svc.registry.advance(
        stream_id, sidecar.get("call_uuid") or "unknown-call", "stopped", transcript_key=key
    )
    svc.events.publish(
        "Call Completed",
        {
            k: summary[k]
            for k in ("stream_id", "call_uuid", "recording", "duration_s", "talk_time_s")
        }
        | {"summary": key, "utterances": len(utterances)},
    )
    return summary
