"""The stream server: Vobiz WebSockets in, Kinesis out, many streams per process.

One asyncio process (picows, see :mod:`stream_server.transport` for why) serves:

* ``GET /healthz``: 200 while accepting, 503 while draining (the ALB's health check).
* ``GET /v1/audio/{token}``: the WebSocket Vobiz connects to. The token is verified *before* the
  upgrade: a forged, malformed or expired token gets HTTP 403 and no socket; a token already
  used gets its socket closed with 1008 before any message of it is read.
* the internal control endpoint on its own port (:mod:`stream_server.control`).

Each connection becomes a :class:`~stream_server.session.Session`; records go to two shared
:class:`~stream_server.writer.KinesisWriter` s. On SIGTERM, :meth:`StreamServer.drain` stops
accepting, lets live calls finish until the deadline, ends the rest (reason ``drain``),
flushes everything and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol

from picows import (
    WSAutoPingStrategy,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from callstream.assembler import Assembler, SegmenterFactory
from callstream.exceptions import TokenError
from callstream.settings import AudioSettings, ProtocolSettings, ServerSettings, load
from stream_server import ecs
from stream_server.agents import Agent, make_agent
from stream_server.control import ControlServer
from stream_server.metrics import MetricsEmitter, ServerCounters
from stream_server.protection import Protection
from stream_server.session import Grant, Session
from stream_server.talkback import Talkback
from stream_server.transport import AudioListener, PicowsConnection
from stream_server.writer import KinesisWriter, PutRecords

log = logging.getLogger("callstream.server")

_AUDIO_PATH = re.compile(r"/v1/audio/(?P<token>[A-Za-z0-9_\-.]{1,1024})")
TOKEN_ONCE_TTL_S = 2 * 24 * 3600  # longer than any token lives


class Registry(Protocol):
    """The registry calls the server makes (sync; run in threads)."""

    def mark_started(self, stream_id: str, call_uuid: str, **fields: Any) -> Any:
        """Record that the stream started on this task."""

    def mark_ended(self, stream_id: str, call_uuid: str, **fields: Any) -> Any:
        """Record how the stream ended."""


@dataclass
class Backends:
    """Everything the server talks to, injected (boto3-backed in AWS, moto or fakes in tests).

    Attributes:
        put_records: a Kinesis client's ``put_records``.
        registry: the stream registry.
        claim_once: ``claim(key, ttl_s) -> bool``: True the first time a key is claimed.
        verify_token: ``verify(token, now) -> Grant``; raises TokenError.
        authorize_control: ``authorize(stream_id, authorization_header)``; raises AuthError.
        protection: ECS task scale-in protection.
        segmenter_factory: voice-activity segmenter per track (None: no utterances).
    """

    put_records: PutRecords
    registry: Registry
    claim_once: Callable[[str, int], bool]
    verify_token: Callable[[str, float], Grant]
    authorize_control: Callable[[str, str], None]
    protection: Protection
    segmenter_factory: SegmenterFactory | None = None


class StreamServer:
    """See the module docstring. ``await start()``, then ``await drain()`` to stop."""

    def __init__(
        self,
        settings: ServerSettings,
        backends: Backends,
        *,
        audio_settings: AudioSettings | None = None,
        protocol_settings: ProtocolSettings | None = None,
    ) -> None:
        """Configure the server; nothing listens until :meth:`start`."""
        self.settings = settings
        self.backends = backends
        self.audio_settings = audio_settings or load(AudioSettings)
        self.protocol_settings = protocol_settings or load(ProtocolSettings)
        self.counters = ServerCounters()
        self.draining = False
        self.sessions: dict[int, Session] = {}
        self._no_sessions = asyncio.Event()
        self._no_sessions.set()
        self._listeners: weakref.WeakSet[AudioListener] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.audio_writer = self._writer(settings.audio_stream)
        self.utterance_writer = self._writer(settings.utterance_stream)
        self._metrics = MetricsEmitter()
        self._ws: asyncio.Server | None = None
        self._control: ControlServer | None = None
        self._task_address: str | None = None

    def _writer(self, stream: str) -> KinesisWriter:
        return KinesisWriter(
            self.backends.put_records,
            stream,
            buffer_records=self.settings.sink_buffer_records,
            max_in_flight=self.settings.kinesis_max_in_flight,
            linger_s=self.settings.kinesis_linger_ms / 1000,
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the WebSocket and control ports; start the timers."""
        self.audio_writer.start()
        self.utterance_writer.start()
        self._ws = await ws_create_server(
            self._route,
            self.settings.host,
            self.settings.port,
            max_frame_size=self.protocol_settings.max_message_bytes,
            enable_auto_ping=True,  # a silent peer (a dead NAT, a lost Vobiz node) is found
            auto_ping_idle_timeout=20,
            auto_ping_reply_timeout=20,
            auto_ping_strategy=WSAutoPingStrategy.PING_WHEN_IDLE,
            logger_name="callstream.websocket",
        )
        self._control = ControlServer(
            self.settings.host,
            self.settings.control_port,
            self._talkback_of,
            self.backends.authorize_control,
            asyncio.get_running_loop(),
        )
        self._control.start()
        self._task_address = self.settings.task_address or await asyncio.to_thread(
            ecs.control_address, self.control_port
        )
        self._spawn(self._ticker())
        self._spawn(self._metrics_loop())
        log.info(
            "listening on %s:%d (control %d)", self.settings.host, self.port, self.control_port
        )

    @property
    def port(self) -> int:
        """The bound WebSocket port."""
        assert self._ws is not None
        return int(next(iter(self._ws.sockets)).getsockname()[1])

    @property
    def control_port(self) -> int:
        """The bound control port."""
        assert self._control is not None
        return self._control.port

    @property
    def task_address(self) -> str:
        """Where the control API reaches this task (recorded in the registry)."""
        if self._task_address is None:
            self._task_address = self.settings.task_address or ecs.control_address(
                self.control_port
            )
        return self._task_address

    async def drain(self, deadline_s: float | None = None) -> int:
        """Stop accepting, wait for live calls up to the deadline, end the rest, flush.

        Returns:
            The number of records that could not be delivered (0 when nothing was lost).
        """
        deadline = time.monotonic() + (deadline_s or self.settings.drain_deadline_s)
        self.draining = True
        if self._ws is not None:
            self._ws.close()  # stops listening; live sockets carry on
        log.info("draining: %d live sessions", len(self.sessions))
        flush_reserve = 5.0  # seconds kept back to flush the writers after the sessions end
        await self._all_ended(deadline - flush_reserve)
        for session in list(self.sessions.values()):
            session.request_stop("drain")
        await self._all_ended(deadline - 1)
        remaining = max(1.0, deadline - time.monotonic())
        lost = await self.audio_writer.drain(remaining)
        lost += await self.utterance_writer.drain(max(0.5, deadline - time.monotonic()))
        await self.close()
        return lost

    async def _all_ended(self, until: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, until - time.monotonic())):
                await self._no_sessions.wait()

    async def close(self) -> None:
        """Release everything (after :meth:`drain`, or in tests)."""
        for task in list(self._tasks):
            task.cancel()
        for listener in list(self._listeners):
            listener.close(1001, "server shutting down")
        if self._ws is not None:
            self._ws.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._ws.wait_closed()
        if self._control is not None:
            self._control.stop()
        await self.audio_writer.close()
        await self.utterance_writer.close()
        await self.backends.protection.set(False)

    # -- HTTP before the upgrade ----------------------------------------------------------

    def _route(self, request: WSUpgradeRequest) -> AudioListener | WSUpgradeResponseWithListener:
        path = request.path.decode("latin-1").split("?", 1)[0]
        if path == "/healthz":
            if self.draining:
                return _respond(HTTPStatus.SERVICE_UNAVAILABLE, b"draining\n")
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_ok_response(b"ok\n"), None
            )
        if self.draining:
            return _respond(HTTPStatus.SERVICE_UNAVAILABLE, b"draining\n")
        match = _AUDIO_PATH.fullmatch(path)
        if match is None:
            return _respond(HTTPStatus.NOT_FOUND, b"not found\n")
        try:
            grant = self.backends.verify_token(match["token"], time.time())
        except TokenError as error:
            self.counters.auth_failures += 1
            log.warning("websocket refused: %s", error.message)
            return _respond(HTTPStatus.FORBIDDEN, f"forbidden: {error.message}\n".encode())
        listener = AudioListener(
            lambda: self._claim(grant),
            lambda connection: self._open(connection, grant),
            self.protocol_settings.max_message_bytes,
        )
        self._listeners.add(listener)
        return listener

    def _claim(self, grant: Grant) -> asyncio.Future[bool]:
        """Claim the token's single use (DynamoDB, in a thread); count a replay."""

        async def claim() -> bool:
            first = await asyncio.to_thread(
                self.backends.claim_once, f"jti#{grant.jti}", TOKEN_ONCE_TTL_S
            )
            if not first:
                self.counters.auth_failures += 1
                log.warning("websocket refused: token already used (call %s)", grant.call_uuid)
            return first

        return asyncio.ensure_future(claim())

    # -- sessions -------------------------------------------------------------------------

    def _open(self, connection: PicowsConnection, grant: Grant) -> Session:
        session = Session(
            connection,
            grant,
            audio_sink=self.audio_writer,
            utterance_sink=self.utterance_writer,
            assembler=Assembler(
                call_uuid=grant.call_uuid,
                audio_settings=self.audio_settings,
                segmenter_factory=self.backends.segmenter_factory,
            ),
            agent=self._agent(grant.agent),
            hooks=self,
            talkback_factory=self._talkback,
        )
        self.sessions[id(session)] = session
        self._no_sessions.clear()
        self.counters.sessions += 1
        self._spawn(self._until_ended(session))
        return session

    async def _until_ended(self, session: Session) -> None:
        try:
            await session.wait_ended()
        finally:
            del self.sessions[id(session)]
            if not self.sessions:
                self._no_sessions.set()
            stats = session.assembler.stats
            self.counters.frames += stats.frames
            self.counters.gaps += stats.gaps
            self.counters.lost_frames += stats.lost_frames
            self.counters.errors.update(session.counters.errors)

    def _agent(self, name: str) -> Agent:
        try:
            return make_agent(name or self.settings.agent, self.settings.prompt_wav)
        except KeyError as error:
            log.warning("%s; using none", error)
            return Agent()

    def _talkback(self, send: Callable[..., Any], **kwargs: Any) -> Talkback:
        return Talkback(
            send,
            lead_ms=self.settings.play_lead_ms,
            checkpoint_timeout_s=self.settings.checkpoint_timeout_s,
            clear_backstop_s=self.settings.clear_backstop_s,
            **kwargs,
        )

    def _talkback_of(self, stream_id: str) -> Talkback | None:
        for session in self.sessions.values():
            if session.stream_id == stream_id and session.live:
                return session.talkback
        return None

    # Session hooks: the registry and scale-in protection.

    async def started(self, session: Session) -> None:
        """A stream started: record it as ours and hold scale-in protection."""
        await self.backends.protection.set(True)
        assembler = session.assembler
        await self._registry(
            "mark_started",
            session,
            codec=assembler.codec,
            sample_rate=assembler.sample_rate,
            tracks=list(assembler.tracks),
            task_address=self.task_address,
            bidirectional=session.grant.bidirectional,
            agent=session.agent.name,
            at=_now_iso(),
        )

    async def ended(self, session: Session) -> None:
        """A stream ended and was flushed: record how; release protection if it was the last."""
        stats = session.assembler.stats
        await self._registry(
            "mark_ended",
            session,
            state="failed" if session.end_reason == "error" else "stopped",
            end_reason=session.end_reason or "close",
            frames=stats.frames,
            gaps=stats.gaps,
            at=_now_iso(),
        )
        if not any(s.live for s in self.sessions.values() if s is not session):
            await self.backends.protection.set(False)

    async def _registry(self, method: str, session: Session, **fields: Any) -> None:
        stream_id = session.stream_id
        assert stream_id is not None
        try:
            call = getattr(self.backends.registry, method)
            await asyncio.to_thread(call, stream_id, session.grant.call_uuid, **fields)
        except Exception:  # the registry is bookkeeping: the audio goes on regardless
            session.log.exception("registry %s failed", method)

    # -- timers ---------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ticker(self) -> None:
        interval = self.settings.flush_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for session in list(self.sessions.values()):
                session.tick(now)

    async def _metrics_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.metrics_interval_s)
            self.emit_metrics()

    def emit_metrics(self) -> None:
        """Print one EMF metrics line now."""
        writers = (self.audio_writer, self.utterance_writer)
        self._metrics.emit(
            self.counters,
            active_streams=sum(1 for s in self.sessions.values() if s.live),
            buffered_records=sum(w.pending for w in writers),
            put_latencies_ms=[v for w in writers for v in w.stats.take_latencies()],
            retries=sum(w.stats.retries for w in writers),
            backpressure_s=sum(w.stats.backpressure_s for w in writers),
        )


def _respond(status: HTTPStatus, body: bytes) -> WSUpgradeResponseWithListener:
    return WSUpgradeResponseWithListener(
        WSUpgradeResponse.create_error_response(status, body), None
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
