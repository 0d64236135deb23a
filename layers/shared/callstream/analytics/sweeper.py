"""The sweeper: ends the streams of a stream-server task that died, so nothing waits forever.

A task killed without draining (SIGKILL, a crashed host) never writes its streams' end. Every
few minutes the sweeper lists the live streams, probes each owning task's control endpoint
(``GET /internal/health``), and for a task that does not answer it ends the stream: it writes a
``close`` event (reason ``swept``) to AudioStream, so store_recording assembles the recording from
everything that reached Kinesis, and marks the registry item stopped.

It also gives back the live utterances whose live final never came: the task that heard them
died (whether or not Vobiz reconnected elsewhere), or its recogniser never finished them. The
transcription consumer holds each live utterance (``transcripts._hold``); one held longer than
:data:`HOLD_S` is read again from UtteranceStream and put back unmarked, so the per-utterance
path transcribes it. Its transcript replaces the hold; a live final that comes after all is
not stored twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from callstream import clock
from callstream.analytics import transcripts
from callstream.audio import records
from callstream.exceptions import RecordError
from callstream.ports import RecordAt, RecordLog, Registry, Tasks, Transcripts

log = logging.getLogger("callstream.analytics.sweeper")
#: The ``seq`` of a sweeper's close event: after any record a task could have written.
SWEEP_SEQ = 2**40
#: How long a live utterance may wait for its live final before it is given back. Finals come
#: seconds after the utterance (Transcribe's about 1 s; a restarted worker replays in seconds),
#: so this is a task or a recogniser that is gone, not one that is slow.
HOLD_S = 300.0
#: Held utterances read back per sweep, at most: each is two Kinesis reads, and a shard
#: serves five reads a second to every reader (the consumers too). The rest wait for the next.
GIVE_BACK_MAX = 200
#: Times one utterance is given back before it is let go (its transcription keeps failing:
#: the consumer's dead-letter queue has it).
RETURNS_MAX = 3


@dataclass(eq=False)
class SweeperServices:
    """What the sweeper talks to."""

    registry: Registry
    audio: RecordLog  # AudioStream: the sweeper writes a dead stream's end there
    tasks: Tasks
    transcripts: Transcripts
    utterances: RecordLog  # UtteranceStream: held utterances are read and put back there


def sweep(svc: SweeperServices, now: float | None = None) -> list[str]:
    """End every live stream whose task is gone; return their ids."""
    now = time.time() if now is None else now
    alive: dict[str, bool] = {}
    swept = []
    for item in svc.registry.live_streams():
        address = item.task_address
        if not address:
            continue
        if address not in alive:
            alive[address] = svc.tasks.alive(address)
        if alive[address]:
            continue
        end = records.EventRecord(
            stream_id=item.stream_id,
            call_uuid=item.call_uuid,
            seq=SWEEP_SEQ,
            name="close",
            at_ms=0.0,
            received_at=now,
            data={"reason": "swept", "task_address": address},
        )
        svc.audio.put(item.stream_id, records.encode(end))
        at = clock.iso(now)
        svc.registry.mark_ended(
            item.stream_id, item.call_uuid, state="stopped", end_reason="swept", at=at
        )
        swept.append(item.stream_id)
    return swept


def give_back(svc: SweeperServices, now: float | None = None) -> dict[str, list[str]]:
    """Put back unmarked every utterance held past :data:`HOLD_S`; what was given back or lost.

    A given-back utterance is held again for :data:`HOLD_S` (its new record is on the way); one
    whose record the stream no longer has (past its retention), or given back
    :data:`RETURNS_MAX` times already, is let go, named in ``lost``.
    """
    now = time.time() if now is None else now
    given: list[str] = []
    lost: list[str] = []
    for partition in transcripts.pending_partitions():
        room = GIVE_BACK_MAX - len(given) - len(lost)
        for item in svc.transcripts.pending(partition, now - HOLD_S, room):
            name = f"{item['stream_id']}/{item['utterance']}"
            shard, sequence = str(item.get("shard", "")), str(item.get("sequence", ""))
            returns = int(item.get("returns", 0))
            record = None  # nothing to read, or given back too often: not worth a read
            if shard and sequence and returns < RETURNS_MAX:
                record = _utterance(svc.utterances.read(RecordAt(shard, sequence)))
            if record is None:
                svc.transcripts.update(item["stream_id"], item["utterance"], pending=None)
                lost.append(name)
                continue
            unmarked = msgspec.structs.replace(record, live=False)
            svc.utterances.put(record.stream_id, records.encode(unmarked))
            svc.transcripts.update(
                item["stream_id"], item["utterance"], pending_at=now, returns=returns + 1
            )
            given.append(name)
        if len(given) + len(lost) >= GIVE_BACK_MAX:
            break
    return {"given_back": given, "lost": lost}


def _utterance(data: bytes | None) -> records.UtteranceRecord | None:
    try:
        record = records.decode(data) if data is not None else None
    except RecordError:
        return None
    return record if isinstance(record, records.UtteranceRecord) else None


def handle(svc: SweeperServices, event: dict[str, Any]) -> dict[str, Any]:
    """One scheduled sweep (the schedule's event carries nothing it needs)."""
    swept = sweep(svc)
    if swept:
        # one line per sweep, naming at most 20 (a dead task may have held hundreds)
        log.warning("swept %d streams of dead tasks: %s", len(swept), ", ".join(swept[:20]))
    back = give_back(svc)
    if back["given_back"] or back["lost"]:
        log.warning(
            "gave back %d live utterances without a final (%d let go: past the stream's "
            "retention, or given back %d times): %s",
            len(back["given_back"]) + len(back["lost"]),
            len(back["lost"]),
            RETURNS_MAX,
            ", ".join((back["given_back"] + back["lost"])[:20]),
        )
    return {"swept": swept, **back}
