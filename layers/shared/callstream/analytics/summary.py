"""The finalize_call consumer's domain: one JSON summary per stream, and ``Call Completed``.

Runs on ``Recording Ready`` and on ``Sentiment Scored``: it needs the recording and every
utterance scored (the recording's sidecar says how many the call stream had, over all its
connections), and the event that comes last finds them all (:func:`handle`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from callstream.analytics.digest import ExtractiveSummarizer
from callstream.analytics.recording import recording_keys
from callstream.analytics.sentiment import ROLLING_KEY
from callstream.analytics.transcripts import ROLES
from callstream.exceptions import CallstreamError, RequestError
from callstream.ports import Digest, EventBus, Recordings, Registry, Summarizer, Transcripts
from callstream.vocabulary import UNKNOWN_CALL

log = logging.getLogger(__name__)


@dataclass(eq=False)
class SummaryServices:
    """What the summary consumer talks to."""

    store: Recordings
    transcripts: Transcripts
    registry: Registry
    events: EventBus
    summarizer: Summarizer = field(default_factory=ExtractiveSummarizer)


def summary_key(call_uuid: str | None, stream_id: str) -> str:
    """Where a stream's summary lives."""
    return f"recordings/{call_uuid or UNKNOWN_CALL}/{stream_id}.summary.json"


def handle(svc: SummaryServices, detail: dict[str, Any]) -> dict[str, Any]:
    """Build and store a stream's summary and publish ``Call Completed``, once all is in.

    Runs on ``Recording Ready`` and on every ``Sentiment Scored``: whichever of the two comes
    last finds the recording and every utterance scored, and completes the call. Neither
    waits on a retry (Lambda retries an asynchronous invocation twice, over ~3 minutes: a
    summary must not depend on transcripts beating that). Both read strongly consistent
    state written before their event was published, so the last one always sees all of it;
    when both do, ``Call Completed`` goes out twice, with the same content (EventBridge
    delivers at least once anyway: consumers key on ``stream_id`` and ``generation``).

    Returns:
        The summary; or ``{"waiting": …}`` while the recording or some scores are not in;
        or ``{"superseded_by_generation": …}`` for an earlier connection's late event.

    Raises:
        RequestError: the event lacks ``stream_id``.
    """
    try:
        stream_id = str(detail["stream_id"])
    except KeyError as missing:
        raise RequestError(f"event without {missing}") from None
    sidecar_key = str(
        detail.get("sidecar") or recording_keys(detail.get("call_uuid"), stream_id)[1]
    )
    # Recording Ready names a sidecar that must exist; a score may come before the recording.
    raw = svc.store.get(sidecar_key) if "sidecar" in detail else svc.store.find(sidecar_key)
    if raw is None:
        return {"stream_id": stream_id, "waiting": "the recording"}
    sidecar = json.loads(raw)
    generation = int(sidecar.get("generation", 1))
    if generation > int(detail.get("generation", generation)):
        # A later connection of the call stream has ended since: its own Recording Ready
        # makes the summary of the whole; this one would announce the call twice.
        return {"stream_id": stream_id, "superseded_by_generation": generation}
    expected = int(sidecar.get("utterances", 0))  # the whole call stream's, all connections
    items = [i for i in svc.transcripts.for_stream(stream_id) if i["utterance"] != ROLLING_KEY]
    done = [i for i in items if i.get("sentiment")]
    if len(done) < expected:  # the last Sentiment Scored completes it
        return {"stream_id": stream_id, "waiting": f"{len(done)} of {expected} utterances scored"}
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
        "generation": generation,
        "utterances": utterances,
    }
    digested = asdict(digest(svc, stream_id, utterances))
    summary["digest"] = digested | {"action_items": list(digested["action_items"])}  # as JSON
    key = summary_key(sidecar.get("call_uuid"), stream_id)
    svc.store.put(key, json.dumps(summary, indent=2).encode(), "application/json")
    svc.registry.advance(
        stream_id, sidecar.get("call_uuid") or UNKNOWN_CALL, "stopped", transcript_key=key
    )
    svc.events.publish(
        "Call Completed",
        {
            k: summary[k]
            for k in (
                "stream_id",
                "call_uuid",
                "recording",
                "duration_s",
                "talk_time_s",
                "generation",
            )
        }
        | {"summary": key, "utterances": len(utterances), "digest": summary["digest"]},
    )
    return summary


def digest(svc: SummaryServices, stream_id: str, utterances: list[dict[str, Any]]) -> Digest:
    """The call's digest: its lines, and a voice agent's replies as the caller heard them.

    A model that fails leaves the extractive digest (logged): a summary is never held up.
    """
    lines = [
        (u["start_s"], u.get("role") or ROLES.get(u["track"], "caller"), u["text"])
        for u in utterances
    ]
    for event in svc.store.events(stream_id):
        data = event.get("data") or {}
        if event.get("name") == "agent" and data.get("action") == "turn" and data.get("reply"):
            lines.append((float(event.get("at_ms") or 0) / 1000, "agent", str(data["reply"])))
    ordered = [(role, text) for _, role, text in sorted(lines, key=lambda line: line[0])]
    try:
        return svc.summarizer.summarize(ordered)
    except CallstreamError as error:
        log.warning("stream %s: %s; the digest is extractive", stream_id, error.message)
        return ExtractiveSummarizer().summarize(ordered)
