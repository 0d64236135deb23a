"""What Vobiz sends on the WebSocket for a call, built from PCM audio (pure, no I/O).

One generator serves the session tapes in ``events/tapes/``, the tests, the Vobiz simulator
and the load generator, so they all speak the protocol of docs/protocol.md §2 as Vobiz does: a
``start`` (ids nested in ``start``), then 20 ms ``media`` frames per track interleaved in time
order (``chunk`` counts a track's frames from 1, ``sequenceNumber`` counts every message from
0), and then nothing: Vobiz ends a stream by closing the socket (``with_stop`` adds the ``stop``
event some sources show). Wire code comes from :mod:`local.vobiz_wire`, never from callstream.
"""

from __future__ import annotations

import base64
import json
import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from local.vobiz_wire import ENCODINGS as _ENCODINGS
from local.vobiz_wire import encode_frame as _encode_frame
from local.vobiz_wire import resample

WireCodec = Literal["mulaw", "l16"]
#: Demo/CLI codec names → (codec, sample rate).
CODECS: dict[str, tuple[WireCodec, int]] = {
    "mulaw": ("mulaw", 8000),
    "l16-8k": ("l16", 8000),
    "l16-16k": ("l16", 16000),
    "l16-24k": ("l16", 24000),
}
ENCODINGS: dict[WireCodec, str] = {"mulaw": _ENCODINGS["mulaw"], "l16": _ENCODINGS["l16"]}


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """Read a mono PCM16 WAV: (little-endian samples, sample rate)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path}: need mono 16-bit PCM")
        return wav.readframes(wav.getnframes()), wav.getframerate()


def to_wire_rate(pcm: bytes, rate: int, wire_rate: int) -> bytes:
    """Resample PCM16 LE to the rate the wire codec runs at (no-op when equal)."""
    return resample(pcm, rate, wire_rate)


def encode_frame(pcm: bytes, codec: WireCodec, *, l16_little_endian: bool = False) -> bytes:
    """PCM16 LE → the payload bytes as Vobiz puts them on the wire.

    L16 goes big-endian as documented, or little-endian as Vobiz's own reference code sends it.
    """
    return _encode_frame(pcm, codec, l16_little_endian=l16_little_endian)


@dataclass
class CallAudio:
    """A call to stream: PCM16 LE per track, all at ``sample_rate``."""

    tracks: Mapping[str, bytes]
    sample_rate: int
    stream_id: str = "stream-0001"
    call_id: str = "call-0001"
    account_id: str = "MA_LOCAL"
    extra_headers: str | None = None
    start_ms: int = 1_732_450_000_000
    #: (track, chunk) pairs not to send: lost frames.
    drop: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    #: chunk → DTMF digit sent (on the inbound track) just before that frame.
    dtmf: Mapping[int, str] = field(default_factory=dict)


def frame_count(audio: CallAudio, frame_ms: int = 20) -> int:
    """Frames per track (the longest track; shorter ones are padded with silence)."""
    frame_bytes = audio.sample_rate * frame_ms // 1000 * 2
    longest = max(len(pcm) for pcm in audio.tracks.values())
    return -(-longest // frame_bytes)


def messages(
    audio: CallAudio,
    codec: WireCodec,
    *,
    with_stop: bool = False,
    frame_ms: int = 20,
    first_chunk: int = 1,
    first_sequence: int = 0,
    l16_little_endian: bool = False,
) -> Iterator[str]:
    """Yield the JSON text frames Vobiz would send for ``audio`` in ``codec``.

    ``l16_little_endian``: L16 payloads as Vobiz's reference code sends them.

    ``first_chunk``/``first_sequence`` start the numbering elsewhere (a reconnect's fresh
    ``start`` restarts it; tests use them for numbering that jumps).
    """
    frame_bytes = audio.sample_rate * frame_ms // 1000 * 2
    names = list(audio.tracks)
    seq = first_sequence
    start: dict[str, object] = {
        "event": "start",
        "sequenceNumber": seq,
        "start": {
            "streamId": audio.stream_id,
            "callId": audio.call_id,
            "accountId": audio.account_id,
            "tracks": names,
            "mediaFormat": {"encoding": ENCODINGS[codec], "sampleRate": audio.sample_rate},
        },
    }
    if audio.extra_headers:
        start["extra_headers"] = audio.extra_headers
    yield json.dumps(start)
    for index in range(frame_count(audio, frame_ms)):
        chunk = index + first_chunk
        if chunk in audio.dtmf:
            seq += 1
            yield json.dumps(
                {
                    "event": "dtmf",
                    "sequenceNumber": seq,
                    "streamId": audio.stream_id,
                    "dtmf": {"digit": audio.dtmf[chunk], "track": "inbound"},
                }
            )
        for name in names:
            pcm = audio.tracks[name][index * frame_bytes : (index + 1) * frame_bytes]
            pcm = pcm.ljust(frame_bytes, b"\x00")
            seq += 1
            if (name, chunk) in audio.drop:
                continue
            yield json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": seq,
                    "streamId": audio.stream_id,
                    "media": {
                        "track": name,
                        "timestamp": str(audio.start_ms + index * frame_ms),
                        "chunk": chunk,
                        "payload": base64.b64encode(
                            encode_frame(pcm, codec, l16_little_endian=l16_little_endian)
                        ).decode("ascii"),
                    },
                }
            )
    if with_stop:
        seq += 1
        yield json.dumps({"event": "stop", "sequenceNumber": seq, "streamId": audio.stream_id})
