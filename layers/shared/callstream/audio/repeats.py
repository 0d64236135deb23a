"""Events a peer can send as often as it likes, held to a rate per stream (sans I/O).

A DTMF digit, a checkpoint reached (``playedStream``) or a cleared queue (``clearedAudio``)
each becomes an event record on AudioStream, a bus event, a console row and a line of the
recording's sidecar, and flushes the open audio records: 600 digits in 10 ms on one socket were
600 bus events and 602 S3 objects. A token bucket per kind holds each to what a phone and our
own talk-back can make (DTMF: ITU-T Q.24's 40 ms tone and 40 ms pause is 12.5 digits a
second); past it an event is dropped and counted, and the first drop of each second is told
once, so a flood costs one record a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

Kind: TypeAlias = Literal["dtmf", "mark"]

#: Per kind: (events a second, burst). Marks: checkpoints reached and clears.
RATES: dict[Kind, tuple[float, float]] = {"dtmf": (12.5, 20.0), "mark": (25.0, 50.0)}
TELL_EVERY_S = 1.0


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float
    at: float | None = None
    told_at: float | None = None


@dataclass
class Repeats:
    """One stream's buckets; ``dropped`` counts what each let go."""

    dropped: dict[str, int] = field(default_factory=lambda: {"dtmf": 0, "mark": 0})
    _buckets: dict[str, _Bucket] = field(
        default_factory=lambda: {k: _Bucket(r, b, b) for k, (r, b) in RATES.items()}
    )

    def allow(self, kind: Kind, now: float) -> bool:
        """True when one more ``kind`` event at ``now`` (seconds) is within its rate."""
        bucket = self._buckets[kind]
        if bucket.at is not None and now > bucket.at:
            bucket.tokens = min(bucket.burst, bucket.tokens + (now - bucket.at) * bucket.rate)
        bucket.at = now if bucket.at is None else max(bucket.at, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        self.dropped[kind] += 1
        return False

    def tell(self, kind: Kind, now: float) -> bool:
        """After a drop: True when it is to be told (the first of each ``TELL_EVERY_S``)."""
        bucket = self._buckets[kind]
        if bucket.told_at is not None and now - bucket.told_at < TELL_EVERY_S:
            return False
        bucket.told_at = now
        return True
