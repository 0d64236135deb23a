"""The stream server: Vobiz WebSockets in, Kinesis out, many streams per process.

One asyncio process (picows, see :mod:`stream_server.transport` for why) serves:

* ``GET /healthz``: 200 while accepting, 503 while draining (the ALB's health check).
* ``GET /v1/audio/{token}``: the WebSocket Vobiz connects to. The token is verified *before* the
  upgrade: a forged, malformed or expired token gets HTTP 403 and no socket. A token is
  call-scoped: Vobiz reconnects a dropped socket to the same URL (``maxRetries``) and that
  continues the same call stream (same stream id, the outage a gap); while one socket of a
  token is open, a second is closed with 1008 before any message of it is read.
* the internal control endpoint on its own port (:mod:`stream_server.internal_api`).

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
import secrets
import socket
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from picows import (
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from callstream import logsafety
from callstream.audio.assembler import Assembler
from callstream.audio.continuation import Continuation
from callstream.audio.vad import SegmenterFactory
from callstream.control.tokens import TokenClaims
from callstream.exceptions import ConfigError, TokenError
from callstream.logsafety import Throttle
from callstream.ports import Lease, Leases
from callstream.settings import AudioSettings, ServerSettings, load
from callstream.vocabulary import AudioLimits
from stream_server import ecs
from stream_server.agents import Agent, make_agent
from stream_server.bookkeeping import Bookkeeping
from stream_server.hearing import Hearing
from stream_server.internal_api import InternalApi
from stream_server.keepalive import Keepalive, Verdict
from stream_server.lease_driver import RENEW_TICK_S, LeaseDriver
from stream_server.metrics import MetricsEmitter, ServerCounters
from stream_server.ports import Protection, Registry
from stream_server.recognition import Spawn
from stream_server.session import Session
from stream_server.talkback import Talkback
from stream_server.transport import AudioListener, PicowsConnection
from stream_server.tuning import Tuning
from stream_server.writer import KinesisWriter, PutRecords

log = logging.getLogger("callstream.server")
#: How often the keepalive looks at every socket (a TCP_INFO read each).
KEEPALIVE_TICK_S = 1.0

_AUDIO_PATH = re.compile(r"/v1/audio/(?P<token>[A-Za-z0-9_\-.]{1,1024})")


@dataclass
class ServerServices:
    """Everything the server talks to, injected (boto3-backed in AWS, moto or fakes in tests).

    Attributes:
        put_records: a Kinesis client's ``put_records``.
        registry: the stream registry.
        leases: the tokens' connection leases.
        verify_token: ``verify(token, now) -> TokenClaims``; raises TokenError.
        authorize_control: ``authorize(stream_id, authorization_header)``; raises AuthError.
        protection: ECS task scale-in protection.
        segmenter_factory: voice-activity segmenter per track (None: no utterances).
        recognition: spawns a live-recognition worker (None: no live transcript).
        recognition_workers: how many (each a process, so a core).
        assistant: builds the ``assistant`` voice agent for a grant (None: this task has none).
    """

    put_records: PutRecords
    registry: Registry
    leases: Leases
    verify_token: Callable[[str, float], TokenClaims]
    authorize_control: Callable[[str, str], None]
    protection: Protection
    segmenter_factory: SegmenterFactory | None = None
    recognition: Spawn | None = None
    recognition_workers: int = 1
    assistant: Callable[[TokenClaims], Agent] | None = None


class StreamServer:
    """See the module docstring. ``await start()``, then ``await drain()`` to stop."""

    def __init__(
        self,
        settings: ServerSettings,
        services: ServerServices,
        *,
        limits: AudioLimits | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        """Configure the server; nothing listens until :meth:`start`."""
        self.settings = settings
        self.services = services
        self.limits = limits or load(AudioSettings).limits()
        self.tuning = tuning or Tuning()
        self.counters = ServerCounters()
        # Unauthenticated upgrades cost a count, not a line each (they are counted in metrics).
        self._refusals = Throttle(log)
        self.draining = False
        self.sessions: dict[int, Session] = {}
        self._no_sessions = asyncio.Event()
        self._no_sessions.set()
        self._listeners: weakref.WeakSet[AudioListener] = weakref.WeakSet()
        #: Who may stream on each token: reconnects and copied URLs (:mod:`.leases`).
        self.leasing = LeaseDriver(services.leases, on_refused=self._token_refused)
        self.bookkeeping = Bookkeeping(
            services.registry,
            services.protection,
            self.leasing,
            task_address=lambda: self.task_address,
            others_live=lambda session: any(
                s.live for s in self.sessions.values() if s is not session
            ),
        )
        self._keepalives: dict[int, tuple[PicowsConnection, Keepalive]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.audio_writer = self._writer(settings.audio_stream, settings.max_unacked_ms)
        self.utterance_writer = self._writer(settings.utterance_stream, None)
        self._metrics = MetricsEmitter()
        self._ws: asyncio.Server | None = None
        self._control: InternalApi | None = None
        self._task_address: str | None = None
        self.hearing: Hearing | None = None  # live recognition (:mod:`.hearing`)
        if services.recognition is not None:
            self.hearing = Hearing(
                services.recognition,
                workers=services.recognition_workers,
                language=settings.language,
            )

    def _writer(self, stream: str, max_unacked_ms: float | None) -> KinesisWriter:
        return KinesisWriter(
            self.services.put_records,
            stream,
            buffer_records=self.tuning.sink_buffer_records,
            max_unacked_ms=max_unacked_ms,
            max_in_flight=self.tuning.kinesis_max_in_flight,
            linger_s=self.tuning.kinesis_linger_ms / 1000,
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the WebSocket and control ports; start the timers."""
        logsafety.cap_libraries()  # picows logs every connection below INFO: not per peer
        self.audio_writer.start()
        self.utterance_writer.start()
        if self.hearing is not None:
            self.hearing.start()
        self._ws = await ws_create_server(
            self._route,
            self.settings.host,
            self.settings.port,
            max_frame_size=self.tuning.max_message_bytes,
            # ours, by the kernel's bytes and never while paused (stream_server.keepalive)
            enable_auto_ping=False,
            enable_auto_pong=False,  # the listener answers pings, within a bound (transport)
            logger_name="callstream.websocket",
        )
        for listening in self._ws.sockets:  # accepted sockets inherit it (Linux)
            listening.setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, self.tuning.receive_buffer_bytes
            )
        self._control = InternalApi(
            self.settings.host,
            self.settings.control_port,
            self._talkback_of,
            self.services.authorize_control,
            asyncio.get_running_loop(),
        )
        self._control.start()
        self._task_address = self.settings.task_address or await asyncio.to_thread(
            ecs.control_address, self.control_port
        )
        self._spawn(self._ticker())
        self._spawn(self._lease_loop())
        self._spawn(self._keepalive_loop())
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
        """Where the control API reaches this task (recorded in the registry; set by start)."""
        assert self._task_address is not None, "the server has not started"
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
        if self.hearing is not None:  # live recognition's last finals, if in time
            await self.hearing.wait_all_heard(deadline - flush_reserve / 2)
            self.hearing.give_back()
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
        if self.hearing is not None:
            await self.hearing.stop()
        await self.audio_writer.close()
        await self.utterance_writer.close()
        self.leasing.close()
        await self.services.protection.set(False)

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
            grant = self.services.verify_token(match["token"], time.time())
        except TokenError as error:
            self.counters.auth_failures += 1
            self._refusals.warning(error.code, "websocket refused: %s", error.message)
            return _respond(HTTPStatus.FORBIDDEN, f"forbidden: {error.message}\n".encode())
        holder = f"{self.settings.task_address or 'task'}#{secrets.token_hex(8)}"
        claimed: list[int] = []

        def claim(connection: PicowsConnection) -> asyncio.Future[Lease | None]:
            conn, future = self.leasing.claim(grant.jti, holder, connection)
            claimed.append(conn)
            return future

        listener = AudioListener(
            claim,
            lambda connection, lease: self._open(connection, grant, lease, holder, claimed[0]),
            self.tuning.max_message_bytes,
        )
        self._listeners.add(listener)
        return listener

    def _token_refused(self, token: str, reason: str) -> None:
        self.counters.auth_failures += 1
        self._refusals.warning(
            "token_in_use", "websocket refused: token %s… in use (%s)", token[:8], reason
        )

    # -- sessions -------------------------------------------------------------------------

    def _open(
        self, connection: PicowsConnection, grant: TokenClaims, lease: Lease, holder: str, conn: int
    ) -> Session:
        continuation = None
        if lease.generation > 1 and lease.stream_id is not None:
            outage = max(0.0, time.time() - lease.released_at) if lease.released_at else 0.0
            continuation = Continuation(
                stream_id=lease.stream_id,
                generation=lease.generation,
                position_ms=lease.position_ms,
                outage_ms=outage * 1000,
                media_clock_ms=lease.media_clock_ms,
                previous_stream_id=lease.vobiz_stream_id,
                frames=lease.frames,
                utterances=lease.utterances,
            )
        agent = self._agent(grant)
        transcript = self.hearing.transcript(grant, conn) if self.hearing is not None else None
        session = Session(
            connection,
            grant,
            audio_sink=self.audio_writer,
            utterance_sink=self.utterance_writer,
            assembler=Assembler(
                limits=self.limits,
                call_uuid=grant.call_uuid,
                stream_id=grant.stream_id,
                segmenter_factory=self.services.segmenter_factory,
                requested_format=grant.content_type,
                continuation=continuation,
                # PCM for an agent that listens or live recognition, else none
                decode_media=agent.wants_audio or transcript is not None,
                live_transcript=transcript is not None,
                language=grant.language,
            ),
            agent=agent,
            hooks=self.bookkeeping,
            talkback_factory=self._talkback,
            generation=lease.generation,
            lease_holder=holder,
            lease_id=conn,
            transcript=transcript,
        )
        if self.hearing is not None and transcript is not None:
            self.hearing.attach(session)
        self.leasing.attach(
            conn, session, lambda: session.last_heard, lambda: session.reading_paused
        )
        self.sessions[id(session)] = session
        idle, reply = self.tuning.keepalive_idle_s, self.tuning.keepalive_reply_s
        self._keepalives[id(session)] = (connection, Keepalive(idle, reply, time.monotonic()))
        self._no_sessions.clear()
        self.counters.sessions += 1
        self._spawn(self._until_ended(session))
        return session

    async def _until_ended(self, session: Session) -> None:
        try:
            await session.wait_ended()
        finally:
            del self.sessions[id(session)]
            self._keepalives.pop(id(session), None)
            if self.hearing is not None:
                self.hearing.ended(session)
            if not self.sessions:
                self._no_sessions.set()
            stats = session.assembler.stats
            self.counters.frames += stats.frames
            self.counters.gaps += stats.gaps
            self.counters.lost_frames += stats.lost_frames
            self.counters.errors.update(session.counters.errors)
            self.counters.byte_orders.update(session.counters.byte_orders)

    def _agent(self, grant: TokenClaims) -> Agent:
        name = grant.agent or self.settings.agent
        try:
            if name == "assistant" and self.services.assistant is not None:
                if self.hearing is None:
                    log.warning("the assistant hears nothing without live transcription")
                return self.services.assistant(grant)
            return make_agent(name, self.settings.prompt_wav)
        except ConfigError as error:
            log.warning("%s; using none", error.message)
            return Agent()

    def _talkback(self, send: Callable[..., Any], **kwargs: Any) -> Talkback:
        return Talkback(
            send,
            lead_ms=self.tuning.play_lead_ms,
            checkpoint_timeout_s=self.tuning.checkpoint_timeout_s,
            clear_backstop_s=self.tuning.clear_backstop_s,
            **kwargs,
        )

    def _talkback_of(self, stream_id: str) -> Talkback | None:
        for session in self.sessions.values():
            ids = (session.stream_id, session.assembler.vobiz_stream_id)
            if stream_id in ids and session.live:
                return session.talkback
        return None

    # -- timers ---------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ticker(self) -> None:
        interval = self.tuning.flush_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for session in list(self.sessions.values()):
                session.tick(now)

    async def _lease_loop(self) -> None:
        """Renew the token leases of open sockets (a task that dies frees them by expiry)."""
        while True:
            await asyncio.sleep(RENEW_TICK_S)
            self.leasing.tick()

    async def _keepalive_loop(self) -> None:
        """Ping silent peers and close dead ones; a paused socket is never judged."""
        while True:
            await asyncio.sleep(KEEPALIVE_TICK_S)
            now = time.monotonic()
            for key, (connection, keepalive) in list(self._keepalives.items()):
                session = self.sessions.get(key)
                if session is None or session.ending:
                    continue
                view = connection.kernel_view()
                last_data = view[0] if view is not None else session.last_heard
                verdict = keepalive.check(now, last_data, session.reading_paused)
                if verdict is Verdict.PING:
                    connection.ping()
                elif verdict is Verdict.DEAD:
                    session.log.warning(
                        "keepalive: nothing from the peer %.0f s after a ping: closed",
                        keepalive.reply_s,
                    )
                    session.request_stop("keepalive", 1011, "keepalive ping timeout")

    async def _metrics_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tuning.metrics_interval_s)
            self.emit_metrics()

    def emit_metrics(self) -> None:
        """Print one EMF metrics line now."""
        writers = (self.audio_writer, self.utterance_writer)
        self.counters.kinesis_retries = sum(w.stats.retries for w in writers)
        self.counters.backpressure_s = sum(w.stats.backpressure_s for w in writers)
        if self.hearing is not None:
            heard = self.hearing.stats
            self.counters.recognition_restarts = heard.restarts
            self.counters.recognition_dropped_s = heard.dropped_ms / 1000
            self.counters.recognition_refused = heard.refused
        self._metrics.emit(
            self.counters,
            active_streams=sum(1 for s in self.sessions.values() if s.live),
            buffered_records=sum(w.pending for w in writers),
            put_latencies_ms=[v for w in writers for v in w.stats.take_latencies()],
            unacked_audio_s=self.audio_writer.unacked_ms / 1000,
        )


def _respond(status: HTTPStatus, body: bytes) -> WSUpgradeResponseWithListener:
    return WSUpgradeResponseWithListener(
        WSUpgradeResponse.create_error_response(status, body), None
    )
