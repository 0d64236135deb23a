"""Carries out what the lease machine (:mod:`stream_server.leases`) decides: the I/O half.

It feeds the machine what the kernel saw of each socket (``TCP_INFO``, via
:meth:`stream_server.transport.PicowsConnection.kernel_view`), runs the DynamoDB lease calls
in threads, and answers each newcomer's claim: its lease, or None (refused: 1008).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callstream.ports import Lease, Leases
from stream_server import leases as machine
from stream_server.leases import LEASE_HOLD_S, LEASE_RENEW_S, LeaseBook
from stream_server.ports import Ending, Observed

log = logging.getLogger("callstream.leases")


@dataclass
class _Conn:
    token: str
    holder: str  # the lease's holder id
    socket: Observed
    claim: asyncio.Future[Lease | None]
    session: Ending | None = None
    last_heard: Callable[[], float] | None = None  # the loop's view, where the kernel's is not
    paused: Callable[[], bool] = lambda: False  # its session stopped reading (back-pressure)
    release: dict[str, Any] = field(default_factory=dict)


class LeaseDriver:
    """One per server. ``claim`` when a socket presents its token; ``ended`` when it is gone."""

    def __init__(
        self,
        leases: Leases,
        *,
        on_refused: Callable[[str, str], None] = lambda token, reason: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Drive ``leases`` (the DynamoDB adapter); ``on_refused(token, reason)`` is told."""
        self._leases = leases
        self._on_refused = on_refused
        self._clock = clock
        self._book: LeaseBook[int] = LeaseBook()
        self._conns: dict[int, _Conn] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def claim(
        self, token: str, holder: str, socket: Observed
    ) -> tuple[int, asyncio.Future[Lease | None]]:
        """A socket presents ``token``: its id, and a future of its lease (None: refused)."""
        now = self._clock()
        view = socket.kernel_view()
        arrived = view[0] if view is not None else now
        conn = next(self._ids)
        future: asyncio.Future[Lease | None] = asyncio.get_running_loop().create_future()
        self._conns[conn] = _Conn(token, holder, socket, future)
        self._book.opened(conn, token, min(arrived, now), now)
        self._run()
        return conn, future

    def attach(
        self,
        conn: int,
        session: Ending,
        last_heard: Callable[[], float],
        paused: Callable[[], bool],
    ) -> None:
        """The admitted socket's session (what a supersede ends) and what it knows of it."""
        entry = self._conns[conn]
        entry.session, entry.last_heard, entry.paused = session, last_heard, paused

    def ended(self, conn: int, **release: Any) -> None:
        """The socket's session ended: give the lease back with where the call stands."""
        entry = self._conns.get(conn)
        if entry is None:
            return
        entry.release = release
        self._book.closed(conn, self._clock())
        self._run()

    def tick(self) -> None:
        """Retries, observations and renewals that are due (the server calls it periodically)."""
        self._book.tick(self._clock())
        self._run()

    def close(self) -> None:
        """Stop the timer and the calls in flight."""
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()

    # -- carrying out ------------------------------------------------------------------------

    def _run(self) -> None:
        while actions := self._book.actions_ready():  # a probe's answer may decide at once
            for action in actions:
                self._carry_out(action)
        self._schedule()

    def _carry_out(self, action: machine.Action[int]) -> None:
        entry = self._conns.get(action.conn)
        if entry is None:
            return
        if isinstance(action, machine.Probe):
            self._probe(action.conn, entry)
        elif isinstance(action, machine.Acquire):
            self._spawn(self._acquire(action.conn, entry))
        elif isinstance(action, machine.Admit):
            if not entry.claim.done():
                entry.claim.set_result(action.lease)
        elif isinstance(action, machine.Refuse):
            del self._conns[action.conn]
            self._on_refused(entry.token, action.reason)
            if not entry.claim.done():
                entry.claim.set_result(None)
        elif isinstance(action, machine.Supersede):
            log.warning("superseded (%s): token %s…", action.reason, entry.token[:8])
            if entry.session is not None:
                entry.session.request_stop("superseded", 1001, "replaced by a new connection")
        elif isinstance(action, machine.Release):
            self._spawn(self._release(action.conn, entry))
        elif isinstance(action, machine.Renew):
            self._spawn(self._renew(action.conn, entry))

    def _probe(self, conn: int, entry: _Conn) -> None:
        view = entry.socket.kernel_view()
        now = self._clock()
        if view is None:  # no TCP_INFO (not Linux): the loop's view, which a stall can fool
            heard = entry.last_heard() if entry.last_heard is not None else now
            view = (heard, False)

        self._book.heard(conn, view[0], view[1], now, now)

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wake = self._book.next_wakeup(self._clock())
        if wake is not None:
            delay = max(0.0, wake - self._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self.tick)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _acquire(self, conn: int, entry: _Conn) -> None:
        try:
            lease = await asyncio.to_thread(
                self._leases.acquire, entry.token, entry.holder, LEASE_HOLD_S
            )
        except Exception as error:  # the lease table is unreachable: refuse; Vobiz retries
            self._book.failed(conn, self._clock())
            self._conns.pop(conn, None)
            if not entry.claim.done():
                entry.claim.set_exception(error)
        else:
            self._book.acquired(conn, lease, self._clock())
        self._run()

    async def _release(self, conn: int, entry: _Conn) -> None:
        try:
            await asyncio.to_thread(
                self._leases.release, entry.token, entry.holder, **entry.release
            )
        except Exception:  # the lease then expires (LEASE_HOLD_S): a reconnect waits that long
            log.exception("lease release failed")
        finally:
            self._conns.pop(conn, None)
            self._book.released(conn, self._clock())
            self._run()

    async def _renew(self, conn: int, entry: _Conn) -> None:
        try:
            ok = await asyncio.to_thread(
                self._leases.renew, entry.token, entry.holder, LEASE_HOLD_S
            )
        except Exception:  # bookkeeping: the call goes on; expiry is the backstop
            log.exception("lease renewal failed")
            return
        self._book.renewed(conn, ok, self._clock())
        self._run()


#: How often the server ticks the driver for renewals (waiting newcomers set their own timer).
RENEW_TICK_S = LEASE_RENEW_S / 4
