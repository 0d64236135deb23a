"""The session's hooks: what a stream's life writes to the registry, the leases and ECS.

:class:`Bookkeeping` is the :class:`~stream_server.session.Hooks` every session of a server is
given. The registry is bookkeeping: a failed write is logged on the session's logger and the
audio goes on regardless. A reconnect (a ``start`` whose Vobiz stream id is not ours) is also
recorded under Vobiz's own id, linked to the call stream it continues.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from callstream.clock import now_iso
from stream_server.lease_driver import LeaseDriver
from stream_server.ports import Protection, Registry
from stream_server.session import Session


class Bookkeeping:
    """One per server; every session calls it at its start, end, refusal and release."""

    def __init__(
        self,
        registry: Registry,
        protection: Protection,
        leasing: LeaseDriver,
        *,
        task_address: Callable[[], str],
        others_live: Callable[[Session], bool],
    ) -> None:
        self.registry = registry
        self.protection = protection
        self.leasing = leasing
        self._task_address = task_address
        self._others_live = others_live

    async def started(self, session: Session) -> None:
        """A stream started: record it as ours and hold scale-in protection."""
        await self.protection.set(True)
        assembler = session.assembler
        fields: dict[str, Any] = {
            "codec": assembler.codec,
            "sample_rate": assembler.sample_rate,
            "tracks": list(assembler.tracks),
            "task_address": self._task_address(),
            "bidirectional": session.grant.bidirectional,
            "agent": session.agent.name,
            "generation": session.generation,
            "vobiz_stream_id": assembler.vobiz_stream_id,
            "at": now_iso(),
        }
        await self._write(session, self.registry.mark_started, session.stream_id, fields)
        vobiz = assembler.vobiz_stream_id
        if vobiz is not None and vobiz != session.stream_id:  # a reconnect: link its own id
            linked = {k: v for k, v in fields.items() if k != "generation"}
            linked["continues"] = session.stream_id
            await self._write(session, self.registry.mark_started, vobiz, linked)

    async def ended(self, session: Session) -> None:
        """A stream ended and was flushed: record how; release protection if it was the last."""
        stats = session.assembler.stats
        fields: dict[str, Any] = {
            "state": "failed" if session.end_reason in ("error", "refused") else "stopped",
            "end_reason": session.end_reason or "close",
            "frames": stats.frames,
            "gaps": stats.gaps,
            "generation": session.generation,
            "at": now_iso(),
        }
        await self._write(session, self.registry.mark_ended, session.stream_id, fields)
        vobiz = session.assembler.vobiz_stream_id
        if vobiz is not None and vobiz != session.stream_id:
            linked = {k: v for k, v in fields.items() if k != "generation"}
            await self._write(session, self.registry.mark_ended, vobiz, linked)
        if not self._others_live(session):
            await self.protection.set(False)

    def release(self, session: Session) -> None:
        """The socket is gone: free the token for Vobiz's reconnect, with the call's position."""
        assembler = session.assembler
        self.leasing.ended(
            session.lease_id,
            stream_id=assembler.stream_id,
            vobiz_stream_id=assembler.vobiz_stream_id,
            position_ms=assembler.position_ms,
            media_clock_ms=assembler.media_clock_ms,
            frames=assembler.stream_totals.frames,
            utterances=assembler.stream_totals.utterances,
            # our clock's fallback for the outage (the reconnect measures it on Vobiz's
            # timestamps when both connections carry them): taken now, not when a busy thread
            # pool gets to the write
            released_at=time.time(),
        )

    async def annotate(self, session: Session, **fields: str) -> None:
        """Something learnt about a started stream (its L16 byte order): on its registry item."""
        await self._write(session, self.registry.annotate, session.stream_id, dict(fields))

    async def refused(self, session: Session, stream_id: str | None, reason: str) -> None:
        """The stream's ``start`` was refused: the registry says so (never a silent loss)."""
        key = stream_id or f"refused-{session.grant.jti[:16]}"
        fields = {"state": "failed", "end_reason": reason[:200], "at": now_iso()}
        await self._write(session, self.registry.mark_ended, key, fields)

    @staticmethod
    async def _write(
        session: Session,
        write: Callable[..., Any],
        stream_id: str | None,
        fields: dict[str, Any],
    ) -> None:
        assert stream_id is not None
        try:
            await asyncio.to_thread(write, stream_id, session.grant.call_uuid, **fields)
        except Exception:  # the registry is bookkeeping: the audio goes on regardless
            session.log.exception("registry %s failed", getattr(write, "__name__", "write"))
