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
