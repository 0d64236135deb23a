"""Live recognition with Amazon Transcribe streaming: one WebSocket session per track.

Runs in the stream server's recognition worker, on its event loop (``stream_server.
recognition_worker``): audio in as it comes, results out as Transcribe sends them. The wire is
:mod:`callstream.adapters.transcribe_wire` over picows's websockets-compatible client (the
``amazon-transcribe`` SDK says it is no longer developed; docs/transcription.md).

What a session must survive, and how:

* **Its 4-hour limit** (``LimitExceededException``): a session is rotated after
  ``rotate_after_s`` of audio, at a moment no line of it is open (at the latest
  ``rotate_after_s`` + 5 min): its audio ends, its last finals still come, the next session
  takes the audio from there.
* **15 s without audio ends it**: while no audio comes (a quiet outbound track), a chunk of
  silence goes every ``keepalive_s``.
* **A dropped connection or a retryable error mid-line**: a new session replays the audio
  since the last final (at most ``replay_s``); its lines get new ids, and the stream server's
  transcript abandons the open line the replay hears again (no word lost or doubled).
* **The account's concurrent-stream quota** (25 by default): a track whose first session is
  refused with ``LimitExceededException`` is given up at once (``refused = "quota"``): the
  stream server falls back to per-utterance transcription for it, and counts it.

Times: Transcribe's are seconds of audio since its session's start; a :class:`Timeline` maps
them back to the track's samples (a session starts mid-track, replays, and holds keep-alive
silence that is on no track).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from callstream.adapters.transcribe_wire import (
    Result,
    ResultReader,
    ServiceError,
    StreamOptions,
    audio_event,
)
from callstream.exceptions import RecordError, UpstreamError
from callstream.ports import LiveResult

log = logging.getLogger("callstream.recognition")

#: Transcribe's own limit is 4 h: rotate 10 minutes before it (or at the first quiet moment).
ROTATE_AFTER_S = 3 * 3600 + 50 * 60
ROTATE_GRACE_S = 5 * 60
KEEPALIVE_S = 10.0  # Transcribe ends a session after 15 s without audio
REPLAY_S = 30.0
#: Errors after which a new session may do better (AWS's guide: "try your request again").
RETRYABLE = frozenset(
    {
        "InternalFailureException",
        "ServiceUnavailableException",
        "LimitExceededException",  # mid-call: a session over its 4 h, or a quota that frees up
        "BadRequestException",  # mid-call: "no new audio for 15 s" after a stall of ours
    }
)
MAX_ATTEMPTS = 5  # consecutive sessions that failed before any result: the track is given up


class Connection(Protocol):
    """A WebSocket connection as the client needs it (picows.websockets, websockets)."""

    async def send(self, message: bytes) -> None:
        """Send one binary frame."""

    async def recv(self) -> Any:
        """The next frame's data (raises ConnectionClosed once closed)."""

    async def close(self) -> None:
        """Close it."""


#: Opens a connection to a presigned URL (made per attempt: it lives 300 s at most).
Connect = Callable[[StreamOptions], Awaitable[Connection]]


class Timeline:
    """Where a session's audio sits on its track: anchors of (session sample, track sample)."""

    def __init__(self) -> None:
        """An empty session."""
        self._session: list[int] = []
        self._track: list[int] = []
        self.sent = 0  # samples sent in the session
        self._next: int | None = None  # the track sample that would follow without a gap

    def audio(self, track_start: int, samples: int) -> None:
        """``samples`` of the track from ``track_start`` were sent."""
        if track_start != self._next:
            self._anchor(track_start)
        self.sent += samples
        self._next = track_start + samples

    def silence(self, samples: int) -> None:
        """Keep-alive silence was sent: it is on no track (it maps to where it was put)."""
        self.sent += samples
        if self._next is not None:
            self._anchor(self._next)

    def to_track(self, seconds: float, rate: int) -> int:
        """A session time (seconds) as a track sample."""
        sample = round(seconds * rate)
        i = bisect.bisect_right(self._session, sample) - 1
        if i < 0:
            return self._track[0] if self._track else 0
        track = self._track[i] + (sample - self._session[i])
        if i + 1 < len(self._track):  # inside silence or before a gap: at most the next anchor
            track = (
                min(track, self._track[i + 1]) if self._track[i + 1] >= self._track[i] else track
            )
        return track

    def _anchor(self, track_sample: int) -> None:
        if self._session and self._session[-1] == self.sent:
            self._track[-1] = track_sample
        else:
            self._session.append(self.sent)
            self._track.append(track_sample)


@dataclass
class _Session:
    number: int
    connection: Connection
    timeline: Timeline
    open_lines: int = 0  # lines heard as partial, not yet final
    heard: bool = False  # a result came: it worked
    ending: bool = False


class TranscribeLive:
    """One track's live recogniser (a :class:`callstream.ports.LiveRecognizer`). See the module.

    Created on the worker's running loop; ``notify`` is called when results are ready.
    """

    def __init__(
        self,
        track: str,
        rate: int,
        options: StreamOptions,
        connect: Connect,
        notify: Callable[[], None],
        *,
        rotate_after_s: float = ROTATE_AFTER_S,
        keepalive_s: float = KEEPALIVE_S,
        replay_s: float = REPLAY_S,
        retry_s: float = 0.2,
    ) -> None:
        """Start the track's first session."""
        self.track, self.rate = track, rate
        self._options, self._connect, self._notify = options, connect, notify
        self._rotate_after = rotate_after_s * rate
        self._keepalive_s, self._retry_s = keepalive_s, retry_s
        self._replay: deque[tuple[int, bytes]] = deque()
        self._replay_max = int(replay_s * rate) * 2
        self._replay_bytes = 0
        self._unsent: deque[tuple[int, bytes]] = deque()
        self._unsent_bytes = 0  # at most the replay's: a stalled session holds no more
        self.dropped_samples = 0
        self._more = asyncio.Event()
        self._out: list[LiveResult] = []
        self._closing = False
        self._final_end = 0  # the track sample up to which finals have come
        self._sessions = 0
        self.finished = False
        self.refused: str | None = None  # why the track was given up, when it was
        self._rotated: set[asyncio.Task[None]] = set()  # rotated sessions' last finals
        self._endings: set[asyncio.Task[None]] = set()  # failed sessions' closes
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"transcribe-{track}")

    # -- the LiveRecognizer port ---------------------------------------------------------

    def feed(self, pcm: bytes, start_sample: int) -> None:
        """The track's next audio (PCM16 LE at its rate)."""
        if self.finished or self._closing:
            return
        self._unsent.append((start_sample, pcm))
        self._unsent_bytes += len(pcm)
        while self._unsent_bytes > self._replay_max:  # a session stalled for longer than that
            self._unsent_bytes -= len(dropped := self._unsent.popleft()[1])
            self.dropped_samples += len(dropped) // 2
        self._replay.append((start_sample, pcm))
        self._replay_bytes += len(pcm)
        while self._replay_bytes > self._replay_max:
            self._replay_bytes -= len(self._replay.popleft()[1])
        self._more.set()

    def results_ready(self) -> list[LiveResult]:
        """Return and forget the results made since the last call, in order."""
        out, self._out = self._out, []
        return out

    def close(self) -> list[LiveResult]:
        """The track ended: its audio ends; the last finals come later (then ``finished``)."""
        self._closing = True
        self._more.set()
        return self.results_ready()

    async def aclose(self) -> None:
        """Stop now, finals or not (the worker is stopping)."""
        tasks = (self._task, *self._rotated)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            # failed sessions' closes are let finish (at most 10 s): their sockets go with them
            await asyncio.gather(*tasks, *self._endings, return_exceptions=True)

    # -- sessions ------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        try:
            while True:
                session = await self._open()
                if session is None:
                    failures += 1
                    if self.refused or failures >= MAX_ATTEMPTS:
                        self._give_up(self.refused or "failed")
                        return
                    await asyncio.sleep(self._retry_s * 2 ** (failures - 1))
                    self._requeue()
                    continue
                outcome = await self._serve(session)
                if outcome == "done":
                    return
                if session.heard:
                    failures = 0
                if outcome == "failed":
                    failures += 1
                    if failures >= MAX_ATTEMPTS:
                        self._give_up("failed")
                        return
                    await asyncio.sleep(self._retry_s * 2 ** (failures - 1))
                    self._requeue()
                # "rotated": the next session takes the audio from where this one stopped
        finally:
            if self._rotated:  # the last finals of sessions rotated away come first
                await asyncio.wait(set(self._rotated), timeout=30)
            if not self.finished:
                self.finished = True
                self._notify()

    async def _open(self) -> _Session | None:
        self._sessions += 1
        try:
            connection = await self._connect(self._options)
        except (OSError, TimeoutError) as error:
            log.warning("Transcribe session of %s not opened: %s", self.track, error)
            return None
        except Exception as error:  # the handshake refused: HTTP 403 (credentials), 4xx, 5xx
            status = getattr(getattr(error, "response", None), "status_code", 0)
            if status >= 500 or status == 429:
                log.warning("Transcribe session of %s not opened: %s", self.track, error)
            else:
                log.error("Transcribe refused a session of %s: %s", self.track, error)
                self.refused = "refused"
            return None
        return _Session(self._sessions, connection, Timeline())

    async def _serve(self, session: _Session) -> str:
        """Send the audio and read the results until the session ends: done, rotated, failed."""
        loop = asyncio.get_running_loop()
        receiver = loop.create_task(self._receive(session))
        sender = loop.create_task(self._send(session))
        await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        if sender.done() and sender.exception() is None:
            if sender.result() == "rotated":  # its last finals still come, on its timeline
                self._rotated.add(receiver)
                receiver.add_done_callback(self._ended)
                return "rotated"
            await asyncio.wait({receiver})  # the audio's end went: Transcribe's last finals
        else:  # the receiver ended (an error, a close) or a send failed
            sender.cancel()
            await asyncio.wait({sender})
        if not receiver.done():
            receiver.cancel()
            await asyncio.wait({receiver})
        error = None if receiver.cancelled() else receiver.exception()
        if error is None and not sender.cancelled():
            error = sender.exception()
        if error is None and session.ending and self._closing and not self._unsent:
            return "done"  # the track's audio ended and Transcribe said all it had
        # closed on the side: a closing handshake with a peer that stopped talking takes
        # seconds, and the next session must not wait for it to replay
        closing = asyncio.get_running_loop().create_task(_close(session.connection))
        self._endings.add(closing)
        closing.add_done_callback(self._endings.discard)
        if isinstance(error, _RefusedError):
            self._give_up(error.reason)
            return "done"
        log.warning(
            "Transcribe session %d of %s ended mid-call (%s): replaying from sample %d",
            session.number,
            self.track,
            error or "closed",
            self._final_end,
        )
        return "failed"

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A rotated session's receiver is done."""
        self._rotated.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "a rotated Transcribe session of %s failed: %s", self.track, task.exception()
            )

    async def _send(self, session: _Session) -> str:
        """Send what comes; end the session's audio when the track closes (or to rotate)."""
        connection, timeline = session.connection, session.timeline
        while True:
            while self._unsent:
                if self._should_rotate(session):
                    session.ending = True
                    await connection.send(audio_event(b""))
                    return "rotated"
                start, pcm = self._unsent.popleft()
                self._unsent_bytes -= len(pcm)
                await connection.send(audio_event(pcm))
                timeline.audio(start, len(pcm) // 2)
            if self._closing:
                session.ending = True
                await connection.send(audio_event(b""))
                return "ended"
            self._more.clear()
            try:
                async with asyncio.timeout(self._keepalive_s):
                    await self._more.wait()
            except TimeoutError:  # nothing for a while: silence, or Transcribe ends the session
                silence = bytes(self.rate // 10 * 2)
                await connection.send(audio_event(silence))
                timeline.silence(len(silence) // 2)

    def _should_rotate(self, session: _Session) -> bool:
        sent = session.timeline.sent
        if sent < self._rotate_after:
            return False
        return session.open_lines == 0 or sent >= self._rotate_after + ROTATE_GRACE_S * self.rate

    async def _receive(self, session: _Session) -> None:
        reader = ResultReader()
        lines: set[str] = set()
        while True:
            try:
                data = await session.connection.recv()
            except Exception as error:
                if _closed_cleanly(error) and session.ending:
                    return
                raise
            if isinstance(data, str):
                data = data.encode()
            try:
                messages = reader.feed(data)
            except RecordError as error:
                log.error("Transcribe session of %s: %s", self.track, error.message)
                raise
            for message in messages:
                if isinstance(message, ServiceError):
                    raise self._error(session, message)
                self._heard(session, lines, message)
            session.open_lines = len(lines)
            if messages:
                self._notify()

    def _error(self, session: _Session, error: ServiceError) -> Exception:
        first = self._sessions == 1 and not session.heard
        if error.kind == "LimitExceededException" and first:
            log.warning("Transcribe quota reached: %s goes per utterance (%s)", self.track, error)
            return _RefusedError("quota")
        if error.kind not in RETRYABLE or (error.kind == "BadRequestException" and first):
            log.error("Transcribe refused %s: %s: %s", self.track, error.kind, error.message)
            return _RefusedError(error.kind)
        return _SessionError(f"{error.kind}: {error.message}")

    def _heard(self, session: _Session, lines: set[str], result: Result) -> None:
        session.heard = True
        if result.ChannelId not in (None, "ch_0"):
            return  # a mono session has one channel
        best = result.Alternatives[0] if result.Alternatives else None
        words = [i for i in best.Items if i.Type == "pronunciation"] if best else []
        confidences = [i.Confidence for i in words if i.Confidence is not None]
        timeline = session.timeline
        live = LiveResult(
            result_id=f"{self.track}-{session.number}-{result.ResultId}",
            final=not result.IsPartial,
            text=best.Transcript if best else "",
            start_sample=timeline.to_track(result.StartTime, self.rate),
            end_sample=timeline.to_track(result.EndTime, self.rate),
            confidence=sum(confidences) / len(confidences) if confidences else None,
        )
        if live.final:
            lines.discard(result.ResultId)
            self._final_end = max(self._final_end, live.end_sample)
            self._trim()
        else:
            lines.add(result.ResultId)
            if self._options.redact_pii:
                return  # Transcribe redacts finals only: an unredacted partial is not shown
        self._out.append(live)

    def _trim(self) -> None:
        """Forget the replay audio a final covers."""
        replay = self._replay
        while replay and replay[0][0] + len(replay[0][1]) // 2 <= self._final_end:
            self._replay_bytes -= len(replay.popleft()[1])

    def _requeue(self) -> None:
        """A new session hears again what the failed one had not finished, from the last final.

        Cut at the final's end sample: a tail of its last word heard again could be a word.
        """
        end = self._final_end
        self._unsent = deque(
            (max(start, end), pcm[max(0, end - start) * 2 :])
            for start, pcm in self._replay
            if start + len(pcm) // 2 > end
        )
        self._unsent_bytes = sum(len(pcm) for _, pcm in self._unsent)

    def _give_up(self, reason: str) -> None:
        self.refused = reason
        self._unsent.clear()
        self._unsent_bytes = 0
        self._replay.clear()
        if not self.finished:
            self.finished = True
            self._notify()


class _SessionError(UpstreamError):
    """A session ended by an error a new session may not have."""


class _RefusedError(UpstreamError):
    """Transcribe will not hear the track (its quota, a bad request): it is given up."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Transcribe refused the track: {reason}")
        self.reason = reason


async def _close(connection: Connection) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10):
            await connection.close()


def _closed_cleanly(error: Exception) -> bool:
    return type(error).__name__ in {"ConnectionClosedOK", "ConnectionClosed"}
