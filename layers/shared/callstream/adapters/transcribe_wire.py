"""Amazon Transcribe streaming's WebSocket wire: the presigned URL, event-stream frames, results.

Written from AWS's documentation ("Using Amazon Transcribe streaming with WebSockets" and
"Event stream encoding" in the Transcribe developer guide): the URL is SigV4-presigned for
``GET`` (service ``transcribe``, at most 300 s, only ``host`` signed); each WebSocket binary
frame is one event-stream message (prelude of total and headers lengths and its CRC32, headers,
payload, CRC32 of the whole); audio goes as ``AudioEvent`` messages of raw PCM, an empty one
ends the stream; results come as ``TranscriptEvent`` JSON, errors as an ``exception`` message
and a close frame. botocore signs (``SigV4QueryAuth``) and decodes event-stream messages;
it has no encoder, so the few lines of one are here.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from typing import Any, Literal, cast

import msgspec
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.eventstream import EventStreamBuffer, EventStreamMessage

from callstream.exceptions import RecordError

PATH = "/stream-transcription-websocket"
#: The presigned URL's longest life: Transcribe refuses more (its WebSocket guide).
MAX_EXPIRES_S = 300

_PRELUDE = struct.Struct(">II")
_STRING = 7  # the event-stream header type of a UTF-8 string


def endpoint(region: str) -> str:
    """The regional streaming endpoint (``wss://…:8443``)."""
    return f"wss://transcribestreaming.{region}.amazonaws.com:8443"


@dataclass(frozen=True)
class StreamOptions:
    """What a stream transcription session is asked for (the URL's query parameters).

    Attributes:
        language: a streaming language code (``en-US``, ``hi-IN``...).
        sample_rate: of the PCM16 LE audio sent.
        vocabulary: a custom vocabulary's name, made beforehand in the account.
        redact_pii: ``content-redaction-type=PII`` (Transcribe redacts finals only).
        stability: partial-results stabilisation (``high`` changes partials least).
        session_id: names the session (AWS makes one when it is None).
        channels: 2 is a stereo stream of interleaved samples, each channel transcribed on
            its own (``enable-channel-identification``; results say ``ch_0`` or ``ch_1``).
    """

    language: str
    sample_rate: int
    vocabulary: str | None = None
    redact_pii: bool = False
    stability: Literal["high", "medium", "low"] = "high"
    session_id: str | None = None
    channels: Literal[1, 2] = 1

    def query(self) -> dict[str, str]:
        """The documented query parameters of these options."""
        params = {
            "language-code": self.language,
            "media-encoding": "pcm",
            "sample-rate": str(self.sample_rate),
            "enable-partial-results-stabilization": "true",
            "partial-results-stability": self.stability,
        }
        if self.vocabulary:
            params["vocabulary-name"] = self.vocabulary
        if self.redact_pii:
            params["content-redaction-type"] = "PII"
        if self.session_id:
            params["session-id"] = self.session_id
        if self.channels == 2:  # the WebSocket guide: both, or neither
            params["enable-channel-identification"] = "true"
            params["number-of-channels"] = "2"
        return params


def presigned_url(
    credentials: ReadOnlyCredentials,
    region: str,
    options: StreamOptions,
    *,
    base: str | None = None,
    expires: int = MAX_EXPIRES_S,
) -> str:
    """A SigV4-presigned ``wss`` URL that opens one session (``base``: another endpoint)."""
    request = AWSRequest(
        method="GET", url=(base or endpoint(region)) + PATH, params=options.query()
    )
    # Over a non-https scheme botocore signs the payload's SHA-256 (of nothing, for a GET),
    # which is what the WebSocket guide's canonical request says (tests check it, by hand).
    SigV4QueryAuth(credentials, "transcribe", region, expires=min(expires, MAX_EXPIRES_S)).add_auth(
        request
    )
    return str(request.url)


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        bytes([len(raw_name)]) + raw_name + bytes([_STRING]) + struct.pack(">H", len(raw_value))
    ) + raw_value


_AUDIO_HEADERS = (
    _header(":content-type", "application/octet-stream")
    + _header(":event-type", "AudioEvent")
    + _header(":message-type", "event")
)


def audio_event(pcm: bytes) -> bytes:
    """One event-stream ``AudioEvent`` message of PCM (empty: the end of the audio)."""
    total = _PRELUDE.size + 4 + len(_AUDIO_HEADERS) + len(pcm) + 4
    prelude = _PRELUDE.pack(total, len(_AUDIO_HEADERS))
    head = prelude + struct.pack(">I", binascii.crc32(prelude))
    body = head + _AUDIO_HEADERS + pcm
    return body + struct.pack(">I", binascii.crc32(body))


# -- what Transcribe sends back ----------------------------------------------------------------


class Item(msgspec.Struct, frozen=True):
    """A word (``pronunciation``) or punctuation mark of a result."""

    Content: str = ""
    StartTime: float = 0.0
    EndTime: float = 0.0
    Type: str = "pronunciation"
    Confidence: float | None = None
    Stable: bool | None = None


class Alternative(msgspec.Struct, frozen=True):
    """One reading of a result (Transcribe sends its best first)."""

    Transcript: str = ""
    Items: list[Item] = []


class Result(msgspec.Struct, frozen=True):
    """A segment of the audio: partial while ``IsPartial``, then its final (same ``ResultId``).

    Times are seconds of audio since the session's start.
    """

    ResultId: str
    StartTime: float
    EndTime: float
    IsPartial: bool
    Alternatives: list[Alternative] = []
    ChannelId: str | None = None


class _Transcript(msgspec.Struct, frozen=True):
    Results: list[Result] = []


class _TranscriptEvent(msgspec.Struct, frozen=True):
    Transcript: _Transcript


class _Exception(msgspec.Struct, frozen=True):
    Message: str = ""


_event = msgspec.json.Decoder(_TranscriptEvent)
_exception = msgspec.json.Decoder(_Exception)


@dataclass(frozen=True)
class ServiceError:
    """An ``exception`` message: Transcribe ends the session after it (with a close frame).

    Attributes:
        kind: the ``:exception-type`` (``BadRequestException``, ``LimitExceededException``,
            ``InternalFailureException``, ``ConflictException``,
            ``ServiceUnavailableException``, ``UnrecognizedClientException``...).
        message: its ``Message``.
    """

    kind: str
    message: str


class ResultReader:
    """A session's frames in, results and errors out (sans I/O)."""

    def __init__(self) -> None:
        """A reader with nothing buffered."""
        self._buffer = EventStreamBuffer()

    def feed(self, data: bytes) -> list[Result | ServiceError]:
        """One WebSocket frame's bytes (a frame may hold part of a message, or several).

        Raises:
            RecordError: bytes that are not an event-stream message, a CRC that does not
                match, or an event that is not a transcript (the session cannot go on).
        """
        self._buffer.add_data(data)
        out: list[Result | ServiceError] = []
        try:
            for message in self._buffer:
                out.extend(_read(message))
        except RecordError:
            raise
        except Exception as error:  # botocore's ParserError family: a stream we cannot read
            raise RecordError(f"unreadable Transcribe event stream: {error}") from None
        return out


def _read(message: EventStreamMessage) -> list[Result | ServiceError]:
    headers: dict[str, Any] = cast("dict[str, Any]", message.headers)  # botocore's stub says int
    kind = headers.get(":message-type")
    try:
        if kind == "event":
            if headers.get(":event-type") != "TranscriptEvent":
                return []  # an event this client does not know yet: nothing in it for us
            return list(_event.decode(message.payload).Transcript.Results)
        if kind == "exception":
            error = _exception.decode(message.payload or b"{}")
            return [ServiceError(str(headers.get(":exception-type", "")), error.Message)]
        if kind == "error":  # an unmodelled error: its code and message are headers
            return [
                ServiceError(
                    str(headers.get(":error-code", "Error")),
                    str(headers.get(":error-message", "")),
                )
            ]
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise RecordError(f"Transcribe sent an unreadable {kind}: {error}") from None
    raise RecordError(f"Transcribe sent a message of type {kind!r}")
