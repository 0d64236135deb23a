"""The sweeper: ends the streams of a stream-server task that died, so nothing waits forever.

A task killed without draining (SIGKILL, a crashed host) never writes its streams' end. Every
few minutes the sweeper lists the live streams, probes each owning task's control endpoint
(``GET /internal/health``), and for a task that does not answer it ends the stream: it writes a
``close`` event (reason ``swept``) to AudioStream, so store_recording assembles the recording from
everything that reached Kinesis, and marks the registry item stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from callstream import clock
from callstream.audio import records
from callstream.ports import RecordLog, Registry, Tasks

log = logging.getLogger("callstream.analytics.sweeper")
#: The ``seq`` of a sweeper's close event: after any record a task could have written.
SWEEP_SEQ = 2**40


@dataclass(eq=False)
class SweeperServices:
    """What the sweeper talks to."""

    registry: Registry
    audio: RecordLog  # AudioStream: the sweeper writes a dead stream's end there
    tasks: Tasks


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


def handle(svc: SweeperServices, event: dict[str, Any]) -> dict[str, Any]:
    """One scheduled sweep (the schedule's event carries nothing it needs)."""
    swept = sweep(svc)
    if swept:
        # one line per sweep, naming at most 20 (a dead task may have held hundreds)
        log.warning("swept %d streams of dead tasks: %s", len(swept), ", ".join(swept[:20]))
    return {"swept": swept}
