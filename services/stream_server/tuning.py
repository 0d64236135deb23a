"""The stream server's internal bounds and intervals: constants, not deployment settings.

Nothing here is a choice a deployer makes (docs/configuration.md lists those); each default is
the owning module's constant, and tests and benchmarks vary them through :class:`Tuning`.
"""

from __future__ import annotations

from dataclasses import dataclass

from callstream.control.commands import CHECKPOINT_TIMEOUT_S
from stream_server import keepalive, talkback, writer

#: Kernel receive buffer of each audio socket (SO_RCVBUF). While a socket is paused (Kinesis
#: behind) the audio waiting there is unread, so this bounds it: about 2 s of μ-law, 0.5 s of
#: L16 24 kHz. 32 KB carries 70 KB/s at a 400 ms round trip.
RECEIVE_BUFFER_BYTES = 32_768
#: The largest WebSocket message accepted (close 1009 above): a 20 ms L16 24 kHz frame in base64
#: JSON is about 1.4 KB.
MAX_MESSAGE_BYTES = 65_536


@dataclass(frozen=True)
class Tuning:
    """See the module docstring; every field's default is the constant of the module using it."""

    keepalive_idle_s: float = keepalive.IDLE_S
    keepalive_reply_s: float = keepalive.REPLY_S
    receive_buffer_bytes: int = RECEIVE_BUFFER_BYTES
    max_message_bytes: int = MAX_MESSAGE_BYTES
    sink_buffer_records: int = writer.BUFFER_RECORDS
    kinesis_max_in_flight: int = writer.MAX_IN_FLIGHT
    kinesis_linger_ms: int = writer.LINGER_MS
    play_lead_ms: int = talkback.LEAD_MS
    checkpoint_timeout_s: float = CHECKPOINT_TIMEOUT_S
    clear_backstop_s: float = talkback.CLEAR_BACKSTOP_S
    #: how often open records are checked against their longest duration
    flush_interval_ms: int = 200
    #: one EMF metrics line every this many seconds
    metrics_interval_s: float = 10.0
