"""Recording assembly, pure: audio segments on a timeline → PCM16 WAV bytes, window by window.

A stream's audio arrives as segments (one per Kinesis audio record): a track, a first sample on
the track's timeline, a length, and the audio. :func:`plan` lays them out; :func:`wav_chunks`
yields the WAV file (header first) in fixed windows, fetching segments lazily, so memory stays
bounded (a window plus one segment) however long the call. Holes in the timeline (lost frames,
or a track that started late) are silence, so the recording's timeline is true. Two tracks make
a stereo file, inbound left and outbound right; one track makes a mono file.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from callstream.exceptions import SinkError

WINDOW_SECONDS = 10
TRACK_ORDER = ("inbound", "outbound")


@dataclass(frozen=True, order=True)
class Segment:
    """Where one piece of audio sits: ``samples`` PCM samples from ``start_sample``."""

    track: str
    start_sample: int
    samples: int
    key: str = field(compare=False)  # how to fetch its audio


@dataclass(frozen=True)
class Plan:
    """The layout of a recording."""

    sample_rate: int
    channels: tuple[str, ...]
    total_samples: int
    segments: dict[str, list[Segment]]
    covered: dict[str, int]  # samples of real audio per track

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.total_samples / self.sample_rate

    @property
    def data_bytes(self) -> int:
        """Size of the WAV data chunk."""
        return self.total_samples * 2 * len(self.channels)

    def silence_samples(self, track: str) -> int:
        """Samples of ``track`` filled with silence (holes, and padding to the longer track)."""
        return self.total_samples - self.covered[track]


def plan(segments: list[Segment], sample_rate: int) -> Plan:
    """Lay out segments per track (they never overlap: the assembler makes them contiguous)."""
    by_track: dict[str, list[Segment]] = {}
    for segment in sorted(segments):
        by_track.setdefault(segment.track, []).append(segment)
    channels = tuple(t for t in TRACK_ORDER if t in by_track) + tuple(
        sorted(t for t in by_track if t not in TRACK_ORDER)
    )
    total = max((s.start_sample + s.samples for s in segments), default=0)
    covered = {t: _coverage(by_track[t]) for t in channels}
    return Plan(sample_rate, channels, total, by_track, covered)


def _coverage(segments: list[Segment]) -> int:
    covered, end = 0, 0
    for s in segments:
        start = max(s.start_sample, end)
        stop = s.start_sample + s.samples
        if stop > start:
            covered += stop - start
            end = stop
    return covered


def header(sample_rate: int, channels: int, data_bytes: int) -> bytes:
    """A 44-byte RIFF/WAVE header for PCM16."""
    if data_bytes + 36 >= 2**32:
        raise SinkError("recording over 4 GiB: too long for one WAV file")
    block = channels * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def wav_chunks(layout: Plan, fetch: Callable[[Segment], bytes]) -> Iterator[bytes]:
    """Yield the WAV file: the header, then the data in windows of ``WINDOW_SECONDS``.

    Args:
        layout: from :func:`plan`.
        fetch: returns a segment's audio as PCM16 LE (exactly ``samples`` samples).
    """
    yield header(layout.sample_rate, len(layout.channels), layout.data_bytes)
    window = WINDOW_SECONDS * layout.sample_rate
    cursors = {t: 0 for t in layout.channels}  # next segment index per track
    cache: dict[str, tuple[Segment, np.ndarray]] = {}
    for begin in range(0, layout.total_samples, window):
        end = min(begin + window, layout.total_samples)
        block = np.zeros((end - begin, len(layout.channels)), dtype="<i2")
        for column, track in enumerate(layout.channels):
            segments = layout.segments[track]
            i = cursors[track]
            while i < len(segments) and segments[i].start_sample < end:
                segment = segments[i]
                seg_end = segment.start_sample + segment.samples
                if seg_end > begin:
                    held = cache.get(track)
                    if held is None or held[0] is not segment:
                        pcm = np.frombuffer(fetch(segment), dtype="<i2")
                        cache[track] = held = (segment, pcm)
                    lo, hi = max(begin, segment.start_sample), min(end, seg_end)
                    offset = lo - segment.start_sample
                    source = held[1][offset : offset + (hi - lo)]
                    block[lo - begin : lo - begin + len(source), column] = source
                if seg_end <= end:
                    i += 1
                else:
                    break
            cursors[track] = i
        yield block.tobytes()
