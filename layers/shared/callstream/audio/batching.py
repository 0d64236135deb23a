"""Frames into AudioStream records sized to what Kinesis bills, sans I/O.

:func:`record_span` says how much audio one record holds for a stream's codec and rate;
:class:`OpenRecord` gathers one track's consecutive frames until the record is full (or
:meth:`OpenRecord.take` is called: a gap, an event, the time cap) and gives the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callstream.audio.records import AudioRecord, audio_header_bytes
from callstream.vocabulary import Codec, Track

#: Samples in one 20 ms frame, per second of rate (Vobiz frames are 20 ms).
FRAMES_PER_SECOND = 50


def record_span(
    codec_bytes: int,
    sample_rate: int,
    max_bytes: int,
    max_ms: int,
    stream_id: str,
    call_uuid: str | None,
) -> int:
    """Samples one record holds: whole frames, within ``max_bytes`` and ``max_ms``.

    On-demand Kinesis bills a record rounded up to 1 KB: a record the time cap ends part-way
    into a KB also carries the frames that still fit in that KB (1 s of μ-law and its header
    is 8.2 KB; 1.12 s fills the 9 KB it pays for anyway). At least one frame.
    """
    frame = sample_rate // FRAMES_PER_SECOND
    by_bytes = max_bytes // codec_bytes // frame * frame
    by_time = sample_rate * max_ms // 1000 // frame * frame  # whole frames (max_ms may be 1010)
    if by_time < by_bytes:
        header = audio_header_bytes(stream_id, call_uuid)
        paid = -(-(header + by_time * codec_bytes) // 1024) * 1024
        by_time = max(by_time, (paid - header) // codec_bytes // frame * frame)
    return max(min(by_bytes, by_time), frame)


@dataclass
class OpenRecord:
    """One track's record being filled: consecutive frames only (a gap takes it first)."""

    track: Track
    max_bytes: int
    buf: bytearray = field(default_factory=bytearray)
    first_frame: int = 0
    frames: int = 0
    start_sample: int = 0
    timestamp: int | None = None
    received_at: float = 0.0

    def fits(self, size: int) -> bool:
        """True when ``size`` more bytes fit in this record."""
        return not self.buf or len(self.buf) + size <= self.max_bytes

    def add(
        self, frame: int, payload: bytes, start_sample: int, timestamp: int | None, now: float
    ) -> bool:
        """Append one frame (the first sets the record's place); True when the record is full."""
        buf = self.buf
        if not buf:
            self.first_frame = frame
            self.start_sample = start_sample
            self.timestamp = timestamp
            self.received_at = now
        buf += payload
        self.frames += 1
        return len(buf) >= self.max_bytes

    def take(
        self, seq: int, stream_id: str, call_uuid: str | None, codec: Codec, sample_rate: int
    ) -> AudioRecord:
        """The record, numbered ``seq``; the next frame starts a new one."""
        record = AudioRecord(
            stream_id=stream_id,
            call_uuid=call_uuid,
            seq=seq,
            track=self.track,
            codec=codec,
            sample_rate=sample_rate,
            first_frame=self.first_frame,
            frames=self.frames,
            start_sample=self.start_sample,
            media_timestamp=self.timestamp,
            received_at=self.received_at,
            payload=bytes(self.buf),
        )
        self.buf = bytearray()
        self.frames = 0
        return record
