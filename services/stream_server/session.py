"""One Vobiz WebSocket connection: parse, assemble, write to Kinesis, talk back.

The transport (:mod:`stream_server.transport`) hands each message to :meth:`Session.receive`,
which parses it and feeds it to the stream's sans-I/O assembler (cheap synchronous work: the
open record, voice activity), acts once on each typed event the assembler gives back
(:mod:`callstream.audio.events`), and offers the finished records to the Kinesis writer
without waiting. Only when the writer's buffer
for this stream is full does the session wait, and then it stops reading its socket, so TCP
pushes back on Vobiz while every other session carries on; records keep their order through
the session's outbox. Registry updates run in threads; agent hooks run in a task of the
session's own, in order, so a slow agent never holds up the audio.

A stream ends with a socket close (Vobiz sends no ``stop``: the close is the end), a ``stop``
message if one comes, or when the server drains or fails it; every path releases the token's
lease at once (so Vobiz's reconnect can continue the call), flushes everything to Kinesis and
updates the registry. A ``start`` the stream cannot begin with is refused: the socket closes with
1003 and the reason, and the registry records the stream failed with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from callstream.audio.assembler import Assembler
from callstream.audio.events import (
    AudioEvent,
    ByteOrderFound,
    Cleared,
    Dtmf,
    Ended,
    Limited,
    MediaDecoded,
    Played,
    SpeechBegan,
    Started,
    StreamState,
    Unknown,
    UtteranceFound,
)
from callstream.audio.protocol import Message, StartMessage, parse_message
from callstream.clock import SYSTEM_CLOCK
from callstream.control.tokens import TokenClaims
from callstream.exceptions import CallstreamError, InvalidStartError, ProtocolError, TokenError
from callstream.logsafety import Throttle
from callstream.ports import Clock, LiveResult
from stream_server.agents import Agent, StreamInfo
from stream_server.live_transcript import LiveTranscript
from stream_server.ports import Connection, Sink
from stream_server.talkback import Talkback

log = logging.getLogger("callstream.session")
#: Agent hooks a session may have waiting (the end-of-stream hook always gets in).
MAX_AGENT_BACKLOG = 256


@dataclass
class SessionCounters:
    """Refused messages by error code, which the server sums into its metrics.

    Frames, gaps and unknown events are counted once, by the assembler (``assembler.stats``).
    """

    errors: dict[str, int] = field(default_factory=dict)
    byte_orders: dict[str, int] = field(default_factory=dict)  # L16 tracks by byte order

    def error(self, code: str) -> None:
        """Count one refused message by error code."""
        self.errors[code] = self.errors.get(code, 0) + 1


class Hooks(Protocol):
    """Server-side callbacks of a session (registry, protection, metrics)."""

    async def started(self, session: Session) -> None:
        """The stream started."""

    async def ended(self, session: Session) -> None:
        """The stream ended and everything was flushed."""

    def release(self, session: Session) -> None:
        """The socket is gone: free the token's lease (a reconnect may continue the call)."""

    async def refused(self, session: Session, stream_id: str | None, reason: str) -> None:
        """The stream's ``start`` was refused."""

    async def annotate(self, session: Session, **fields: str) -> None:
        """Record something learnt about the started stream (after ``started``)."""


class Session:
    """One Vobiz stream on one WebSocket.

    The transport calls :meth:`receive` per message and :meth:`disconnected` once;
    :meth:`wait_ended` returns when everything is flushed and recorded.
    """

    def __init__(
        self,
        connection: Connection,
        grant: TokenClaims,
        *,
        audio_sink: Sink,
        utterance_sink: Sink,
        assembler: Assembler,
        agent: Agent,
        hooks: Hooks,
        talkback_factory: Callable[..., Talkback],
        clock: Clock = SYSTEM_CLOCK,
        generation: int = 1,
        lease_holder: str = "",
        lease_id: int = 0,
        transcript: LiveTranscript | None = None,
    ) -> None:
        """Wire a session; it starts with the first message.

        ``transcript`` turns live recognition on: the assembler must then decode the media.
        """
        self.connection = connection
        self.generation = generation  # which connection of its token this is (2+: a reconnect)
        self.lease_holder = lease_holder
        self.lease_id = lease_id  # the connection in the server's lease machine
        self.grant = grant
        self.assembler = assembler
        self.agent = agent
        self.counters = SessionCounters()
        self.end_reason: str | None = None
        self.talkback: Talkback | None = None
        self.transcript = transcript
        if transcript is not None and agent.wants_transcripts:
            transcript.keep_lines = True
        self.started_at: float | None = None
        self._sinks: dict[str, Sink] = {"audio": audio_sink, "utterances": utterance_sink}
        self._hooks = hooks
        self._talkback_factory = talkback_factory
        self._clock = clock
        #: When the peer last sent anything (monotonic): a live Vobiz stream sends every 20 ms.
        self.last_heard = clock.monotonic()
        # Records waiting for the writer, in order; a task empties it when the writer is full.
        self._outbox: deque[tuple[Sink, bytes, float]] = deque()  # (sink, record, audio ms)
        self._pump: asyncio.Task[None] | None = None
        self._agent_queue: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._agent_task: asyncio.Task[None] | None = None
        self._started: asyncio.Task[None] | None = None
        self._annotations: list[asyncio.Task[None]] = []  # registry notes after the start
        self._urgent: set[asyncio.Task[None]] = set()
        self._finish: asyncio.Task[None] | None = None
        self._refusal: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self.log = logging.LoggerAdapter(log, {"call_uuid": grant.call_uuid, "stream_id": None})
        # What a peer repeats (refused messages, binary frames) costs a count, not a line each.
        self._throttle = Throttle(self.log)

    @property
    def stream_id(self) -> str | None:
        """The Vobiz stream id, once ``start`` arrived."""
        return self.assembler.stream_id

    @property
    def live(self) -> bool:
        """True between ``start`` and the end."""
        return self.assembler.state is StreamState.STARTED and self._finish is None

    @property
    def reading_paused(self) -> bool:
        """True while the socket is not read: the writer is full for this stream."""
        return self._pump is not None

    @property
    def ending(self) -> bool:
        """True once the session has begun to end."""
        return self._finish is not None

    async def wait_ended(self) -> str:
        """Wait until the stream ended and everything was flushed; return the end reason."""
        await self._ended.wait()
        return self.end_reason or "close"

    def request_stop(self, reason: str, code: int = 1001, message: str = "server draining") -> None:
        """End the session now (drain, shutdown): close its socket, flush, record ``reason``."""
        if self._finish is None:
            self.end_reason = reason
            self.connection.close(code, message)
            self._end()

    def tick(self, now: float) -> None:
        """Flush open records older than ``record_max_ms`` (called on a timer)."""
        if self.live:
            self.assembler.flush_due(now)
            self._emit()

    # -- what the transport calls ---------------------------------------------------------

    def receive(self, data: bytes, *, binary: bool = False) -> None:
        """Handle one WebSocket message (a text message's UTF-8 bytes, or a binary message).

        Never raises, and no message ends the call but by design (a ``stop``, a refused
        ``start``, a token mismatch): a message we fail on is counted and logged (once per
        interval, with its traceback) and the stream goes on with the next one.
        """
        if self._finish is not None:
            return  # after stop, refusal or drain nothing more is read
        self.last_heard = self._clock.monotonic()
        try:
            self._receive(data, binary)
        except Exception as error:
            self.counters.error("internal_error")
            self._throttle.log(
                logging.ERROR,
                "internal_error",
                "message of %d bytes dropped: %s: %s",
                len(data),
                type(error).__name__,
                str(error)[:200],
                exc_info=True,
            )

    def disconnected(self) -> None:
        """The socket closed (by Vobiz, the network or us): end the stream if it is open."""
        if self._finish is None:
            stopped = self.talkback is not None and self.talkback.stop_sent
            self.end_reason = "stopped" if stopped else "close"  # the close is the normal end
            self._end()

    def _receive(self, data: bytes, binary: bool) -> None:
        if binary:
            self.counters.error("binary_frame")
            self._throttle.warning(
                "binary_frame", "binary frame of %d bytes refused: not JSON text", len(data)
            )
            return
        message: Message | None = None
        try:
            message = parse_message(data)
            self.assembler.receive(message, self._clock.time())
        except InvalidStartError as error:
            self._refuse(error, message.stream if isinstance(message, StartMessage) else None)
            return
        except ProtocolError as error:
            self.counters.error(error.code)
            self._throttle.warning(
                error.code, "message refused (%s): %s", error.code, error.message[:300]
            )
        except TokenError as error:
            self.counters.error(error.code)
            self.log.warning("stream refused: %s", error.message)
            self.end_reason = "refused"
            self.connection.close(1008, "token does not match this stream")
            self._end()
            return
        self._emit()

    def _refuse(self, error: InvalidStartError, stream_id: str | None) -> None:
        """A start we cannot begin the stream with: close with the reason, record it failed."""
        self.counters.error(error.code)
        self.log.warning("stream refused: %s", error.message)
        self.end_reason = "refused"
        reason = f"start refused: {error.message}"
        self.connection.close(1003, reason.encode()[:120].decode("utf-8", "ignore"))
        self._refusal = asyncio.create_task(self._hooks.refused(self, stream_id, reason))
        self._end()

    def _act(self, event: AudioEvent) -> None:
        """Act once on one event of the audio core (its record is written already)."""
        talk = self.talkback
        match event:
            case SpeechBegan(track=track) if talk is not None:
                self._agent_now(self.agent.on_speech, talk, track)  # barge-in: beside any hook
            case MediaDecoded(track=track, pcm=pcm, start_sample=start):
                if self.transcript is not None:
                    self.transcript.audio(track, pcm, start)
                if talk is not None and self.agent.wants_audio:
                    self._agent_call(self.agent.on_audio, talk, track, pcm, start)
            case Started():
                self._on_start(event)
            case Played(name=name) if talk is not None:
                talk.on_played(name)
                self._agent_call(self.agent.on_checkpoint, talk, name)
            case Cleared() if talk is not None:
                talk.on_cleared()
                self._agent_call(self.agent.on_cleared, talk)
            case Dtmf(digit=digit) if talk is not None:
                self._agent_call(self.agent.on_dtmf, talk, digit)
            case UtteranceFound(record=utterance):
                if self.transcript is not None:
                    self.transcript.utterance_ended(utterance)
                if talk is not None:
                    self._agent_call(self.agent.on_utterance, talk, utterance)
            case Unknown(event=name):
                self._throttle.log(
                    logging.INFO, "unknown_event", "unknown event %r ignored", name[:80]
                )
            case Limited(what=what, dropped=dropped):  # told at most once a second a kind
                log.warning("%s events past their rate: %d dropped so far", what, dropped)
            case ByteOrderFound():
                self._on_byte_order(event)
            case Ended() if self._finish is None:  # a stop message
                self.end_reason = "stop"
                self._end()
            case _:
                pass  # audio, gaps, renumbering, our own notes: the record is all there is

    def _on_start(self, start: Started) -> None:
        self.started_at = self._clock.time()
        self.log.extra = {"call_uuid": self.grant.call_uuid, "stream_id": start.stream_id}
        self.talkback = self._talkback_factory(
            self._send,
            stream_id=start.vobiz_stream_id or start.stream_id,
            codec=start.codec,
            sample_rate=start.sample_rate,
            bidirectional=self.grant.bidirectional,
            on_action=self._note_action,
        )
        self._agent_task = asyncio.create_task(self._agent_loop(), name=f"agent-{start.stream_id}")
        info = StreamInfo(
            stream_id=start.stream_id,
            call_uuid=self.grant.call_uuid,
            codec=start.codec,
            sample_rate=start.sample_rate,
            tracks=start.tracks,
            bidirectional=self.grant.bidirectional,
        )
        self._agent_call(self.agent.on_start, self.talkback, info)
        if self.transcript is not None:
            self.transcript.start(
                start.stream_id, self.grant.call_uuid, start.sample_rate, start.tracks
            )
        self.log.info(
            "stream started: %s %d Hz %s",
            info.codec,
            info.sample_rate,
            "+".join(info.tracks),
        )
        self._started = asyncio.create_task(self._hooks.started(self))

    def _on_byte_order(self, found: ByteOrderFound) -> None:
        """Log the track's L16 byte order once, count it, record it on the stream."""
        if found.provisional:
            self.log.info(
                "%s L16: no speech yet to tell the byte order by; big-endian (as Vobiz "
                "documents) until there is",
                found.track,
            )
            return
        how = "forced by the setting" if found.evidence == 0 else f"{found.evidence:.0f}x smoother"
        self.log.info("%s L16 is %s-endian (%s)", found.track, found.order, how)
        self.counters.byte_orders[found.order] = self.counters.byte_orders.get(found.order, 0) + 1
        self._annotations.append(
            asyncio.create_task(self._annotate(f"byte_order_{found.track}", found.order))
        )

    async def _annotate(self, field: str, value: str) -> None:
        if self._started is not None:
            await self._started  # the item's fields follow its start
        await self._hooks.annotate(self, **{field: value})

    # -- records out, in order ------------------------------------------------------------

    def _emit(self) -> None:
        """Write what the core hands over, in order and unblocked; act on each event."""
        events = self.assembler.events_ready()
        if not events:
            return
        outbox = self._outbox
        queued = len(outbox)
        for event in events:
            out = event.write
            if out is not None:
                outbox.append((self._sinks[out.stream], out.data, out.ms))
        self._offer(queued)
        for event in events:
            self._act(event)
        if self.transcript is not None:
            self._write_transcript()

    def heard(self, track: str, results: list[LiveResult]) -> None:
        """What live recognition heard on a track (the server calls this).

        Also after the end: recognition runs behind the call, and its last finals come after
        the socket closed.
        """
        if self.transcript is not None and self.assembler.stream_id is not None:
            self.transcript.heard(track, results)
            self._write_transcript()

    def recognition_closed(self, track: str) -> None:
        """Live recognition of a track finished, or was given up (Transcribe's quota).

        What it left unsettled is written now: the utterances it heard nothing of go to the
        per-utterance path, its finals outside every utterance are stored as they are.
        """
        if self.transcript is not None and self.assembler.stream_id is not None:
            self.transcript.track_closed(track)
            self._write_transcript()

    def recognition_over(self) -> None:
        """Live recognition stops before its last finals (a drain's deadline).

        The utterances still waiting for theirs are written for the per-utterance path.
        """
        if self.transcript is not None and self.assembler.stream_id is not None:
            self.transcript.give_back()
            self._write_transcript()

    def _write_transcript(self) -> None:
        assert self.transcript is not None
        if self.transcript.keep_lines:
            for line in self.transcript.lines_ready():  # drained whatever: nothing piles up
                if self.talkback is not None:
                    self._agent_call(self.agent.on_transcript, self.talkback, line)
        made = self.transcript.records_ready()
        if made:
            queued = len(self._outbox)
            sink = self._sinks["utterances"]
            self._outbox.extend((sink, data, 0.0) for data in made)
            self._offer(queued)

    def _offer(self, queued: int) -> None:
        """Offer what was queued past ``queued``; a full writer pauses the socket."""
        outbox = self._outbox
        if len(outbox) > queued and self._pump is None:
            stream_id = self.assembler.stream_id
            assert stream_id is not None
            while outbox and outbox[0][0].offer(stream_id, outbox[0][1], outbox[0][2]):
                outbox.popleft()
            if outbox:  # the writer is full for this stream: wait for it, reading nothing
                self.connection.pause_reading()
                self._pump = asyncio.create_task(self._pump_outbox(stream_id))

    async def _pump_outbox(self, stream_id: str) -> None:
        try:
            while self._outbox:
                sink, data, ms = self._outbox[0]
                await sink.put(stream_id, data, ms)
                self._outbox.popleft()
        finally:
            self._pump = None
            if self._finish is None:
                self.connection.resume_reading()

    def _note_action(self, action: str, data: dict[str, str | int | float]) -> None:
        """Record what we said into the call as an ``agent`` event, in order with the audio."""
        if not self.live:
            return
        self.assembler.note("agent", self._clock.time(), {"action": action, **data})
        self._emit()

    async def _send(self, frame: bytes) -> None:
        self.connection.send(frame)

    # -- agent ----------------------------------------------------------------------------

    def _agent_call(self, hook: Callable[..., Awaitable[None]], *args: object) -> None:
        # An agent slower than what the peer sends (a DTMF flood, say) gets a bounded backlog:
        # past it, hooks are dropped and counted; the audio and the stream never wait for it.
        if self._agent_queue.qsize() >= MAX_AGENT_BACKLOG:
            self.counters.error("agent_backlog")
            self._throttle.warning(
                "agent_backlog", "agent %s is behind: hook dropped", self.agent.name
            )
            return
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

    def _end(self) -> None:
        if self._finish is None:
            self.end_reason = self.end_reason or "close"
            try:
                if self.assembler.state is not StreamState.ENDED:
                    self.assembler.close(self.end_reason, self._clock.time())
            except Exception:
                self.log.exception("closing the stream failed")
            # now, not in the task: a reconnect of the token may be waiting on this task
            self._hooks.release(self)
            self._finish = asyncio.create_task(self._finish_up())

    async def _finish_up(self) -> None:
        try:
            await self._flush_and_record()
        except Exception:
            self.log.exception("ending the stream failed")
        finally:
            self._ended.set()

    async def _flush_and_record(self) -> None:
        try:
            if self.assembler.stream_id is not None:
                self._emit()
            if self.transcript is not None and self.assembler.stream_id is not None:
                self.transcript.close()  # its last finals come later: :meth:`heard` writes them
            if self._pump is not None:
                await self._pump
        except Exception:  # the end is always recorded below, even if a sink refused here
            self.log.exception("flushing the stream's last records failed")
        finally:
            if self.talkback is not None:
                self.talkback.close()
                talk, reason = self.talkback, self.end_reason or "close"
                self._agent_queue.put_nowait(lambda: self.agent.on_stop(talk, reason))
            self._agent_queue.put_nowait(None)
            for task in self._urgent:
                task.cancel()
            if self._agent_task is not None:
                try:
                    async with asyncio.timeout(5):
                        await self._agent_task
                except TimeoutError:
                    self._agent_task.cancel()
            self.connection.close(1000, "")  # after stop, or a no-op when already closed
            if self._refusal is not None:
                await self._refusal
            if self._started is not None:
                await self._started  # mark_ended must follow mark_started
                for note in self._annotations:
                    await note
                await self._hooks.ended(self)
            self._throttle.flush()
            self.log.info(
                "stream ended (%s): %d frames, %d gaps",
                self.end_reason,
                self.assembler.stats.frames,
                self.assembler.stats.gaps,
            )
