"""Who may stream on a token: reconnects and copied URLs decided by order, not by timing. Sans I/O.

A WebSocket token is call-scoped (DESIGN §4): Vobiz reconnects a dropped socket to the same URL
(``maxRetries``) and that must continue the call, while a copy of the URL opened beside a live
call must be refused. One live connection per token, held as a lease in DynamoDB. When a
newcomer presents a token whose socket is open on this task, the question is whether that socket
is dead (a reconnect: replace it) or talking (a copy: refuse the newcomer, from memory, with no
DynamoDB write).

Judged by when the event loop got round to a socket, a loaded host answers wrong: the old
socket's buffered words read late look like talk, and a live socket not read for a second looks
silent. So this machine is fed what the kernel saw (the driver reads ``TCP_INFO``: when a
socket's last data arrived, and whether any is still unread), each fact stamped with when it was
true. A stalled loop only delays the facts, and every decision rests on facts:

* **talking**: the old socket received data ``TALKING_S`` after the newcomer's upgrade arrived
  (its last words, retransmitted, may trail in just after), and after it was last backlogged
  → the newcomer is refused. A socket we read slower than it sends (back-pressure: data waits
  unread) receives only as fast as we read: what still arrives then may be a dropped line's
  send buffer draining, so it is not taken for talk until the socket has caught up;
* **dead**: an observation taken ``SUPERSEDE_QUIET_S`` after the later of the newcomer's arrival
  and the old socket's last data shows nothing new, and nothing unread → the old socket is
  superseded (its end releases the lease), then the newcomer takes it;
* **closed**: the old socket's close was read → its release is written, then the newcomer takes
  the lease;
* **held elsewhere**: the lease write finds another task's holder → retried with backoff, and
  refused only on an attempt made ``LEASE_WAIT_S`` after the newcomer arrived (a late loop
  makes fewer attempts, never a wrong refusal).

Newcomers of one token are served in order of arrival. Feed events with the methods, then take
:meth:`LeaseBook.actions_ready` and carry them out; call :meth:`LeaseBook.tick` at
:meth:`LeaseBook.next_wakeup` (and every ``LEASE_RENEW_S`` for renewals).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from callstream.ports import Lease

#: A lease lasts this long unless its task renews it (a task that died frees its tokens after it).
LEASE_HOLD_S = 60.0
LEASE_RENEW_S = 20.0
#: A newcomer refused as "held elsewhere" has tried again at least this long after arriving.
LEASE_WAIT_S = 6.0
#: Vobiz sends media every 20 ms: a socket the kernel heard nothing from for this long, while a
#: newcomer presents its token, is dead (a half-open line looks open until pings time out).
SUPERSEDE_QUIET_S = 2.0
#: Data from the old socket this long after the newcomer arrived is talk, not last words.
TALKING_S = 1.0
#: Backoff of a newcomer whose lease is held elsewhere.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 0.8
#: How often a newcomer waiting on an open socket has it observed.
PROBE_S = 0.05

C = TypeVar("C")  # a connection's identity, whatever the driver uses


@dataclass(frozen=True)
class Acquire(Generic[C]):
    """Write the token's lease for ``conn`` (DynamoDB); answer with :meth:`LeaseBook.acquired`."""

    conn: C


@dataclass(frozen=True)
class Admit(Generic[C]):
    """``conn`` holds the token: open its session with what the lease says of the call."""

    conn: C
    lease: Lease


@dataclass(frozen=True)
class Refuse(Generic[C]):
    """Close ``conn`` (1008): the token is in use. ``reason`` says which way."""

    conn: C
    reason: str


@dataclass(frozen=True)
class Supersede(Generic[C]):
    """End ``conn``'s session (``superseded``): it is dead, or lost its lease; its end releases."""

    conn: C
    reason: str


@dataclass(frozen=True)
class Release(Generic[C]):
    """Give ``conn``'s lease back; answer with :meth:`LeaseBook.released`."""

    conn: C


@dataclass(frozen=True)
class Probe(Generic[C]):
    """Observe ``conn``'s socket; answer with :meth:`LeaseBook.heard`."""

    conn: C


@dataclass(frozen=True)
class Renew(Generic[C]):
    """Extend ``conn``'s lease; answer with :meth:`LeaseBook.renewed`."""

    conn: C


Action = Acquire[C] | Admit[C] | Refuse[C] | Supersede[C] | Release[C] | Probe[C] | Renew[C]

TALKING = "its socket here is talking"
HELD = "its lease is held by another connection"


class _Phase(enum.Enum):
    WAITING = "waiting"  # behind the token's open socket or its release, or backing off
    ACQUIRING = "acquiring"  # the lease write is out


@dataclass
class _Newcomer(Generic[C]):
    conn: C
    arrived: float  # when its upgrade reached the kernel
    phase: _Phase = _Phase.WAITING
    next_try: float = 0.0
    pause: float = RETRY_FIRST_S
    tried_at: float = 0.0  # when its last lease write went out


@dataclass
class _Token(Generic[C]):
    holder: C | None = None  # the token's open socket here
    heard: float = 0.0  # when the kernel last got data from it
    observed: float = 0.0  # when that was observed
    unread: bool = False  # data of it waits unread (we read it slower than it sends)
    backlogged: float = 0.0  # when it was last observed with data unread
    superseded: bool = False
    renewed: float = 0.0
    releasing: list[C] = field(default_factory=list)  # releases being written
    waiting: deque[_Newcomer[C]] = field(default_factory=deque)


class LeaseBook(Generic[C]):
    """The tokens of this task's connections: see the module docstring."""

    def __init__(self) -> None:
        """No tokens yet."""
        self._tokens: dict[str, _Token[C]] = {}
        self._of: dict[C, str] = {}
        self._actions: list[Action[C]] = []

    # -- events ----------------------------------------------------------------------------

    def opened(self, conn: C, token: str, arrived: float, now: float) -> None:
        """A socket presented ``token``; its upgrade reached the kernel at ``arrived``."""
        state = self._tokens.setdefault(token, _Token())
        self._of[conn] = token
        state.waiting.append(_Newcomer(conn, arrived))
        self._advance(token, now)

    def heard(self, conn: C, last_data: float, unread: bool, observed: float, now: float) -> None:
        """What the kernel says of ``conn`` at ``observed``: its last data came at ``last_data``."""
        state = self._state(conn)
        if state is None or state.holder != conn:
            return
        state.heard = max(state.heard, last_data)
        state.observed = max(state.observed, observed)
        state.unread = unread
        if unread:
            state.backlogged = max(state.backlogged, observed)
        self._advance(self._of[conn], now)

    def closed(self, conn: C, now: float) -> None:
        """``conn``'s session ended (its close was read, or we ended it): release its lease."""
        state = self._state(conn)
        if state is None or state.holder != conn:
            return
        state.holder = None
        state.superseded = False
        state.releasing.append(conn)
        self._actions.append(Release(conn))
        self._advance(self._of[conn], now)

    def released(self, conn: C, now: float) -> None:
        """``conn``'s release was written (or failed: expiry frees it then)."""
        token = self._of.pop(conn, None)
        if token is None:
            return
        state = self._tokens[token]
        state.releasing.remove(conn)
        self._advance(token, now)

    def acquired(self, conn: C, lease: Lease | None, now: float) -> None:
        """``conn``'s lease write answered: the lease, or None when another holder has it."""
        state = self._state(conn)
        if state is None or not state.waiting or state.waiting[0].conn != conn:
            return
        head = state.waiting[0]
        token = self._of[conn]
        if lease is not None:
            state.waiting.popleft()
            # known of its socket: its upgrade arrived; nothing was observed since
            state.holder, state.heard, state.observed = conn, head.arrived, head.arrived
            state.unread, state.renewed = False, now
            self._actions.append(Admit(conn, lease))
        elif head.tried_at >= head.arrived + LEASE_WAIT_S:
            self._refuse(token, HELD)
        else:
            head.phase = _Phase.WAITING
            head.next_try = now + head.pause
            head.pause = min(head.pause * 2, RETRY_MAX_S)
        self._advance(token, now)

    def failed(self, conn: C, now: float) -> None:
        """``conn``'s lease write failed (the table is unreachable): forget the newcomer."""
        state = self._state(conn)
        if state is not None and state.waiting and state.waiting[0].conn == conn:
            token = self._of[conn]
            state.waiting.popleft()
            self._forget(conn)
            self._advance(token, now)

    def renewed(self, conn: C, ok: bool, now: float) -> None:
        """A renewal answered; ``ok`` False: another connection took the lease after it expired."""
        state = self._state(conn)
        if state is None or state.holder != conn:
            return
        if ok:
            state.renewed = now
        elif not state.superseded:
            state.superseded = True
            self._actions.append(Supersede(conn, "lease lost"))

    def tick(self, now: float) -> None:
        """Time passed: retries, observations, renewals."""
        for token, state in list(self._tokens.items()):
            if state.holder is not None and now - state.renewed >= LEASE_RENEW_S:
                state.renewed = now  # one renewal out at a time
                self._actions.append(Renew(state.holder))
            self._advance(token, now, probe=True)

    # -- outputs ---------------------------------------------------------------------------

    def actions_ready(self) -> list[Action[C]]:
        """Return and forget the actions to carry out, in order."""
        out, self._actions = self._actions, []
        return out

    def next_wakeup(self, now: float) -> float | None:
        """When :meth:`tick` has something to do for a waiting newcomer (None: nothing)."""
        times = []
        for state in self._tokens.values():
            if not state.waiting or state.waiting[0].phase is _Phase.ACQUIRING:
                continue
            times.append(now + PROBE_S if state.holder is not None else state.waiting[0].next_try)
        return min(times, default=None)

    def holder(self, token: str) -> C | None:
        """The token's open socket on this task, if any."""
        state = self._tokens.get(token)
        return None if state is None else state.holder

    # -- the decisions ---------------------------------------------------------------------

    def _advance(self, token: str, now: float, *, probe: bool = False) -> None:
        state = self._tokens.get(token)
        if state is None:
            return
        while state.waiting:
            head = state.waiting[0]
            if head.phase is _Phase.ACQUIRING:
                break
            if state.holder is not None:
                if not self._judge(state, head, now, probe):
                    break
                continue
            if state.releasing or now < head.next_try:
                break
            head.phase, head.tried_at = _Phase.ACQUIRING, now
            self._actions.append(Acquire(head.conn))
            break
        if state.holder is None and not state.waiting and not state.releasing:
            del self._tokens[token]

    def _judge(self, state: _Token[C], head: _Newcomer[C], now: float, probe: bool) -> bool:
        """The head newcomer against the token's open socket; True when it was refused."""
        assert state.holder is not None
        talk_from = max(head.arrived, state.backlogged)
        if not state.unread and state.heard >= talk_from + TALKING_S:
            self._refuse(self._of[head.conn], TALKING)
            return True
        quiet_since = max(state.heard, head.arrived)
        if (
            not state.superseded
            and not state.unread
            and state.observed >= quiet_since + SUPERSEDE_QUIET_S
        ):
            state.superseded = True
            self._actions.append(Supersede(state.holder, "silent while its token reconnected"))
        elif now - head.arrived >= LEASE_HOLD_S:  # a socket paused this long: give up
            self._refuse(self._of[head.conn], TALKING)
            return True
        if probe and not state.superseded:  # on the timer only: a probe's answer judges again
            self._actions.append(Probe(state.holder))
        return False

    def _refuse(self, token: str, reason: str) -> None:
        head = self._tokens[token].waiting.popleft()
        self._forget(head.conn)
        self._actions.append(Refuse(head.conn, reason))

    def _forget(self, conn: C) -> None:
        self._of.pop(conn, None)

    def _state(self, conn: C) -> _Token[C] | None:
        token = self._of.get(conn)
        return None if token is None else self._tokens.get(token)
