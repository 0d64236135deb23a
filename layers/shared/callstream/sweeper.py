"""The sweeper: ends the streams of a stream-server task that died, so nothing waits forever.

A task killed without draining (SIGKILL, a crashed host) never writes its streams' end. Every
few minutes the sweeper lists the live streams, probes each owning task's control endpoint
(``GET /internal/health``), and for a task that does not answer it ends the stream: it writes a
``close`` event (reason ``swept``) to AudioStream, so store_recording assembles the recording from
everything that reached Kinesis, and marks the registry item stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import urllib3

from callstream import clock, records, settings
from callstream.adapters.clients import client
from callstream.adapters.dynamodb import DynamoRegistry

#: The ``seq`` of a sweeper's close event: after any record a task could have written.
SWEEP_SEQ = 2**40


@dataclass(eq=False)
class SweeperServices:
    """What the sweeper talks to."""

    registry: DynamoRegistry
    kinesis: Any
    audio_stream: str
    http: urllib3.PoolManager


@cache
def services() -> SweeperServices:
    """The process's services."""
    cfg = settings.load(settings.SweeperSettings)
    return SweeperServices(
        registry=DynamoRegistry(client("dynamodb"), cfg.registry_table),
        kinesis=client("kinesis"),
        audio_stream=cfg.audio_stream,
        http=urllib3.PoolManager(),
    )


def task_alive(http: urllib3.PoolManager, task_address: str, timeout_s: float = 2.0) -> bool:
    """Whether the task at ``task_address`` answers its health probe."""
    try:
        response = http.request(
            "GET",
            f"{task_address.rstrip('/')}/internal/health",
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            retries=urllib3.Retry(total=1, backoff_factor=0.2),
        )
    except urllib3.exceptions.HTTPError:
        return False
    return response.status == 200


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
            alive[address] = task_alive(svc.http, address)
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
        svc.kinesis.put_record(
            StreamName=svc.audio_stream, Data=records.encode(end), PartitionKey=item.stream_id
        )
        at = clock.iso(now)
        svc.registry.mark_ended(
            item.stream_id, item.call_uuid, state="stopped", end_reason="swept", at=at
        )
        swept.append(item.stream_id)
    return swept
