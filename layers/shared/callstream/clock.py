"""Time as callstream writes it: ISO 8601 UTC with milliseconds and a ``Z`` (registry, events)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Final


def iso(at: float) -> str:
    """Epoch seconds as ``2026-11-25T12:00:00.000Z``."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """Now, as :func:`iso` writes it."""
    return iso(time.time())


class SystemClock:
    """The machine's clocks."""

    def time(self) -> float:
        """``time.time()``."""
        return time.time()

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()


SYSTEM_CLOCK: Final = SystemClock()
