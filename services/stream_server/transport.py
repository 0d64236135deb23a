"""The WebSocket transport: picows frames in, one :class:`~stream_server.session.Session` each.

Why picows rather than ``websockets``: on one core a bare ``websockets`` receive loop spends
about 18 µs per 20 ms frame, which alone caps a core near 1,000-1,500 streams before callstream
does any work; picows (a Cython frame parser with synchronous callbacks) spends a few µs, so the
core goes to the pipeline instead (bench/RESULTS.md, "Ingest capacity"). Its callbacks are
synchronous, which suits the session: per-frame work never awaits, and back-pressure is
``pause_reading`` on the socket.

A connection's token is verified before the upgrade (forged, malformed or expired → HTTP 403,
by :class:`~stream_server.server.StreamServer`). It then takes the token's connection lease in
DynamoDB (one live connection per token; a reconnect continues the call), a network call that
must not block the loop, so it runs just after the upgrade while the socket is paused and
anything already received is held: a second concurrent socket on the same token is closed with
1008 before a single message of it is read.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import termios
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

if TYPE_CHECKING:
    from stream_server.session import Session

log = logging.getLogger("callstream.transport")
#: How long a close we began waits for the peer's answer before disconnecting.
CLOSE_WAIT_S = 1.0
#: Most bytes queued for a peer that does not read them (pongs, talk-back): 4 s of L16 24 kHz
#: talk-back as base64 JSON; a peer past it is not reading and is closed.
MAX_UNSENT_BYTES = 1_000_000
#: Linux's ``struct tcp_info`` (include/uapi/linux/tcp.h): ``tcpi_last_data_recv`` is the u32 at
#: byte 52, milliseconds since the last data segment arrived.
_TCP_INFO_BYTES = 104
_LAST_DATA_RECV = 52


class PicowsConnection:
    """A session's view of its socket (:class:`stream_server.session.Connection`)."""

    __slots__ = ("_timer", "_transport", "closed")

    def __init__(self, transport: WSTransport) -> None:
        """Wrap a connected picows transport."""
        self._transport = transport
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False

    def send(self, text: bytes) -> None:
        """Send one text frame (nothing once closed); a peer that stopped reading is dropped."""
        if not self.closed and self._room():
            self._transport.send(WSMsgType.TEXT, text)

    def ping(self) -> None:
        """Ping the peer (our keepalive); it answers with a pong, which the kernel counts."""
        if not self.closed and self._room():
            self._transport.send_ping(b"keepalive")

    def pong(self, payload: bytes) -> None:
        """Answer a ping, unless the peer lets our answers pile up unread."""
        if not self.closed and self._room():
            self._transport.send_pong(payload)

    def _room(self) -> bool:
        """Whether the peer reads what we send: past ``MAX_UNSENT_BYTES`` it is closed (1008)."""
        if self._transport.underlying_transport.get_write_buffer_size() <= MAX_UNSENT_BYTES:
            return True
        # No closing handshake with a peer that reads nothing: drop it now, unsent data too.
        log.warning("dropped a peer that does not read: over %d bytes unsent", MAX_UNSENT_BYTES)
        self.closed = True
        self._transport.disconnect(graceful=False)
        return False

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame; disconnect when the peer answers it, or after ``CLOSE_WAIT_S``.

        The closing handshake of RFC 6455 §7.1.1: disconnecting at once, with the peer's
        messages still unread, makes the kernel reset the connection, and the peer never reads
        our close frame (its code and reason are lost). What arrives meanwhile is read and
        dropped, so the wait costs no memory. Idempotent.
        """
        if self.closed:
            return
        self.closed = True
        self._transport.send_close(WSCloseCode(code), reason.encode())
        self._transport.underlying_transport.resume_reading()
        self._timer = asyncio.get_running_loop().call_later(CLOSE_WAIT_S, self.finish)

    def finish(self) -> None:
        """Disconnect now (the peer answered our close, closed first, or is gone)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.closed = True
        self._transport.disconnect()

    def kernel_view(self) -> tuple[float, bool] | None:
        """When the kernel last got data on this socket, and whether data waits unread.

        The time is on ``time.monotonic``; None where ``TCP_INFO`` is not to be had (not
        Linux, or closed). What the kernel saw, not when the loop read it: a stalled loop
        reads late but this stays true (the lease machine, :mod:`.leases`, decides on it).
        """
        sock = self._transport.underlying_transport.get_extra_info("socket")
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
            (idle_ms,) = struct.unpack_from("I", info, _LAST_DATA_RECV)
            pending = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except (AttributeError, OSError, struct.error):
            return None
        return time.monotonic() - idle_ms / 1000, struct.unpack("i", pending)[0] > 0

    def pause_reading(self) -> None:
        """Stop reading the socket: TCP pushes back on the sender."""
        if not self.closed:
            self._transport.underlying_transport.pause_reading()

    def resume_reading(self) -> None:
        """Read the socket again."""
        if not self.closed:
            self._transport.underlying_transport.resume_reading()


class AudioListener(WSListener):
    """One Vobiz connection: takes its token's lease, then feeds whole messages to its session.

    Args:
        claim: given the connection, awaits the token's lease; None while another holds it.
        open_session: makes the session once the lease is taken, given what the claim found.
        max_message_bytes: longest message; a longer one closes the socket with 1009.
    """

    def __init__(
        self,
        claim: Callable[[PicowsConnection], asyncio.Future[Any]],
        open_session: Callable[[PicowsConnection, Any], Session],
        max_message_bytes: int,
    ) -> None:
        """Prepare for one connection; nothing happens until it is connected."""
        self._claim = claim
        self._open_session = open_session
        self._max = max_message_bytes
        self.connection: PicowsConnection | None = None
        self.session: Session | None = None
        self._held: list[tuple[bytes, bool]] | None = []  # received before the claim ended
        self._gone = False
        self._parts: list[bytes] = []  # a fragmented message so far
        self._parts_size = 0
        self._parts_binary = False
        self._claiming: asyncio.Future[Any] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        """Pause the socket and claim the token."""
        self.connection = PicowsConnection(transport)
        self.connection.pause_reading()
        self._claiming = self._claim(self.connection)
        self._claiming.add_done_callback(self._claimed)

    def _claimed(self, claim: asyncio.Future[Any]) -> None:
        connection = self.connection
        assert connection is not None
        held, self._held = self._held or [], None
        if claim.cancelled() or claim.exception() is not None or claim.result() is None:
            if not claim.cancelled() and claim.exception() is None:
                connection.close(1008, "token in use by another connection")
            else:  # the lease table is unreachable: refuse; Vobiz retries (maxRetries)
                log.error(
                    "token lease failed: %s",
                    claim.exception() if not claim.cancelled() else "cancelled",
                )
                connection.close(1011, "try again")
            return
        self.session = session = self._open_session(connection, claim.result())
        connection.resume_reading()
        for data, binary in held:
            session.receive(data, binary=binary)
        if self._gone:
            session.disconnected()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Deliver whole text and binary messages; answer a close."""
        kind = frame.msg_type
        connection = self.connection
        if connection is not None and connection.closed and kind is not WSMsgType.CLOSE:
            return  # closing: what the peer still sends is read and dropped
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if frame.fin:
                self._deliver(frame.get_payload_as_bytes(), kind is WSMsgType.BINARY)
            else:
                self._parts = [frame.get_payload_as_bytes()]
                self._parts_size = len(self._parts[0])
                self._parts_binary = kind is WSMsgType.BINARY
        elif kind is WSMsgType.CONTINUATION:
            part = frame.get_payload_as_bytes()
            self._parts_size += len(part)
            if self._parts_size > self._max:
                self._parts = []
                assert self.connection is not None
                self.connection.close(1009, f"message over {self._max} bytes")
                return
            self._parts.append(part)
            if frame.fin:
                message, self._parts = b"".join(self._parts), []
                self._deliver(message, self._parts_binary)
        elif kind is WSMsgType.PING:  # answered here, not by picows: the answer is bounded
            assert self.connection is not None
            self.connection.pong(frame.get_payload_as_bytes())
        elif kind is WSMsgType.CLOSE:
            assert self.connection is not None
            self.connection.close(1000)  # answer a close the peer began (no-op if we began)
            self.connection.finish()

    def _deliver(self, data: bytes, binary: bool) -> None:
        if self.session is not None:
            self.session.receive(data, binary=binary)
        elif self._held is not None:
            self._held.append((data, binary))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """End the session (or, if the claim is still out, end it once it is opened)."""
        self._gone = True
        if self.connection is not None:
            self.connection.finish()  # cancels a pending close timer
        if self.session is not None:
            self.session.disconnected()

    def close(self, code: int, reason: str) -> None:
        """Close the socket (the server's shutdown)."""
        if self.connection is not None:
            self.connection.close(code, reason)
