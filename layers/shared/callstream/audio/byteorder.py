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

from typing import Literal, TypeAlias

import numpy as np

ByteOrder: TypeAlias = Literal["big", "little"]
ByteOrderSetting: TypeAlias = Literal["auto", "big", "little"]

#: What Vobiz's documentation says, used until (and unless) the audio says otherwise.
DOCUMENTED: ByteOrder = "big"


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
