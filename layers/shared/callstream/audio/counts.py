"""What a stream counted: per connection (AssemblerStats) and over the call (StreamTotals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from callstream.audio.timeline import TrackStats


@dataclass(frozen=True)
class StreamTotals:
    """A call stream's counts over all its connections (Vobiz reconnects continue one stream)."""

    generation: int
    frames: int
    utterances: int


@dataclass
class AssemblerStats:
    """Counters of one stream, for the registry and metrics."""

    tracks: dict[str, TrackStats] = field(default_factory=dict)
    unknown_events: int = 0
    records: int = 0
    utterances: int = 0

    @property
    def frames(self) -> int:
        """Frames received on all tracks."""
        return sum(t.frames for t in self.tracks.values())

    @property
    def gaps(self) -> int:
        """Gap events on all tracks."""
        return sum(t.gaps for t in self.tracks.values())

    @property
    def lost_frames(self) -> int:
        """Frames known to be lost on all tracks."""
        return sum(t.lost_frames for t in self.tracks.values())
