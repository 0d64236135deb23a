"""The transcribe_utterance consumer's domain: an utterance → text, stored and published.

The text is recognised here from an ``utterance`` record, or it is the stream server's live
final naming the utterance (``transcript`` records, docs/transcription.md). An utterance left
to its live final is held meanwhile: an item naming where its record is on UtteranceStream, so
that if the final never comes (the task died) the sweeper puts the record back for this path
(:mod:`callstream.analytics.sweeper`).

Idempotent per utterance (``stream_id``, ``track``, ``index``): a redelivered utterance that is
already transcribed and published costs one read, not a second recognition.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callstream.audio import records
from callstream.exceptions import NotReadyError, RecordError
from callstream.ports import EventBus, RecordAt, Recordings, Transcriber, Transcripts
from callstream.vocabulary import UNKNOWN_CALL

ROLES = {"inbound": "caller", "outbound": "agent"}
#: The longest one utterance may take: the longest allowed (``CALLSTREAM_UTTERANCE_MAX_MS``
#: at most 30 s) at real-time speed, plus Transcribe's setup and finalisation.
UTTERANCE_WORST_S = 30.0 + 5.0


#: Partitions of the transcripts table's sparse ``pending`` index: a held utterance is written
#: there and removed when its transcript replaces it, and one partition takes 1,000 writes a
#: second (about 500 held utterances a second), so they are spread over several.
PENDING_SPREAD = 8


def pending_partitions() -> list[str]:
    """Every partition of the ``pending`` index."""
    return [f"held#{n}" for n in range(PENDING_SPREAD)]


def pending_partition(stream_id: str) -> str:
    """The ``pending`` index partition a stream's held utterances go in."""
    return pending_partitions()[zlib.crc32(stream_id.encode()) % PENDING_SPREAD]


def check_time_left(remaining_s: float) -> None:
    """Refuse to start an utterance the invocation may not have time to finish.

    The record is reported as a batch item failure, so Lambda hands it (and what follows it on
    the shard) to the next invocation instead of the whole batch timing out and being retried.

    Raises:
        NotReadyError: less than :data:`UTTERANCE_WORST_S` left.
    """
    if remaining_s < UTTERANCE_WORST_S:
        raise NotReadyError(
            f"{remaining_s:.1f} s left, an utterance may take {UTTERANCE_WORST_S:.0f} s: deferred"
        )


def utterance_key(track: str, index: int) -> str:
    """The sort key of an utterance in the transcripts table."""
    return f"{track}#{index:09d}"  # 9 digits: a reconnect's numbers start at 10**6


@dataclass(eq=False)
class TranscriptServices:
    """What the transcription consumer talks to."""

    transcriber: Transcriber
    transcripts: Transcripts
    events: EventBus
    language: str
    quarantine: Recordings  # where records that are not utterances are kept


def handle(svc: TranscriptServices, data: bytes, at: RecordAt) -> dict[str, Any] | None:
    """Store one utterance's transcript and publish ``Utterance Transcribed``, once.

    Two records bring one: an ``utterance`` (recognised here), or, when the stream server hears
    the call live (docs/transcription.md), the ``transcript`` final naming it. An utterance
    marked ``live`` is left to that final, and held until it comes (``at``: where the record
    is, to read it again). The other live records are the console's: a
    provisional final is published as ``Utterance Transcribed`` (``kind: provisional``, not
    stored, not scored), a partial as ``Transcript Partial``.

    Raises:
        RecordError: not an UtteranceStream record.
        UpstreamError: the recogniser failed (the record is retried, then dead-lettered).
    """
    record = records.decode(data)
    if isinstance(record, records.TranscriptRecord):
        return _live(svc, record)
    if not isinstance(record, records.UtteranceRecord):
        raise RecordError(f"{type(record).__name__} does not belong on UtteranceStream")
    if record.live:
        _hold(svc, record, at)
        return None
    key = utterance_key(record.track, record.index)
    return _once(svc, record.stream_id, key, lambda: _recognised_item(svc, record))


def _hold(svc: TranscriptServices, record: records.UtteranceRecord, at: RecordAt) -> None:
    """Note a live utterance and where its record is, unless its transcript is stored already."""
    svc.transcripts.put_new(
        _base(record, record.index)
        | {
            "start_ms": record.start_ms,
            "end_ms": record.end_ms,
            "pending": pending_partition(record.stream_id),
            "pending_at": time.time(),
            "shard": at.shard,
            "sequence": at.sequence,
        }
    )


def superseded(batch: list[bytes]) -> set[int]:
    """Positions of the live records a later one of the same batch replaces: not published.

    A line's partials come several a second; the console only shows its newest words, so of a
    line's records in one batch only the last is published (a provisional final goes too when
    its final is in the batch, and a partial when a later final or provisional settles it).
    What is not a live record is never passed over.
    """
    later: set[tuple[str, str]] = set()  # (stream, line) a later record of the batch settles
    final_later: set[tuple[str, str]] = set()
    out: set[int] = set()
    for position in range(len(batch) - 1, -1, -1):
        try:
            record = records.decode(batch[position])
        except RecordError:
            continue  # the handler says why, record by record
        if not isinstance(record, records.TranscriptRecord):
            continue
        line = (record.stream_id, record.result_id)
        replaced = later if record.kind == "partial" else final_later
        if record.kind != "final" and line in replaced:
            out.add(position)
        later.add(line)
        later.update((record.stream_id, other) for other in record.settles)
        if record.kind == "final":
            final_later.add(line)
    return out


def _live(svc: TranscriptServices, record: records.TranscriptRecord) -> dict[str, Any]:
    """A live result: a final is stored and published once; the rest are published as they are."""
    index = record.utterance_index
    if record.kind == "final" and index is not None:
        key = utterance_key(record.track, index)
        return _once(svc, record.stream_id, key, lambda: _live_item(svc, record, index))
    line = {
        "stream_id": record.stream_id,
        "call_uuid": record.call_uuid or UNKNOWN_CALL,
        "track": record.track,
        "role": ROLES.get(record.track, record.track),
        "result_id": record.result_id,
        "start_ms": record.start_ms,
        "end_ms": record.end_ms,
        "text": record.text,
        "heard_at": record.received_at,  # when the server made it (epoch s): freshness
    }
    if record.kind == "provisional" and index is not None:
        detail = line | {
            "kind": "provisional",
            "utterance": utterance_key(record.track, index),
            "index": index,
            "settles": list(record.settles),
            "confidence": record.confidence,
            "language": record.language or svc.language,
        }
        svc.events.publish("Utterance Transcribed", detail)
        return detail
    # a partial (or a provisional naming no utterance: words so far all the same), or the
    # last word on a line no utterance took (withdrawn when empty): done
    detail = line | {"done": record.kind == "final"}
    svc.events.publish("Transcript Partial", detail)
    return detail


def _base(record: records.UtteranceRecord | records.TranscriptRecord, index: int) -> dict[str, Any]:
    return {
        "stream_id": record.stream_id,
        "utterance": utterance_key(record.track, index),
        "call_uuid": record.call_uuid or UNKNOWN_CALL,
        "track": record.track,
        "role": ROLES.get(record.track, record.track),
        "index": index,
        "published": False,
    }


def _recognised_item(svc: TranscriptServices, record: records.UtteranceRecord) -> dict[str, Any]:
    """The utterance recognised here, in the stream's language (else the deployment's)."""
    language = record.language or svc.language
    transcript = svc.transcriber.transcribe(record.payload, record.sample_rate, language)
    return _base(record, record.index) | {
        "start_ms": record.start_ms,
        "end_ms": record.end_ms,
        "split": record.split,
        "text": transcript.text,
        "confidence": transcript.confidence,
        "language": language,
        "transcriber": svc.transcriber.name,
    }


def _live_item(
    svc: TranscriptServices, record: records.TranscriptRecord, index: int
) -> dict[str, Any]:
    """The utterance as the stream server's live recognition heard it (its final)."""
    return (
        _base(record, index)
        | {
            "start_ms": record.start_ms,
            "end_ms": record.end_ms,
            "split": record.split,
            "text": record.text,
            "confidence": record.confidence,
            "language": record.language or svc.language,
            "transcriber": "live",
            "result_id": record.result_id,
        }
        | ({"settles": list(record.settles)} if record.settles else {})
    )


def _once(
    svc: TranscriptServices, stream_id: str, key: str, make: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Store the item (unless a redelivery finds it stored), publish it once."""
    item = svc.transcripts.get(stream_id, key)
    if item is None or "pending" in item:  # none yet, or only held: this is its transcript
        item = make()
        svc.transcripts.put(item)
    if not item.get("published"):
        detail = {
            k: item.get(k)
            for k in (
                "stream_id",
                "call_uuid",
                "utterance",
                "track",
                "role",
                "index",
                "start_ms",
                "end_ms",
                "text",
                "confidence",
                "language",
                "result_id",
                "settles",
            )
            if k in item
        } | {"kind": "final"}
        svc.events.publish("Utterance Transcribed", detail)
        svc.transcripts.update(stream_id, key, published=True)
    return item
