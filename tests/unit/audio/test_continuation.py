"""A reconnect's outage, measured on its own: Vobiz's timestamps first, our clock as fallback."""

from __future__ import annotations

import pytest

from callstream.audio.continuation import (
    MAX_STAMPED_OUTAGE_MS,
    STAMP_JITTER_MS,
    Continuation,
    clock_at,
    outage,
)

T0 = 1_732_450_000_000


def cont(media_clock_ms: float | None = T0, outage_ms: float = 169.0) -> Continuation:
    return Continuation(
        "s-1", 2, position_ms=12_000, outage_ms=outage_ms, media_clock_ms=media_clock_ms
    )


@pytest.mark.parametrize("gap_ms", [0, 20, 1600, 95_000])
def test_the_outage_is_vobizs_timestamps_when_both_sides_carry_them(gap_ms: int) -> None:
    assert outage(cont(), T0 + gap_ms) == (gap_ms, "timestamps")


def test_jitter_below_the_last_end_is_no_outage_not_a_clock_to_distrust() -> None:
    assert outage(cont(), T0 - STAMP_JITTER_MS) == (0.0, "timestamps")
    assert outage(cont(), T0 - STAMP_JITTER_MS - 1) == (169.0, "clock")


@pytest.mark.parametrize(
    ("previous", "first"),
    [(None, T0), (T0, None), (T0, T0 + MAX_STAMPED_OUTAGE_MS + 1), (T0, T0 - 60_000)],
)
def test_our_clock_measures_when_a_timestamp_is_missing_or_unbelievable(
    previous: float | None, first: int | None
) -> None:
    assert outage(cont(previous), first) == (169.0, "clock")


def test_the_clock_at_a_position_follows_the_samples_from_where_it_was_seen() -> None:
    assert clock_at((T0, 8000), 2000.0, 8000) == T0 + 1000  # seen at 1 s, asked at 2 s
    assert clock_at(None, 2000.0, 8000) is None
    assert clock_at((T0, 0), 0.0, None) is None
