"""The words every part of callstream shares, defined once (no dependencies, nothing to run)."""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

#: A call's audio tracks, as Vobiz names them: the caller's and the agent's (PROTOCOL.md).
Track: TypeAlias = Literal["inbound", "outbound"]
#: The audio encodings callstream carries: G.711 μ-law, or 16-bit linear PCM.
Codec: TypeAlias = Literal["mulaw", "l16"]
#: The largest count or position a record or message may carry (a signed 64-bit integer, as
#: MessagePack and DynamoDB keep it exactly).
MAX_INT: Final = 2**63 - 1
#: The call id recorded when Vobiz never said which call a stream belongs to.
UNKNOWN_CALL: Final = "unknown-call"
#: The content types a stream may be asked for (Vobiz's ``contentType``, PROTOCOL.md §1a).
ContentType: TypeAlias = Literal[
    "audio/x-mulaw;rate=8000",
    "audio/x-l16;rate=8000",
    "audio/x-l16;rate=16000",
    "audio/x-l16;rate=24000",
]
#: Each content type as the codec and sample rate the stream carries.
CONTENT_TYPES: Final[dict[str, tuple[Codec, int]]] = {
    "audio/x-mulaw;rate=8000": ("mulaw", 8000),
    "audio/x-l16;rate=8000": ("l16", 8000),
    "audio/x-l16;rate=16000": ("l16", 16000),
    "audio/x-l16;rate=24000": ("l16", 24000),
}
