"""Every port the stream server talks through: what its adapters and peers must offer.

The shared ports (leases, clock, talk-back) are in :mod:`callstream.ports`. ``stream_server.wiring``
builds the adapters; tests inject moto-backed ones or fakes. The session's callback contract
(:class:`stream_server.session.Hooks`) stays beside the session: it is implemented by
:class:`stream_server.bookkeeping.Bookkeeping`, not by anything outside the process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class Registry(Protocol):
    """The registry calls the server makes (sync; run in threads)."""

    def mark_started(self, stream_id: str, call_uuid: str, **fields: Any) -> Any:
        """Record that the stream started on this task."""

    def mark_ended(self, stream_id: str, call_uuid: str, **fields: Any) -> Any:
        """Record how the stream ended."""

    def annotate(self, stream_id: str, call_uuid: str, **fields: Any) -> Any:
        """Set fields of the stream, whatever its state."""


class Protection(Protocol):
    """Holds or releases ECS scale-in protection (:mod:`stream_server.protection`)."""

    async def set(self, protected: bool) -> None:
        """Protect the task (True) or let it be scaled in (False)."""


class Connection(Protocol):
    """What a session needs of its WebSocket (see :mod:`stream_server.transport`)."""

    def send(self, text: bytes) -> None:
        """Send one text frame (UTF-8 bytes)."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and disconnect (idempotent)."""

    def pause_reading(self) -> None:
        """Stop reading the socket (back-pressure)."""

    def resume_reading(self) -> None:
        """Read the socket again."""


class Observed(Protocol):
    """A socket as the kernel sees it (what the lease driver and the keepalive read)."""

    def kernel_view(self) -> tuple[float, bool] | None:
        """(when its last data arrived, on ``time.monotonic``; whether data waits unread)."""


class Sink(Protocol):
    """What a session needs of a Kinesis writer (:mod:`stream_server.writer`)."""

    def offer(self, key: str, data: bytes, ms: float = 0.0) -> bool:
        """Queue one record (of ``ms`` of audio) unless the key is full."""

    async def put(self, key: str, data: bytes, ms: float = 0.0) -> None:
        """Queue one record; wait while the key is full."""


class Ending(Protocol):
    """What the lease driver does to a session it supersedes."""

    def request_stop(self, reason: str, code: int = 1001, message: str = "") -> None:
        """End the session."""


class Recognizing(Protocol):
    """Live recognition of calls' tracks (:class:`stream_server.recognition.Recognition`)."""

    def open(
        self, key: str, track: str, rate: int, language: str, together: tuple[str, ...] = ()
    ) -> None:
        """Start hearing a track of a connection.

        ``together``: the tracks the stream began with, heard as one call where the backend
        can (one stereo Transcribe session).
        """

    def feed(self, key: str, track: str, start_sample: int, pcm: bytes) -> None:
        """The track's next audio, PCM16 LE at its rate."""

    def close(self, key: str, track: str) -> None:
        """The track ended: its last finals follow."""


# -- the voice agent's voice (its mind, LanguageModel, is in callstream.ports) -------------


class Synthesizer(Protocol):
    """Text to speech, streamed: PCM16 LE mono chunks at the synthesiser's own rate."""

    def speak(self, text: str) -> AsyncIterator[tuple[bytes, int]]:
        """The speech of ``text`` as (PCM16 LE, sample rate) chunks, the first as soon as may be.

        Raises:
            ModelError: the synthesiser failed.
        """
