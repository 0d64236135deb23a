"""The stream server's side of live recognition: calls' audio to a worker process, results back.

Sessions hand each track's decoded audio to :meth:`Recognition.feed` as it comes (20 ms frames);
it goes to the worker (:mod:`stream_server.recognition_worker`) in chunks of ``chunk_ms`` (100
ms: the chunk Amazon Transcribe streaming asks for, and a partial every 100 ms needs no more).
Sending never blocks the loop: frames wait in an outbox written once per loop iteration to the
non-blocking socket (one syscall for every call's chunks); the outbox holds at most
``max_outbox`` bytes, and past that a chunk is dropped and counted
(the worker is that far behind: the utterance records on Kinesis still carry every word).

When the worker dies it is spawned again, every open track is opened again and replayed from
the audio since its last final (at most ``replay_ms`` a track, kept here): a line's id is its
first sample, so the replay replaces what was heard and never doubles it. A worker that dies
``MAX_RESTARTS`` times in a minute is given up on, and recognition is off until the task
restarts (logged, counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from callstream.exceptions import RecordError
from callstream.ports import LiveResult
from stream_server.recognition_wire import (
    Audio,
    Close,
    Closed,
    FrameReader,
    FromWorker,
    Heard,
    Open,
    frame,
)

log = logging.getLogger("callstream.recognition")

CHUNK_MS = 100
#: Audio kept per track since its last final, to replay into a restarted worker.
REPLAY_MS = 30_000
#: Bytes waiting for a worker that does not read: about 4 minutes of one 16 kHz track.
MAX_OUTBOX = 8 * 1024 * 1024
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0


class Worker(Protocol):
    """A spawned worker process (``multiprocessing.Process``)."""

    def is_alive(self) -> bool:
        """True while it runs."""

    def kill(self) -> None:
        """Stop it now."""

    def join(self, timeout: float | None = None) -> None:
        """Wait for it to exit."""


#: Starts a worker on its end of a socket pair.
Spawn = Callable[[socket.socket], Worker]
#: (call key, track, results in order): what a worker heard.
OnHeard = Callable[[str, str, list[LiveResult]], None]


@dataclass
class RecognitionStats:
    """What the recognition seam counted, for the server's metrics."""

    sent_ms: float = 0.0
    dropped_ms: float = 0.0
    restarts: int = 0
    gave_up: bool = False
    refused: int = 0  # tracks a worker gave up (Transcribe's quota): per utterance instead


@dataclass
class _Track:
    rate: int
    language: str
    together: tuple[str, ...]  # the tracks heard with it (Open.together)
    chunk_bytes: int  # a chunk's PCM16 (chunk_ms of audio)
    replay_bytes_max: int  # the replay window's (replay_ms of audio)
    chunk: bytearray = field(default_factory=bytearray)
    chunk_start: int = 0
    replay: deque[tuple[int, bytes]] = field(default_factory=deque)
    replay_bytes: int = 0
    closing: bool = False


class Recognition:
    """One recognition worker and the tracks it hears. See the module."""

    def __init__(
        self,
        spawn: Spawn,
        on_heard: OnHeard,
        *,
        on_closed: Callable[[str, str], None] = lambda key, track: None,
        chunk_ms: int = CHUNK_MS,
        replay_ms: int = REPLAY_MS,
        max_outbox: int = MAX_OUTBOX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Nothing runs until :meth:`start`."""
        self._spawn = spawn
        self._on_heard = on_heard
        self._on_closed = on_closed
        self._chunk_ms = chunk_ms
        self._replay_ms = replay_ms
        self._max_outbox = max_outbox
        self._clock = clock
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._sock: socket.socket | None = None
        self._worker: Worker | None = None
        self._reader: FrameReader[FromWorker] = FrameReader(FromWorker)
        self._outbox = bytearray()
        self._flushing = False  # a write of the outbox is scheduled or waits for room
        self._waiting = False  # a writer callback waits for room in the socket
        self._restarts: deque[float] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = RecognitionStats()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the worker (from the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._connect()

    async def stop(self) -> None:
        """Close the worker's socket and wait for it to exit (killed after 2 s)."""
        worker, self._worker = self._worker, None
        self._disconnect()
        if worker is not None:
            await asyncio.to_thread(worker.join, 2.0)
            if worker.is_alive():
                worker.kill()
                await asyncio.to_thread(worker.join, 1.0)

    @property
    def running(self) -> bool:
        """True while a worker hears (False once given up on)."""
        return self._sock is not None

    # -- what sessions call ---------------------------------------------------------------

    def open(
        self, key: str, track: str, rate: int, language: str, together: tuple[str, ...] = ()
    ) -> None:
        """Start hearing a track of a call (``key`` names the connection).

        ``together``: the tracks heard with it (:class:`~stream_server.recognition_wire.Open`).
        A worker given up on hears nothing: the track is closed at once (``on_closed``).
        """
        if self._sock is None and self._loop is not None:
            self._on_closed(key, track)
            return
        self._tracks[(key, track)] = _Track(
            rate, language, together, rate * self._chunk_ms // 500, rate * self._replay_ms // 500
        )
        self._send(frame(Open(key, track, rate, language, together)))

    def feed(self, key: str, track: str, start_sample: int, pcm: bytes) -> None:
        """The track's next audio (PCM16 LE at its rate), sent in chunks of ``chunk_ms``."""
        state = self._tracks.get((key, track))
        if state is None or state.closing:
            return
        chunk = state.chunk
        if chunk and start_sample != state.chunk_start + len(chunk) // 2:
            self._flush(key, track, state)  # a gap: a chunk holds consecutive audio only
        if not state.chunk:
            state.chunk_start = start_sample
        state.chunk += pcm
        if len(state.chunk) >= state.chunk_bytes:
            self._flush(key, track, state)

    def close(self, key: str, track: str) -> None:
        """The track ended: what is left goes, then its finals come (and ``on_closed``)."""
        state = self._tracks.get((key, track))
        if state is None:  # never opened, or forgotten (a worker given up on): nothing to come
            self._on_closed(key, track)
            return
        if state.closing:
            return
        self._flush(key, track, state)
        state.closing = True
        self._send(frame(Close(key, track)))
        if self._sock is None:  # no worker: nothing more will come for it
            self._forget(key, track)

    # -- internals ------------------------------------------------------------------------

    def _flush(self, key: str, track: str, state: _Track) -> None:
        if not state.chunk:
            return
        pcm, start = bytes(state.chunk), state.chunk_start
        state.chunk.clear()
        state.replay.append((start, pcm))
        state.replay_bytes += len(pcm)
        while (
            state.replay_bytes > state.replay_bytes_max
        ):  # older than the replay window: lost to a restart
            state.replay_bytes -= len(state.replay.popleft()[1])
        ms = len(pcm) * 500 / state.rate
        if self._send(frame(Audio(key, track, start, pcm))):
            self.stats.sent_ms += ms
        else:
            self.stats.dropped_ms += ms

    def _send(self, data: bytes) -> bool:
        """Queue a frame: the queue goes out once per loop iteration, one write for all calls.

        500 streams' chunks are 5,000 frames a second: a syscall each costs the ingest loop.
        """
        if self._sock is None:
            return False
        if len(self._outbox) + len(data) > self._max_outbox:
            return False
        self._outbox += data
        if not self._flushing:
            self._flushing = True
            assert self._loop is not None
            self._loop.call_soon(self._writable)
        return True

    def _writable(self) -> None:
        sock = self._sock
        if sock is None:
            self._flushing = False
            return
        try:
            sent = sock.send(self._outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._flushing = False
            self._died()
            return
        del self._outbox[:sent]
        assert self._loop is not None
        if self._outbox:  # the kernel is full: go on when the worker has read
            if not self._waiting:
                self._waiting = True
                self._loop.add_writer(sock, self._writable)
            return
        if self._waiting:
            self._waiting = False
            self._loop.remove_writer(sock)
        self._flushing = False

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(256 * 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._died()
            return
        try:
            messages = self._reader.feed(data)
        except RecordError as error:
            log.error("recognition worker sent garbage (%s): restarting it", error.message)
            self._died()
            return
        for message in messages:
            key = (message.key, message.track)
            state = self._tracks.get(key)
            if isinstance(message, Heard):
                results = message.results
                if state is not None:
                    _trim(state, results)
                self._on_heard(message.key, message.track, results)
            elif isinstance(message, Closed) and state is not None:
                if message.reason:  # given up by the worker: per utterance from here
                    self.stats.refused += 1
                    log.warning(
                        "live recognition of %s %s given up (%s): it goes per utterance",
                        message.key,
                        message.track,
                        message.reason,
                    )
                self._forget(message.key, message.track)

    def _forget(self, key: str, track: str) -> None:
        self._tracks.pop((key, track), None)
        self._on_closed(key, track)

    def _connect(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._worker = self._spawn(theirs)
        finally:
            theirs.close()  # the worker has its own copy: its death is our end's EOF
        ours.setblocking(False)
        self._sock = ours
        self._reader = FrameReader(FromWorker)
        self._outbox.clear()
        assert self._loop is not None
        self._loop.add_reader(ours, self._readable)

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        if sock is not None:
            sock.close()
        self._outbox.clear()
        self._flushing = self._waiting = False

    def _died(self) -> None:
        """The worker is gone: spawn another and replay every track, unless it keeps dying."""
        self._disconnect()
        worker, self._worker = self._worker, None
        if worker is not None and worker.is_alive():
            worker.kill()
        now = self._clock()
        self._restarts.append(now)
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW_S:
            self._restarts.popleft()
        if len(self._restarts) > MAX_RESTARTS:
            self.stats.gave_up = True
            log.error(
                "recognition worker died %d times in %.0f s: live recognition is off",
                len(self._restarts),
                RESTART_WINDOW_S,
            )
            for key, track in list(self._tracks):
                self._forget(key, track)
            return
        self.stats.restarts += 1
        log.warning(
            "recognition worker died: restarting it and replaying %d tracks", len(self._tracks)
        )
        with contextlib.suppress(OSError):
            self._connect()
        for (key, track), state in list(self._tracks.items()):
            # heard together again only with the tracks still here (a mono session otherwise)
            together = tuple(t for t in state.together if (key, t) in self._tracks)
            together = together if len(together) > 1 else ()
            self._send(frame(Open(key, track, state.rate, state.language, together)))
            for start, pcm in state.replay:
                self._send(frame(Audio(key, track, start, pcm)))
            if state.closing:
                self._send(frame(Close(key, track)))


def _trim(state: _Track, results: list[LiveResult]) -> None:
    """Forget the replay audio a final covers: a restart need not hear it again."""
    ends = [r.end_sample for r in results if r.final]
    if not ends:
        return
    end = max(ends)
    replay = state.replay
    while replay and replay[0][0] + len(replay[0][1]) // 2 <= end:
        state.replay_bytes -= len(replay.popleft()[1])


class RecognitionPool:
    """Several recognition workers; all the tracks of one connection on the same one.

    A worker is one process, so one core: PocketSphinx holds about one call a worker
    (bench/RESULTS.md), and a task with more cores runs more. Each shard restarts and replays on
    its own; a new connection goes to a shard that still runs (least busy first).
    """

    def __init__(
        self,
        spawn: Spawn,
        on_heard: OnHeard,
        *,
        on_closed: Callable[[str, str], None] = lambda key, track: None,
        workers: int = 1,
        **options: Any,
    ) -> None:
        """``workers`` shards, each a :class:`Recognition` with ``options``."""
        self._on_closed = on_closed
        self._routes: dict[str, tuple[Recognition, set[str]]] = {}  # key → shard, open tracks
        self.shards = [
            Recognition(spawn, on_heard, on_closed=self._closed, **options)
            for _ in range(max(1, workers))
        ]

    def start(self) -> None:
        """Spawn every worker (from the running loop)."""
        for shard in self.shards:
            shard.start()

    async def stop(self) -> None:
        """Stop every worker."""
        for shard in self.shards:
            await shard.stop()

    @property
    def running(self) -> bool:
        """True while any worker hears."""
        return any(s.running for s in self.shards)

    @property
    def stats(self) -> RecognitionStats:
        """The shards' counts, summed (``gave_up``: every one of them)."""
        return RecognitionStats(
            sent_ms=sum(s.stats.sent_ms for s in self.shards),
            dropped_ms=sum(s.stats.dropped_ms for s in self.shards),
            restarts=sum(s.stats.restarts for s in self.shards),
            gave_up=all(s.stats.gave_up for s in self.shards),
            refused=sum(s.stats.refused for s in self.shards),
        )

    def open(
        self, key: str, track: str, rate: int, language: str, together: tuple[str, ...] = ()
    ) -> None:
        """Start hearing a track, on its connection's shard."""
        route = self._routes.get(key)
        if route is None:
            running = [s for s in self.shards if s.running] or self.shards
            load = Counter(id(shard) for shard, _ in self._routes.values())
            route = self._routes[key] = (min(running, key=lambda s: load[id(s)]), set())
        route[1].add(track)
        route[0].open(key, track, rate, language, together)

    def feed(self, key: str, track: str, start_sample: int, pcm: bytes) -> None:
        """The track's next audio."""
        route = self._routes.get(key)
        if route is not None:
            route[0].feed(key, track, start_sample, pcm)

    def close(self, key: str, track: str) -> None:
        """The track ended."""
        route = self._routes.get(key)
        if route is None:
            self._on_closed(key, track)
        else:
            route[0].close(key, track)

    def _closed(self, key: str, track: str) -> None:
        route = self._routes.get(key)
        if route is not None:
            route[1].discard(track)
            if not route[1]:
                del self._routes[key]
        self._on_closed(key, track)
