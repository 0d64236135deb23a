"""The token lease machine, on a fake clock (issue 22): every scenario runs on an idle loop and
on one that stalls 2 s before it handles each event. The kernel's facts (when a socket's data
arrived) keep their true times; only the machine's ``now`` is late. Decisions must not change."""

from __future__ import annotations

import pytest

from callstream.ports import Lease
from stream_server.leases import (
    HELD,
    LEASE_RENEW_S,
    LEASE_WAIT_S,
    SUPERSEDE_QUIET_S,
    TALKING,
    Acquire,
    Admit,
    LeaseBook,
    Probe,
    Refuse,
    Release,
    Renew,
    Supersede,
)

STALLS = pytest.mark.parametrize("stall", [0.0, 2.0], ids=["idle loop", "2 s stalls"])


class Loop:
    """Delivers each event ``stall`` seconds after it happened, and runs the timer."""

    def __init__(self, stall: float) -> None:
        self.book: LeaseBook[str] = LeaseBook()
        self.stall = stall
        self.now = 0.0
        self.log: list[object] = []

    def at(self, t: float) -> float:
        """The loop's clock when it handles something that happened at ``t``."""
        self.now = max(self.now, t) + self.stall
        return self.now

    def take(self) -> list[object]:
        actions = self.book.actions_ready()
        self.log += actions
        return actions

    def admit(self, conn: str, token: str = "tok", t: float = 0.0) -> None:
        self.book.opened(conn, token, t, self.at(t))
        assert self.take() == [Acquire(conn)]
        self.book.acquired(conn, Lease(generation=1), self.at(t))
        assert self.take() == [Admit(conn, Lease(generation=1))]

    def run_until(self, until: float, last_data) -> list[object]:
        """Tick every 50 ms up to ``until``, answering probes with the kernel's ``last_data(t)``."""
        out = []
        while self.now < until:
            self.book.tick(self.at(self.now + 0.05))
            for action in self.take():
                out.append(action)
                if isinstance(action, Probe):
                    observed = self.now  # the kernel is read when the loop gets to it
                    self.book.heard(action.conn, last_data(observed), False, observed, self.now)
                    out += self.take()
            if any(isinstance(a, Refuse | Supersede | Acquire) for a in out):
                return out
        return out


@STALLS
def test_a_reconnect_after_the_old_close_is_read_takes_the_lease_once_it_is_released(stall):
    loop = Loop(stall)
    loop.admit("old")
    loop.book.opened("new", "tok", 10.0, loop.at(10.0))
    assert loop.take() == []  # waits on the open socket
    loop.book.closed("old", loop.at(10.1))
    assert loop.take() == [Release("old")], "no lease write while the release is out"
    loop.book.released("old", loop.at(10.2))
    assert loop.take() == [Acquire("new")]
    loop.book.acquired("new", Lease(generation=2), loop.at(10.3))
    assert loop.take() == [Admit("new", Lease(generation=2))]


@STALLS
def test_a_half_open_socket_is_superseded_once_the_kernel_heard_nothing_for_the_window(stall):
    loop = Loop(stall)
    loop.admit("old")
    loop.book.opened("new", "tok", 10.0, loop.at(10.0))
    actions = loop.run_until(30.0, lambda t: 9.9)  # its last data came just before the drop
    assert [a for a in actions if not isinstance(a, Probe)] == [
        Supersede("old", "silent while its token reconnected")
    ]
    assert loop.now >= 10.0 + SUPERSEDE_QUIET_S
    loop.book.closed("old", loop.at(loop.now))
    loop.book.released("old", loop.at(loop.now))
    assert loop.take()[-1] == Acquire("new")


@STALLS
def test_buffered_words_read_late_are_not_talk(stall):
    """The old socket's last frames reached the kernel before the newcomer; a loaded loop reads
    them seconds later. Once a refusal (CI saw it); they count by when they came."""
    loop = Loop(stall)
    loop.admit("old")
    loop.book.opened("new", "tok", 10.0, loop.at(10.0))
    actions = loop.run_until(30.0, lambda t: 9.99)
    assert not [a for a in actions if isinstance(a, Refuse)]
    assert Supersede("old", "silent while its token reconnected") in actions


@STALLS
def test_a_copied_url_beside_a_live_socket_is_refused_without_a_lease_write(stall):
    loop = Loop(stall)
    loop.admit("live")
    for i, t in enumerate((10.0, 20.0, 30.0)):  # again and again
        loop.now = max(loop.now, t)
        loop.book.opened(f"copy-{i}", "tok", t, loop.at(t))
        actions = loop.run_until(t + 20, lambda now: now - 0.02)  # media every 20 ms
        refusals = [a for a in actions if isinstance(a, Refuse)]
        assert refusals == [Refuse(f"copy-{i}", TALKING)]
    assert not [a for a in loop.log if isinstance(a, Acquire) and a.conn != "live"]
    assert not [a for a in loop.log if isinstance(a, Supersede)]
    assert loop.book.holder("tok") == "live"


@STALLS
def test_a_paused_socket_with_unread_data_is_not_taken_for_dead(stall):
    loop = Loop(stall)
    loop.admit("old")
    loop.book.opened("new", "tok", 10.0, loop.at(10.0))
    # back-pressure: its buffer is full, so the peer cannot send: the kernel hears nothing
    loop.book.heard("old", 9.9, True, loop.at(15.0), loop.now)
    loop.book.tick(loop.at(15.0))
    assert not [a for a in loop.take() if isinstance(a, Supersede)]
    loop.book.heard("old", 9.9, False, loop.at(16.0), loop.now)  # read out: nothing came since
    assert Supersede("old", "silent while its token reconnected") in loop.take()


@STALLS
def test_a_lease_held_elsewhere_is_refused_only_on_a_try_made_after_the_wait(stall):
    loop = Loop(stall)
    loop.book.opened("new", "tok", 0.0, loop.at(0.0))
    tries = []
    while True:
        actions = loop.take()
        if any(isinstance(a, Refuse) for a in actions):
            break
        if any(isinstance(a, Acquire) for a in actions):
            tries.append(loop.now)
            loop.book.acquired("new", None, loop.at(loop.now))
            continue
        loop.book.tick(loop.at(loop.now + 0.05))
    assert actions == [Refuse("new", HELD)]
    assert tries[-1] >= LEASE_WAIT_S and len(tries) >= 2


@STALLS
def test_a_lease_freed_elsewhere_while_waiting_is_taken(stall):
    loop = Loop(stall)
    loop.book.opened("new", "tok", 0.0, loop.at(0.0))
    admitted = None
    while admitted is None:
        for action in loop.take():
            if isinstance(action, Acquire):
                free = loop.now >= 5.0  # the other task released at 5 s
                lease = Lease(generation=2) if free else None
                loop.book.acquired("new", lease, loop.at(loop.now))
            if isinstance(action, Refuse):
                pytest.fail("refused a lease that was freed within the wait")
            if isinstance(action, Admit):
                admitted = action
        loop.book.tick(loop.at(loop.now + 0.05))
    assert admitted == Admit("new", Lease(generation=2))


@STALLS
def test_leases_are_renewed_and_a_lost_lease_ends_its_socket(stall):
    loop = Loop(stall)
    loop.admit("a")
    loop.book.tick(loop.at(loop.now + LEASE_RENEW_S - 0.5 - loop.stall))
    assert loop.take() == []
    loop.book.tick(loop.at(loop.now + 0.6))
    assert loop.take() == [Renew("a")]
    loop.book.renewed("a", True, loop.at(loop.now))
    loop.book.tick(loop.at(loop.now + LEASE_RENEW_S + 0.1))
    assert loop.take() == [Renew("a")]
    loop.book.renewed("a", False, loop.at(loop.now))
    assert loop.take() == [Supersede("a", "lease lost")]


@STALLS
def test_newcomers_are_served_in_order_and_the_second_judged_against_the_first(stall):
    loop = Loop(stall)
    loop.admit("old")
    loop.book.opened("n1", "tok", 10.0, loop.at(10.0))
    loop.book.opened("n2", "tok", 10.01, loop.at(10.01))
    loop.book.closed("old", loop.at(10.1))
    loop.book.released("old", loop.at(10.2))
    assert loop.take() == [Release("old"), Acquire("n1")]
    loop.book.acquired("n1", Lease(generation=2), loop.at(10.3))
    assert loop.take() == [Admit("n1", Lease(generation=2))]
    actions = loop.run_until(40.0, lambda now: now - 0.02)  # n1 talks: n2 is the copy
    assert [a for a in actions if isinstance(a, Refuse)] == [Refuse("n2", TALKING)]


def test_other_tokens_are_independent():
    loop = Loop(0.0)
    loop.admit("a", "tok-a")
    loop.admit("b", "tok-b")
    loop.book.closed("a", 1.0)
    assert loop.take() == [Release("a")]
    assert loop.book.holder("tok-b") == "b"


@STALLS
def test_a_dropped_lines_send_buffer_draining_behind_back_pressure_is_not_talk(stall):
    """Data the kernel receives only as fast as we read (a backlog) may be a dead line's send
    buffer: talk counts from the moment the socket caught up, not from the newcomer."""
    loop = Loop(stall)
    loop.admit("old")
    loop.book.opened("new", "tok", 10.0, loop.at(10.0))
    for t in (11.0, 12.0, 13.0, 14.0):  # arriving after the newcomer, with data unread
        loop.book.heard("old", t, True, loop.at(t), loop.now)
    assert not [a for a in loop.take() if isinstance(a, Refuse)]
    loop.book.heard("old", 14.2, False, loop.at(14.3), loop.now)  # caught up: then its FIN
    assert not [a for a in loop.take() if isinstance(a, Refuse)]
    loop.book.closed("old", loop.at(14.4))
    loop.book.released("old", loop.at(14.5))
    assert loop.take()[-1] == Acquire("new")


@STALLS
def test_a_live_socket_that_catches_up_and_keeps_talking_is_still_talking(stall):
    loop = Loop(stall)
    loop.admit("live")
    loop.book.opened("copy", "tok", 10.0, loop.at(10.0))
    loop.book.heard("live", 11.0, True, loop.at(11.0), loop.now)
    loop.now = max(loop.now, 11.0)
    actions = loop.run_until(40.0, lambda now: now - 0.02)
    assert [a for a in actions if isinstance(a, Refuse)] == [Refuse("copy", TALKING)]
