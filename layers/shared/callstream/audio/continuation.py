"""A reconnect's continuation: where the call's stream stands, and how long the line was down.

Vobiz reconnects a dropped socket (``maxRetries``) with a fresh ``start`` and a new ``streamId``;
the server hands the new connection's assembler a :class:`Continuation` (carried on the token's
lease), and the assembler moves the call's timeline on by the outage: a ``gap`` of that length.
"""

from __future__ import annotations

from dataclasses import dataclass

#: An outage longer than this by Vobiz's timestamps is not believed (a clock that jumped):
#: our own clock measures it instead. Vobiz retries a dropped socket within seconds.
MAX_STAMPED_OUTAGE_MS = 10 * 60 * 1000
#: Timestamps may jitter: a reconnect's first frame this little before the last one's end
#: is taken as no outage at all, not as a clock to distrust.
STAMP_JITTER_MS = 100
#: Record numbers of each reconnect start this far after the previous connection's.
SEQ_STRIDE = 2**32
#: Utterance numbers of each reconnect start this far after the previous connection's: the
#: transcripts are keyed on them, and a reconnect's first utterance must not pass for the
#: first connection's (it would be taken as transcribed already). The generation is bumped
#: when the lease is taken, so this holds even when the previous task died without a word.
UTTERANCE_STRIDE = 10**6


@dataclass(frozen=True)
class Continuation:
    """Where a call's stream stands when Vobiz reconnects it (a new socket, a fresh ``start``).

    Attributes:
        stream_id: the call stream this connection continues (its first connection's id).
        generation: 2 for the first reconnect, 3 for the next, …
        position_ms: media time the previous connection reached.
        outage_ms: how long the line was down by our clock (one socket's end to the next's
            start): late when our loop was, so only the fallback for ``media_clock_ms``.
        media_clock_ms: Vobiz's ``timestamp`` at ``position_ms``, if it sent timestamps: the
            new connection's first frame then measures the outage on Vobiz's own clock.
        previous_stream_id: Vobiz's stream id of the previous connection.
        frames: frames the earlier connections received (the end event counts the whole
            call stream, so that its recording and summary wait for all of it).
        utterances: utterances the earlier connections found.
    """

    stream_id: str
    generation: int
    position_ms: float
    outage_ms: float
    media_clock_ms: float | None = None
    previous_stream_id: str | None = None
    frames: int = 0
    utterances: int = 0


def outage(cont: Continuation, first_stamp: int | None) -> tuple[float, str]:
    """The outage in ms, and what measured it, given the reconnect's first frame's timestamp.

    Vobiz's clock when both connections carry timestamps (ours saw each socket when our loop got
    to it, seconds late on a busy host, and a recording built on it would slide); ours when a
    timestamp is missing, or says something no retry does (a clock that jumped).
    """
    if first_stamp is not None and cont.media_clock_ms is not None:
        stamped = first_stamp - cont.media_clock_ms
        if -STAMP_JITTER_MS <= stamped <= MAX_STAMPED_OUTAGE_MS:
            return max(0.0, stamped), "timestamps"
    return cont.outage_ms, "clock"


def clock_at(
    media_clock: tuple[int, int] | None, position_ms: float, sample_rate: int | None
) -> float | None:
    """Vobiz's timestamp at ``position_ms``, from one (timestamp, sample) pair seen on the line."""
    if media_clock is None or not sample_rate:
        return None
    stamp, sample = media_clock
    return stamp + (position_ms - sample * 1000 / sample_rate)
