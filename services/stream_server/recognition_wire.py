"""What the stream server and its recognition worker say to each other over one socket pair.

A frame is a 4-byte big-endian length and a MessagePack message (a msgspec tagged union). The
server says :class:`Open`, :class:`Audio` and :class:`Close` per track of a call; the worker
answers :class:`Heard` (results, in order) and :class:`Closed`. :class:`FrameReader` is sans I/O:
bytes in, messages out, a frame longer than ``max_frame`` refused.
"""

from __future__ import annotations

import struct
from typing import Any, Generic, TypeAlias, TypeVar

import msgspec

from callstream.exceptions import RecordError
from callstream.ports import LiveResult

_LENGTH = struct.Struct(">I")
#: Longest frame either side accepts: 10 s of 24 kHz PCM16 and change.
MAX_FRAME = 512 * 1024


class Open(msgspec.Struct, frozen=True, tag="open"):
    """Start recognising a track of a call.

    ``together``: the tracks the stream began with, this one among them (``inbound``,
    ``outbound``), in channel order; a backend may hear them in one session (Transcribe's
    channel identification). Empty: the track is heard alone.
    """

    key: str
    track: str
    rate: int
    language: str
    together: tuple[str, ...] = ()


class Audio(msgspec.Struct, frozen=True, tag="audio"):
    """The track's next audio: PCM16 LE at its rate, at ``start_sample`` on its timeline."""

    key: str
    track: str
    start_sample: int
    pcm: bytes


class Close(msgspec.Struct, frozen=True, tag="close"):
    """The track ended: finish it."""

    key: str
    track: str


class Heard(msgspec.Struct, frozen=True, tag="heard"):
    """Results of one track, in the order they were made."""

    key: str
    track: str
    results: list[LiveResult]  # a dataclass: msgspec encodes and decodes it as a map


class Closed(msgspec.Struct, frozen=True, tag="closed"):
    """The track is finished: its last results came before this.

    Unasked (no :class:`Close` came), the worker gave the track up: ``reason`` says why
    (``quota``: Transcribe's concurrent streams are all taken); the server falls back.
    """

    key: str
    track: str
    reason: str = ""


ToWorker: TypeAlias = Open | Audio | Close
FromWorker: TypeAlias = Heard | Closed
M = TypeVar("M")

_encoder = msgspec.msgpack.Encoder()


def frame(message: ToWorker | FromWorker) -> bytes:
    """One message as a frame."""
    body = _encoder.encode(message)
    return _LENGTH.pack(len(body)) + body


class FrameReader(Generic[M]):
    """Bytes in, messages out (sans I/O)."""

    def __init__(self, kind: Any, max_frame: int = MAX_FRAME) -> None:
        """Read messages of ``kind`` (the union ``ToWorker`` or ``FromWorker``)."""
        self._decoder: msgspec.msgpack.Decoder[M] = msgspec.msgpack.Decoder(kind)
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> list[M]:
        """Take bytes as they came; return the whole messages in them.

        Raises:
            RecordError: a frame longer than ``max_frame`` or one that is not a message; the
                stream cannot be read on after it (the caller restarts the other side).
        """
        buf = self._buf
        buf += data
        out: list[M] = []
        offset = 0
        with memoryview(buf) as view:  # released before the buffer is trimmed
            while len(buf) - offset >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(buf, offset)
                if size > self._max:
                    raise RecordError(f"recognition frame of {size} bytes (at most {self._max})")
                end = offset + _LENGTH.size + size
                if len(buf) < end:
                    break
                try:
                    out.append(self._decoder.decode(view[offset + _LENGTH.size : end]))
                except (msgspec.ValidationError, msgspec.DecodeError) as error:
                    raise RecordError(f"invalid recognition message: {error}") from None
                offset = end
        del buf[:offset]
        return out
