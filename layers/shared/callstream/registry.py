"""The stream registry's model and state machine, pure.

One item per stream, keyed by Vobiz's stream id. Several writers update it concurrently and out
of order: the start API (``requested``), the stream server (``started``, then how it ended),
and Vobiz's status callbacks (which may arrive twice, or a ``StopStream`` before its
``StartStream``). The state only moves forward::

    requested (0) ──▶ started (1) ──▶ stopped (2)
                                  └─▶ failed (2)

Adapters apply a transition with a condition on the numeric ``state_rank`` (lower than the new
one), so a duplicate or late event never moves a stream back; the other fields of an update are
written regardless (a late start still records the format), except ``end_reason``, which goes
with the state change it explains.

A call stream that Vobiz reconnects (``maxRetries``) lives on: each connection is a
*generation*, whose ranks lie above the previous one's (:func:`rank`), so a reconnect may move
a stream that ended with its dropped socket back to ``started``. The ``Hangup`` webhook ends a
call for good: :data:`FINAL_RANK` is above every generation.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import msgspec

State: TypeAlias = Literal["requested", "started", "stopped", "failed"]
RANK: Final[dict[str, int]] = {"requested": 0, "started": 1, "stopped": 2, "failed": 2}
#: The rank of a stream the call's Hangup ended: nothing moves it again.
FINAL_RANK: Final = 1_000_000
#: How long a registry item lives after its last update (DynamoDB TTL).
TTL_S: Final = 30 * 24 * 3600


class StreamItem(msgspec.Struct, kw_only=True):
    """A stream as the registry knows it (every field but the keys may be missing)."""

    stream_id: str
    call_uuid: str
    state: State = "requested"
    state_rank: int = 0
    audio_track: str | None = None
    codec: str | None = None
    sample_rate: int | None = None
    content_type: str | None = None
    tracks: list[str] = msgspec.field(default_factory=list)
    bidirectional: bool = False
    agent: str | None = None
    task_address: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    frames: int | None = None
    gaps: int | None = None
    end_reason: str | None = None
    generation: int | None = None
    vobiz_stream_id: str | None = None
    continues: str | None = None
    hangup_cause: str | None = None
    call_duration_s: int | None = None
    recording_key: str | None = None
    transcript_key: str | None = None
    last_checkpoint: str | None = None
    byte_order_inbound: str | None = None  # L16: the byte order the track's audio is in
    byte_order_outbound: str | None = None
    extra_headers: dict[str, str] = msgspec.field(default_factory=dict)
    ttl: int | None = None

    @property
    def live(self) -> bool:
        """Started and not yet ended."""
        return self.state == "started"

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able fields, without None values (API responses)."""
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}


def rank(state: State, generation: int = 1) -> int:
    """The rank of ``state`` in the ``generation``-th connection of a call stream."""
    return RANK[state] + 3 * (generation - 1)


def from_item(item: dict[str, object]) -> StreamItem:
    """Build a :class:`StreamItem` from a plain (already deserialised) registry item."""
    return msgspec.convert(item, StreamItem, strict=False)
