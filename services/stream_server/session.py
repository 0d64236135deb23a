"""One Vobiz WebSocket connection: parse, assemble, write to Kinesis, talk back.

The receive loop does only cheap synchronous work per frame (parse, append to the open record,
voice activity) and awaits only the Kinesis writer, whose back-pressure is the point: when
Kinesis is slow for this stream, this loop stops reading its socket and TCP pushes back on
Vobiz, while every other session carries on. Registry updates run in threads; agent hooks run
in a task of the session's own, in order, so a slow agent never holds up the audio.

A stream ends with a ``stop`` message or a socket close, whichever comes first, or when the
server drains or fails it; every path flushes everything to Kinesis and updates the registry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed

from callstream import codecs
from callstream import records as wire
from callstream.assembler import Assembler
from callstream.exceptions import CallstreamError, ProtocolError, TokenError
from callstream.protocol import (
    ClearedAudioMessage,
    DtmfMessage,
    MediaMessage,
    Message,
    PlayedStreamMessage,
    StartMessage,
    StopMessage,
    UnknownMessage,
    parse_message,
)
from stream_server.agents import Agent, StreamInfo
from stream_server.talkback import Talkback

log = logging.getLogger("callstream.session")


class Connection(Protocol):
    """What a session needs of a websockets ``ServerConnection``."""

    def __aiter__(self) -> Any:
        """Iterate over incoming messages until the connection closes."""

    async def send(self, message: str | bytes) -> None:
        """Send one frame."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection."""


class Sink(Protocol):
    """What a session needs of a Kinesis writer."""

    async def put(self, key: str, data: bytes) -> Awaitable[None]:
        """Queue one record; wait while the key's buffer is full."""


@dataclass(frozen=True)
class Grant:
    """What the verified token allows this connection."""

    jti: str
    call_uuid: str
    stream_id: str | None
    agent: str
    bidirectional: bool


@dataclass
class SessionCounters:
    """Per-session counters the server sums into its metrics."""

    frames: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    unknown_events: int = 0
    binary_frames: int = 0

    def error(self, code: str) -> None:
        """Count one refused message by error code."""
        self.errors[code] = self.errors.get(code, 0) + 1


class Hooks(Protocol):
    """Server-side callbacks of a session (registry, protection, metrics)."""

    async def started(self, session: Session) -> None:
        """The stream started."""

    async def ended(self, session: Session) -> None:
        """The stream ended and everything was flushed."""


class Session:
    """One Vobiz stream on one WebSocket. Create it, then ``await run()``."""

    def __init__(
        self,
        connection: Connection,
        grant: Grant,
        *,
        audio_sink: Sink,
        utterance_sink: Sink,
        assembler: Assembler,
        agent: Agent,
        hooks: Hooks,
        talkback_factory: Callable[..., Talkback],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Wire a session; nothing runs until :meth:`run`."""
        self.connection = connection
        self.grant = grant
        self.assembler = assembler
        self.agent = agent
        self.counters = SessionCounters()
        self.end_reason: str | None = None
        self.talkback: Talkback | None = None
        self.started_at: float | None = None
        self._audio = audio_sink
        self._utterances = utterance_sink
        self._hooks = hooks
        self._talkback_factory = talkback_factory
        self._clock = clock
        self._out = asyncio.Lock()  # keeps records in order between run() and tick()
        self._agent_queue: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._agent_task: asyncio.Task[None] | None = None
        self._urgent: set[asyncio.Task[None]] = set()
        self._emits: set[asyncio.Task[None]] = set()
        self._stop_reason: str | None = None  # set by the server (drain, shutdown)
        self.log = logging.LoggerAdapter(log, {"call_uuid": grant.call_uuid, "stream_id": None})

    @property
    def stream_id(self) -> str | None:
        """The Vobiz stream id, once ``start`` arrived."""
        return self.assembler.stream_id

    @property
    def live(self) -> bool:
        """True between ``start`` and the end."""
        return self.assembler.state == "started"

    async def run(self) -> str:
        """Serve the connection until the stream ends; return the end reason."""
        try:
            await self._receive_loop()
        except Exception as error:  # the session fails alone, never the server
            self.log.exception("session failed: %s", error)
            self.end_reason = self.end_reason or "error"
        finally:
            await self._finish()
        return self.end_reason or "close"

    def request_stop(self, reason: str) -> None:
        """Ask the session to end (drain, shutdown): it closes its socket with ``reason``."""
        self._stop_reason = reason

    async def tick(self, now: float) -> None:
        """Flush open records older than ``record_max_ms`` (called on a timer)."""
        if self.live:
            self.assembler.flush_due(now)
            await self._emit()

    # -- the loop -------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        try:
            async for raw in self.connection:
                if isinstance(raw, bytes):
                    self.counters.binary_frames += 1
                    self.counters.error("binary_frame")
                    self.log.warning("binary frame of %d bytes refused: not JSON text", len(raw))
                    continue
                now = self._clock()
                try:
                    await self._handle(parse_message(raw), now)
                except ProtocolError as error:
                    self.counters.error(error.code)
                    self.log.warning("message refused (%s): %s", error.code, error.message)
                except TokenError as error:
                    self.counters.error(error.code)
                    self.log.warning("stream refused: %s", error.message)
                    self.end_reason = "refused"
                    await self.connection.close(1008, "token does not match this stream")
                    return
                if self.assembler.state == "ended":
                    self.end_reason = "stop"
                    return
                if self._stop_reason is not None:
                    break
        except ConnectionClosed:
            pass  # an abrupt close is one of the two normal ends of a stream
        self.end_reason = self._stop_reason or "close"

    async def _handle(self, message: Message, now: float) -> None:
        if isinstance(message, StartMessage):
            self._check_grant(message)
        self.assembler.receive(message, now)
        if isinstance(message, UnknownMessage):
            self.counters.unknown_events += 1
            self.log.info("unknown event %r ignored", message.event)
            return
        if isinstance(message, StartMessage):
            await self._on_start(message)
        elif self.talkback is not None:
            if isinstance(message, PlayedStreamMessage):
                self.talkback.on_played(message.name)
                self._agent_call(self.agent.on_checkpoint, self.talkback, message.name)
            elif isinstance(message, ClearedAudioMessage):
                self.talkback.on_cleared()
                self._agent_call(self.agent.on_cleared, self.talkback)
            elif isinstance(message, DtmfMessage):
                self._agent_call(self.agent.on_dtmf, self.talkback, message.dtmf.digit)
            elif isinstance(message, MediaMessage) and self.agent.wants_audio:
                self._agent_audio(message)
        if not isinstance(message, StopMessage):
            self.counters.frames += 1
        await self._emit()

    def _check_grant(self, start: StartMessage) -> None:
        """A token is for one call (and one stream when known): refuse to mix them up."""
        if self.assembler.state != "new":
            return  # the assembler refuses the second start with a precise error
        if start.call and start.call != self.grant.call_uuid:
            raise _GrantMismatchError(f"start.callId {start.call!r} is not the token's call")
        if self.grant.stream_id and start.stream != self.grant.stream_id:
            raise _GrantMismatchError(f"start.streamId {start.stream!r} is not the token's stream")

    async def _on_start(self, start: StartMessage) -> None:
        assert self.assembler.codec is not None and start.stream
        self.started_at = self._clock()
        self.log.extra = {"call_uuid": self.grant.call_uuid, "stream_id": start.stream}
        self.talkback = self._talkback_factory(
            self._send,
            stream_id=start.stream,
            codec=self.assembler.codec,
            sample_rate=self.assembler.sample_rate,
            bidirectional=self.grant.bidirectional,
            on_action=self._note_action,
        )
        self._agent_task = asyncio.create_task(self._agent_loop(), name=f"agent-{start.stream}")
        info = StreamInfo(
            stream_id=start.stream,
            call_uuid=self.grant.call_uuid,
            codec=self.assembler.codec,
            sample_rate=self.assembler.sample_rate,
            tracks=self.assembler.tracks,
            bidirectional=self.grant.bidirectional,
        )
        self._agent_call(self.agent.on_start, self.talkback, info)
        self.log.info(
            "stream started: %s %d Hz %s",
            info.codec,
            info.sample_rate,
            "+".join(info.tracks),
        )
        await self._hooks.started(self)

    async def _emit(self) -> None:
        """Hand what the assembler made to the sinks, in order."""
        if self.talkback is not None:  # barge-in runs at once, beside any hook in progress
            for track in self.assembler.speech_onsets_ready():
                self._agent_now(self.agent.on_speech, self.talkback, track)
        records = self.assembler.records_ready()
        utterances = self.assembler.utterances_ready()
        if not records and not utterances:
            return
        stream_id = self.assembler.stream_id
        assert stream_id is not None
        async with self._out:
            for record in records:
                await self._audio.put(stream_id, wire.encode(record))
            for utterance in utterances:
                await self._utterances.put(stream_id, wire.encode(utterance))
        if self.talkback is not None:
            for utterance in utterances:
                self._agent_call(self.agent.on_utterance, self.talkback, utterance)

    def _note_action(self, action: str, data: dict[str, str | int | float]) -> None:
        """Record what we said into the call as an ``agent`` event, in order with the audio."""
        if not self.live:
            return
        self.assembler.note("agent", self._clock(), {"action": action, **data})
        task = asyncio.create_task(self._emit())  # never cancelled: it carries records
        self._emits.add(task)
        task.add_done_callback(self._emits.discard)

    async def _send(self, frame: bytes) -> None:
        await self.connection.send(frame.decode())

    # -- agent ----------------------------------------------------------------------------

    def _agent_audio(self, message: MediaMessage) -> None:
        """Hand an agent that asked for audio the frame as PCM16 LE, at its timeline position."""
        assert self.talkback is not None and self.assembler.codec is not None
        track = self.assembler.track_state(message.media.track)
        if track is None:
            return
        payload = message.media.payload
        pcm = (
            codecs.ulaw_decode(payload)
            if self.assembler.codec == "mulaw"
            else codecs.l16_swap(payload)
        )
        self._agent_call(self.agent.on_audio, self.talkback, message.media.track, pcm, track)

    def _agent_call(self, hook: Callable[..., Awaitable[None]], *args: object) -> None:
        self._agent_queue.put_nowait(lambda: hook(*args))

    def _agent_now(self, hook: Callable[..., Awaitable[None]], *args: object) -> None:
        """Run a hook concurrently with the queue (barge-in must not wait behind a play)."""
        task = asyncio.create_task(self._guard(lambda: hook(*args)))
        self._urgent.add(task)
        task.add_done_callback(self._urgent.discard)

    async def _guard(self, call: Callable[[], Awaitable[None]]) -> None:
        try:
            await call()
        except CallstreamError as error:
            self.log.warning("agent %s: %s", self.agent.name, error.message)
        except Exception:  # an agent bug never ends the stream
            self.log.exception("agent %s failed", self.agent.name)

    async def _agent_loop(self) -> None:
        while (call := await self._agent_queue.get()) is not None:
            await self._guard(call)

    # -- the end --------------------------------------------------------------------------

    async def _finish(self) -> None:
        self.end_reason = self.end_reason or self._stop_reason or "close"
        if self.assembler.state != "ended":
            self.assembler.close(self.end_reason, self._clock())
        if self._emits:
            await asyncio.gather(*self._emits)
        try:
            if self.assembler.stream_id is not None:
                await self._emit()
        except Exception:  # the end is always recorded below, even if a sink refused here
            self.log.exception("flushing the stream's last records failed")
        finally:
            if self.talkback is not None:
                self.talkback.close()
                self._agent_call(self.agent.on_stop, self.talkback, self.end_reason)
            self._agent_queue.put_nowait(None)
            for task in self._urgent:
                task.cancel()
            if self._agent_task is not None:
                try:
                    async with asyncio.timeout(5):
                        await self._agent_task
                except TimeoutError:
                    self._agent_task.cancel()
            if self.started_at is not None:
                await self._hooks.ended(self)
            self.log.info(
                "stream ended (%s): %d frames, %d gaps",
                self.end_reason,
                self.assembler.stats.frames,
                self.assembler.stats.gaps,
            )


class _GrantMismatchError(TokenError):
    """The start message names another call or stream than the token."""
