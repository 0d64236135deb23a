"""Which byte order a track's inbound L16 is in, read from the audio itself. Pure, no I/O.

Vobiz's documentation says inbound L16 is big-endian (network order); Vobiz's own reference
agent (``vobiz-ai/Vobiz-Deepgram-Voice-Agent``: ``app.py`` reads it and ``mock_vobiz.py`` sends
it) treats it as little-endian. The two witnesses disagree, so we detect rather than guess.

Telephone audio is smooth from sample to sample in the right byte order; in the wrong one the
low byte, nearly random, becomes the high byte and the signal turns into loud white noise. The
sum of absolute first differences tells them apart: on the shared support call a speech frame
scores 30-80 times higher read the wrong way, and even a noise floor of a few steps scores over
100 times higher (the wrong reading multiplies its jitter by 256). A first difference ignores a
DC offset. Silence (all zeros) reads the same both ways and tells nothing; neither does a
constant. So frames count as evidence only when they move, and the order is decided once the
evidence of ``min_frames`` moving frames is ``ratio`` times stronger one way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import numpy as np

T = TypeVar("T")

ByteOrder: TypeAlias = Literal["big", "little"]
ByteOrderSetting: TypeAlias = Literal["auto", "big", "little"]

#: What Vobiz's documentation says, used until (and unless) the audio says otherwise.
DOCUMENTED: ByteOrder = "big"
#: Frames a track holds at most while its audio has not told the byte order yet (0.5 s):
#: past it they go out in the documented order, provisionally, and detection goes on.
HOLD_FRAMES = 25


class ByteOrderDetector:
    """Decides one track's L16 byte order from its first moving frames.

    Args:
        setting: ``auto`` detects; ``big`` or ``little`` is decided from the start.
        min_frames: moving frames needed before deciding.
        ratio: how much rougher the wrong reading must be, over those frames together.
    """

    __slots__ = (
        "_big",
        "_little",
        "_moving",
        "decided",
        "evidence",
        "forced",
        "min",
        "moved",
        "ratio",
    )

    def __init__(
        self, setting: ByteOrderSetting = "auto", *, min_frames: int = 5, ratio: float = 4.0
    ) -> None:
        """Start undecided (``auto``) or decided (a forced order)."""
        self.forced = setting != "auto"
        self.decided: ByteOrder | None = None if setting == "auto" else setting
        self.evidence = 0.0  # the roughness ratio the decision was made on (0: forced)
        self.min = min_frames
        self.ratio = ratio
        self._big = 0  # sum of |first differences| read big-endian
        self._little = 0
        self._moving = 0
        self.moved = False  # whether the last frame observed moved (was evidence)

    def restart(self) -> None:
        """Forget the evidence so far (it was rough both ways: it would drown what follows)."""
        self._big = self._little = self._moving = 0

    def observe(self, payload: bytes) -> ByteOrder | None:
        """Take one frame of wire bytes (whole samples); return the order once decided."""
        if self.decided is not None:
            return self.decided
        big = np.abs(np.diff(np.frombuffer(payload, ">i2").astype(np.int32))).sum()
        little = np.abs(np.diff(np.frombuffer(payload, "<i2").astype(np.int32))).sum()
        self.moved = max(big, little) >= len(payload) // 2  # a step a sample, at least
        if not self.moved:
            return None
        self._big += int(big)
        self._little += int(little)
        self._moving += 1
        if self._moving < self.min:
            return None
        smooth, rough = sorted((self._big, self._little))
        if rough >= self.ratio * max(smooth, 1):
            self.decided = "big" if self._big <= self._little else "little"
            self.evidence = rough / max(smooth, 1)
        return self.decided


@dataclass(frozen=True, slots=True)
class Release(Generic[T]):
    """What a :class:`ByteOrderHold` lets go: frames to place now, in order, read in ``order``.

    Attributes:
        frames: (frame, arrival time) pairs; empty when the frame just given is held.
        order: the order to read every one of them in.
        found: the evidence the order was decided on just now (say so), else None.
        provisional: the frames go out in the documented order before any decision, for the
            first time (say so, once).
    """

    frames: Sequence[tuple[T, float]] = ()
    order: ByteOrder = DOCUMENTED
    found: float | None = None
    provisional: bool = False


HELD: Release[Any] = Release()  # the frame just given is held: nothing to place


class ByteOrderHold(Generic[T]):
    """One L16 track's byte order, and the frames it holds until the audio tells it.

    A frame that does not move (silence, a constant) reads alike either way and tells nothing:
    unless frames are held before it, it goes out at once in Vobiz's documented order. A moving
    frame is held (in order) until the audio decides, for at most ``limit`` frames; past that
    what is held goes out in the documented order, provisionally, and detection goes on.
    """

    __slots__ = ("_held", "_limit", "_said_provisional", "detector")

    def __init__(self, setting: ByteOrderSetting = "auto", limit: int = HOLD_FRAMES) -> None:
        """Hold up to ``limit`` frames while undecided; a forced ``setting`` holds none."""
        self.detector = ByteOrderDetector(setting)
        self._limit = limit
        self._held: list[tuple[T, float]] = []
        self._said_provisional = False

    @property
    def decided(self) -> ByteOrder | None:
        """The order, once known (or forced)."""
        return self.detector.decided

    @property
    def held_since(self) -> float | None:
        """When the oldest frame held arrived, or None when nothing is held."""
        return self._held[0][1] if self._held else None

    def take(self, payload: bytes, frame: T, now: float) -> Release[T]:
        """Take an undecided track's frame (its wire bytes and what to hand back for it)."""
        detector = self.detector
        if detector.observe(payload) is not None:
            return self._release(detector.decided or DOCUMENTED, (frame, now), detector.evidence)
        if not detector.moved and not self._held:
            return Release(((frame, now),))
        self._held.append((frame, now))
        if len(self._held) >= self._limit:
            return self.give_up()
        return HELD

    def give_up(self) -> Release[T]:
        """Let what is held go in the documented order (a stall, the end); detection goes on."""
        self.detector.restart()  # what was held told nothing: judge what follows afresh
        provisional = not self._said_provisional
        self._said_provisional = True
        return self._release(DOCUMENTED, None, None, provisional)

    def _release(
        self,
        order: ByteOrder,
        last: tuple[T, float] | None,
        found: float | None,
        provisional: bool = False,
    ) -> Release[T]:
        frames, self._held = self._held, []
        if last is not None:
            frames.append(last)
        return Release(frames, order, found, provisional)
