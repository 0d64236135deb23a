"""Our keepalive of one Vobiz socket: find a dead peer, never blame one we paused. Sans I/O.

A dropped line (a dead NAT, a lost Vobiz node) leaves our side of the socket open: nothing
arrives, and nothing says so. So after ``idle_s`` without a byte from the peer we ping, and a
peer that sends nothing in the ``reply_s`` after the ping is dead.

picows's own auto-ping does the same by the bytes *it* read, which back-pressure stops: while a
session waits for Kinesis it does not read its socket, picows sees silence, pings, cannot read
the pong, and closed a live call we had paused ourselves (issue 22: a long demo call at
40x speed was cut at 214-317 s in every run). This one counts the bytes the *kernel* got
(``TCP_INFO``, read by the server), and time spent paused counts as no one's silence: the idle
clock starts again when reading resumes.
"""

from __future__ import annotations

import enum

#: A socket the kernel got nothing from for this long (while we read it) is pinged; one that
#: then sends nothing for as long again is closed (1011 keepalive ping timeout).
IDLE_S = 20.0
REPLY_S = 20.0


class Verdict(enum.Enum):
    """What to do with the socket now."""

    OK = "ok"
    PING = "ping"
    DEAD = "dead"


class Keepalive:
    """One socket's keepalive. Call :meth:`check` periodically (every second or so).

    Args:
        idle_s: silence that earns the peer a ping.
        reply_s: how long after the ping the peer has to send anything (its pong, or media).
    """

    __slots__ = ("_pinged_at", "_resumed_at", "idle_s", "reply_s")

    def __init__(self, idle_s: float = IDLE_S, reply_s: float = REPLY_S, now: float = 0.0) -> None:
        """Start counting at ``now``."""
        self.idle_s = idle_s
        self.reply_s = reply_s
        self._pinged_at: float | None = None
        self._resumed_at = now

    def check(self, now: float, last_data: float, paused: bool) -> Verdict:
        """The verdict at ``now``.

        Args:
            now: the time (``time.monotonic``).
            last_data: when the peer's last byte reached the kernel.
            paused: whether we are not reading its socket (back-pressure).
        """
        if paused:  # its silence is ours: nothing counts until we read again
            self._pinged_at = None
            self._resumed_at = now
            return Verdict.OK
        if self._pinged_at is not None:
            if last_data > self._pinged_at:
                self._pinged_at = None  # it answered (a pong, or anything)
            elif now - self._pinged_at >= self.reply_s:
                return Verdict.DEAD
            else:
                return Verdict.OK
        if now - max(last_data, self._resumed_at) >= self.idle_s:
            self._pinged_at = now
            return Verdict.PING
        return Verdict.OK
