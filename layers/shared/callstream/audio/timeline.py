"""One track's frames put in order on its timeline, sans I/O: reorder, duplicates, gaps, restarts.

A :class:`Timeline` takes each frame of its track with the number Vobiz gave it (``chunk``, or
``sequenceNumber`` on a single-track stream; None when there is neither) and tells its
:class:`Placement` what became of it, synchronously and in order:

* ``placed``: the frame's place on the timeline (its first sample); the next frame follows it;
* ``lost``: frames never came (a jump in the numbering, or the line down on a reconnect): the
  timeline moves on by their duration, so every later ``start_sample`` stays true;
* ``restarted``: the numbering jumped far back (Vobiz restarted it): the audio is kept.

A frame ahead of a missing one is held (at most ``REORDER_FRAMES``, or ``REORDER_WAIT_S``): frames
swapped on the way are put back in order rather than counted lost. A number a little below the
expected one is a duplicate: dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from callstream.vocabulary import Track

#: Frames held back, per track, while waiting for a missing one (60 ms of audio).
REORDER_FRAMES = 3
#: Longest a frame is held back for a missing one before the gap is declared.
REORDER_WAIT_S = 0.1
#: A frame number more than this below the expected one restarts the numbering.
RESTART_FRAMES = 16

Timestamp = int | str | float | None


@dataclass
class TrackStats:
    """Counters of one track."""

    frames: int = 0
    bytes: int = 0
    gaps: int = 0
    lost_frames: int = 0
    duplicates: int = 0
    reordered: int = 0
    restarts: int = 0


class Placement(Protocol):
    """What a timeline tells of its frames (the assembler), in order."""

    def placed(
        self, track: Timeline, frame: int | None, payload: bytes, timestamp: Timestamp, now: float
    ) -> None:
        """The frame goes at ``track.last_frame_start``, before ``track.position``."""

    def lost(self, track: Timeline, frames: int, first_frame: int | None, now: float) -> None:
        """``frames`` never came; called before the timeline moves on by ``track.gap_samples``."""

    def restarted(self, track: Timeline, from_frame: int, to_frame: int, now: float) -> None:
        """The numbering restarted at ``to_frame`` (``from_frame`` was expected)."""


@dataclass
class Timeline:
    """One track's timeline. See the module docstring."""

    name: Track
    bytes_per_sample: int
    frame_samples: int  # samples in the last frame: what a lost frame is counted as
    position: int = 0  # next sample on this track's timeline
    last_frame_start: int = 0
    next_frame: int | None = None
    started: bool = False
    gap_samples: int = 0  # the gap being told (``Placement.lost``)
    stats: TrackStats = field(default_factory=TrackStats)
    # frames that arrived ahead of a missing one: number → (payload, timestamp, arrival)
    held: dict[int, tuple[bytes, Timestamp, float]] = field(default_factory=dict)

    def begin(self, position: int) -> None:
        """The track's first frame is due at ``position`` (where the other tracks are)."""
        self.started = True
        self.position = position

    def receive(
        self,
        frame: int | None,
        payload: bytes,
        timestamp: Timestamp,
        now: float,
        to: Placement,
    ) -> None:
        """Take one frame; tell ``to`` what became of it (and of frames it was holding)."""
        expected = self.next_frame
        if frame is None or expected is None or frame == expected:
            self._place(frame, payload, timestamp, now, to)
        elif frame > expected:  # ahead of a missing frame: hold it a moment, in case it comes
            self.held[frame] = (payload, timestamp, now)
            if len(self.held) > REORDER_FRAMES:
                self.release(now, to)
            return
        elif expected - frame > RESTART_FRAMES:  # a new numbering: keep the audio
            self.release(now, to)
            self.stats.restarts += 1
            to.restarted(self, expected, frame, now)
            self.next_frame = frame
            self._place(frame, payload, timestamp, now, to)
        else:
            self.stats.duplicates += 1
            return
        while self.held and self.next_frame in self.held:  # a swapped frame came back
            number = self.next_frame
            held_payload, held_timestamp, _ = self.held.pop(number)
            self.stats.reordered += 1
            self._place(number, held_payload, held_timestamp, now, to)

    def due(self, now: float) -> bool:
        """True when a held frame has waited ``REORDER_WAIT_S``: the missing ones are lost."""
        return bool(self.held) and now - min(h[2] for h in self.held.values()) >= REORDER_WAIT_S

    def release(self, now: float, to: Placement) -> None:
        """Stop waiting: the missing frames are lost; place what was held, in order."""
        held, self.held = self.held, {}
        for number in sorted(held):
            payload, timestamp, _ = held[number]
            expected = self.next_frame
            if expected is not None and number < expected:
                self.stats.duplicates += 1
                continue
            if expected is not None and number > expected:
                missing = number - expected
                self.skip(missing, missing * self.frame_samples, now, to, expected)
            self._place(number, payload, timestamp, now, to)

    def skip(
        self, frames: int, samples: int, now: float, to: Placement, first_frame: int | None = None
    ) -> None:
        """Move on by a gap of ``frames`` (``samples`` long) that never came."""
        self.stats.gaps += 1
        self.stats.lost_frames += frames
        self.gap_samples = samples
        to.lost(self, frames, first_frame, now)
        self.position += samples

    def _place(
        self, frame: int | None, payload: bytes, timestamp: Timestamp, now: float, to: Placement
    ) -> None:
        size = len(payload)
        samples = size // self.bytes_per_sample
        self.last_frame_start = start = self.position
        self.position = start + samples
        self.frame_samples = samples
        stats = self.stats
        stats.frames += 1
        stats.bytes += size
        if frame is not None:
            self.next_frame = frame + 1
        to.placed(self, frame, payload, timestamp, now)
