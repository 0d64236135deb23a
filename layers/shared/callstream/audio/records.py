"""The Kinesis record format, version 1 (documented in ``docs/records.md``).

A record is ``MAGIC`` (``b"CSR"`` + one version byte) followed by a MessagePack map: a tagged
union on ``type`` of :class:`AudioRecord`, :class:`EventRecord` (both on AudioStream),
:class:`UtteranceRecord` and :class:`TranscriptRecord` (on UtteranceStream). Audio travels as
bytes, never base64: μ-law stays μ-law, L16 is little-endian PCM16. :func:`encode` and
:func:`decode` round-trip exactly.

Consumers deduplicate on ``(stream_id, seq)``: ``seq`` numbers the AudioStream records of one
stream 0, 1, 2, … in order, audio and events alike; utterances are keyed on
``(stream_id, track, index)``; live transcript results are upserted on ``(stream_id,
result_id)``: a final beats a provisional beats a partial, and of two of a kind the one that
covers more audio (the later ``end_ms``) wins, so redelivery or reordering never turns a final
line back into a partial.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import msgspec

from callstream.exceptions import RecordError
from callstream.vocabulary import MAX_INT, Codec, Track

VERSION: Final = 1
MAGIC: Final = b"CSR" + bytes([VERSION])

EventName: TypeAlias = Literal[
    "start",  # Vobiz start: format, tracks, ids, extra headers
    "stop",  # Vobiz stop event
    "close",  # the socket closed (or the server ended the stream) without a stop event
    "dtmf",  # a key press
    "played_stream",  # a checkpoint was reached
    "cleared_audio",  # Vobiz dropped its playback queue
    "gap",  # frames were lost on a track: data has track, frames, start_sample, samples
    "renumbered",  # a track's frame numbering jumped back: a restart, the audio is kept
    "agent",  # something the talk-back side did: play, checkpoint, clear
    "byte_order",  # the byte order a track's inbound L16 was found in: track, order, evidence
    "limited",  # a peer's repeated events past their rate were dropped: what, dropped so far
]
TranscriptKind: TypeAlias = Literal[
    "partial",  # the words so far while the caller speaks: it grows and may change
    "provisional",  # at our VAD's utterance end, the last partial, at once
    "final",  # the recogniser's own final: replaces the provisional one
]
JsonScalar: TypeAlias = str | int | float | bool | None
EventData: TypeAlias = dict[str, JsonScalar | list[str] | dict[str, str]]


class _Record(msgspec.Struct, frozen=True, tag_field="type", kw_only=True):
    stream_id: str
    call_uuid: str | None = None


class AudioRecord(_Record, frozen=True, tag="audio", kw_only=True):
    """Consecutive frames of one track, with no gap inside.

    Attributes:
        seq: position of this record in the stream's AudioStream sequence.
        track: ``inbound`` (the far end) or ``outbound``.
        codec: ``mulaw`` (8-bit G.711) or ``l16`` (little-endian PCM16).
        sample_rate: 8000, 16000 or 24000.
        first_frame: sequence number of the first frame (Vobiz ``chunk``, or our own count).
        frames: number of frames in the record.
        start_sample: first sample's position on the track's timeline (0 = stream start).
        media_timestamp: Vobiz's ``timestamp`` of the first frame, if it sent one.
        received_at: wall-clock time (epoch seconds) the first frame arrived at the server.
        payload: the audio.
    """

    seq: int
    track: Track
    codec: Codec
    sample_rate: int
    first_frame: int
    frames: int
    start_sample: int
    media_timestamp: int | None = None
    received_at: float = 0.0
    payload: bytes

    @property
    def samples(self) -> int:
        """Number of samples in the payload."""
        return len(self.payload) // (1 if self.codec == "mulaw" else 2)

    @property
    def start_ms(self) -> float:
        """Media time of the first sample, in ms from stream start."""
        return self.start_sample * 1000 / self.sample_rate

    @property
    def duration_ms(self) -> float:
        """Duration of the payload in ms."""
        return self.samples * 1000 / self.sample_rate


class EventRecord(_Record, frozen=True, tag="event", kw_only=True):
    """A session event, in arrival order with the audio.

    Attributes:
        seq: position of this record in the stream's AudioStream sequence.
        name: what happened (see :data:`EventName`).
        at_ms: media time of the event, ms from stream start (the furthest track's position).
        received_at: wall-clock time (epoch seconds) the event arrived or happened.
        data: event details (plain JSON values).
    """

    seq: int
    name: EventName
    at_ms: float
    received_at: float = 0.0
    data: EventData = msgspec.field(default_factory=dict)


class UtteranceRecord(_Record, frozen=True, tag="utterance", kw_only=True):
    """A voice-activity-bounded span of one track, as PCM16 for the recogniser.

    Attributes:
        track: ``inbound`` or ``outbound``.
        index: 0, 1, 2, … per track; a reconnect's from ``(generation - 1) * 10**6`` on.
        sample_rate: 8000, 16000 or 24000.
        start_sample: first sample's position on the track's timeline.
        end_sample: one past the last sample.
        split: True when the utterance was cut at the maximum length and the next continues it.
        source_codec: codec the audio arrived in (μ-law audio was decoded to PCM16 here).
        received_at: wall-clock time the utterance was closed at the server.
        live: the stream server hears it live: its text comes as a ``transcript`` final naming
            it, and the per-utterance consumer leaves it alone. A live line that cannot be
            finished (the recogniser given up on) sends the utterance again with ``live`` False.
        language: what the stream asked to be heard in (None: the deployment's).
        payload: little-endian PCM16, ``end_sample - start_sample`` samples.
    """

    track: Track
    index: int
    sample_rate: int
    start_sample: int
    end_sample: int
    split: bool = False
    source_codec: Codec = "l16"
    received_at: float = 0.0
    live: bool = False
    language: str | None = None
    payload: bytes

    @property
    def start_ms(self) -> float:
        """Media time of the first sample, in ms from stream start."""
        return self.start_sample * 1000 / self.sample_rate

    @property
    def end_ms(self) -> float:
        """Media time one past the last sample, in ms from stream start."""
        return self.end_sample * 1000 / self.sample_rate


class TranscriptRecord(_Record, frozen=True, tag="transcript", kw_only=True):
    """One live recognition result of one track: a line that grows and then settles.

    Attributes:
        track: ``inbound`` or ``outbound``.
        result_id: the line this updates; its partials, its provisional final and its final
            share it, so a consumer upserts on ``(stream_id, result_id)`` (see the module).
        kind: ``partial``, ``provisional`` or ``final`` (:data:`TranscriptKind`).
        text: what was heard so far (partial) or in the whole line.
        start_ms: media time of the line's first audio on the track, ms from stream start.
        end_ms: media time of the audio the result covers up to.
        confidence: 0-1, when the recogniser gives one.
        received_at: wall-clock time (epoch seconds) the result was made.
        utterance_index: a final's or a provisional final's utterance (the UtteranceRecord's
            ``index`` on this track), when the line is one the server's VAD cut: a final's
            transcript is stored under it.
        language: what the line was heard in.
        settles: a final's (and a provisional final's) partial lines it replaces: the
            recogniser's lines inside the utterance, which may be cut elsewhere than ours.
        split: a final's utterance was cut at the longest utterance (its ``split``).
    """

    track: Track
    result_id: str
    kind: TranscriptKind
    text: str
    start_ms: float
    end_ms: float
    confidence: float | None = None
    received_at: float = 0.0
    utterance_index: int | None = None
    language: str | None = None
    settles: tuple[str, ...] = ()
    split: bool = False


Record: TypeAlias = AudioRecord | EventRecord | UtteranceRecord | TranscriptRecord

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Record] = msgspec.msgpack.Decoder(Record)


def encode(record: Record) -> bytes:
    """Serialise a record: ``MAGIC`` + MessagePack."""
    return MAGIC + _encoder.encode(record)


def audio_header_bytes(stream_id: str, call_uuid: str | None) -> int:
    """Most bytes an audio record of this stream spends on anything but its audio.

    Every number at its widest (MessagePack sizes vary with the value) and the longest track
    and codec names, so ``audio_header_bytes(...) + len(payload)`` bounds the encoded record.
    """
    widest = AudioRecord(
        stream_id=stream_id,
        call_uuid=call_uuid,
        seq=MAX_INT,
        track="outbound",
        codec="mulaw",
        sample_rate=16000,
        first_frame=MAX_INT,
        frames=MAX_INT,
        start_sample=MAX_INT,
        media_timestamp=MAX_INT,
        received_at=1.5,
        payload=b"",
    )
    return len(encode(widest)) + 4  # a payload over 255 bytes needs a 4-byte longer length


def decode(data: bytes) -> Record:
    """Parse a record made by :func:`encode`.

    Raises:
        RecordError: wrong magic, an unsupported version, or a body that does not match the
            schema; the message says which.
    """
    if data[:3] != MAGIC[:3]:
        raise RecordError(f"not a callstream record (first bytes {data[:4]!r})")
    if data[3:4] != MAGIC[3:4]:
        version = data[3] if len(data) > 3 else None
        raise RecordError(f"unsupported record version {version} (this code reads {VERSION})")
    try:
        return _decoder.decode(memoryview(data)[4:])
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise RecordError(f"invalid record body: {error}") from None
