"""Live recognition with Amazon Transcribe streaming: one WebSocket session per call.

Runs in the stream server's recognition worker, on its event loop (``stream_server.
recognition_worker``): audio in as it comes, results out as Transcribe sends them. The wire is
:mod:`callstream.adapters.transcribe_wire` over picows's websockets-compatible client (the
``amazon-transcribe`` SDK says it is no longer developed; docs/transcription.md).

A :class:`TranscribeCall` hears one track, or a call's two tracks in one stereo session
(channel identification: ``ch_0`` and ``ch_1``, billed once for both and one stream of the
account's quota). Each track is a :class:`TranscribeTrack`, the per-track recogniser the worker
feeds. The two tracks' audio is interleaved 100 ms at a time; a track that has nothing when the
other has its next chunk and more (``lag_s``), or when nothing more came for ``lag_s``, is
filled with silence there, and each track's :class:`Timeline` maps the session's times back to
its own samples, so neither waits on a quiet partner and every result lands at its place.

What a session must survive, and how:

* **Its 4-hour limit** (``LimitExceededException``): a session is rotated after
  ``rotate_after_s`` of audio, at a quiet moment: no line open, and the last 300 ms sent quiet
  on every track, so no word is cut in two (the results trail the audio sent, so "no line
  open" alone can fall inside a word just begun); at the latest ``rotate_after_s`` + 5 min.
  Its audio ends, its last finals still come, the next session takes the audio from there.
* **15 s without audio ends it**: while no audio comes (the call on hold), a chunk of
  silence goes every ``keepalive_s``.
* **A dropped connection or a retryable error mid-line**: a new session replays each track's
  audio since its own last final (at most ``replay_s``); its lines get new ids, and the stream
  server's transcript abandons the open line the replay hears again (no word lost or doubled).
* **The account's concurrent-stream quota** (25 by default): a call whose first session is
  refused with ``LimitExceededException`` is given up at once (``refused = "quota"``): the
  stream server falls back to per-utterance transcription for its tracks, and counts them.

Times: Transcribe's are seconds of audio since its session's start; a :class:`Timeline` maps
them back to the track's samples (a session starts mid-track, replays, and holds keep-alive
silence that is on no track).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from callstream.adapters.transcribe_wire import (
    Result,
    ResultReader,
    ServiceError,
    StreamOptions,
    audio_event,
)
from callstream.exceptions import ConfigError, RecordError, UpstreamError
from callstream.ports import LiveResult

log = logging.getLogger("callstream.recognition")

#: Transcribe's own limit is 4 h: rotate 10 minutes before it (or at the first quiet moment).
ROTATE_AFTER_S = 3 * 3600 + 50 * 60
ROTATE_GRACE_S = 5 * 60
KEEPALIVE_S = 10.0  # Transcribe ends a session after 15 s without audio
REPLAY_S = 30.0
#: How far one track of a stereo session may run ahead of a silent partner before it is filled.
LAG_S = 0.1
#: A rotation waits for this much quiet audio sent on every track (RMS below QUIET_RMS).
QUIET_S = 0.3
QUIET_RMS = 300  # of 32768: about -40 dBFS, under speech, over a telephone line's idle noise
CHUNK_S = 0.1  # AWS's guide: 50-200 ms chunks; LCA sends 100 ms
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


class TranscribeTrack:
    """One track of a :class:`TranscribeCall`: a :class:`callstream.ports.LiveRecognizer`.

    Its audio waits here to be sent and is kept for a replay; its channel's results come here.
    """

    def __init__(self, call: TranscribeCall, track: str, channel: int, replay_bytes: int) -> None:
        """The call's ``channel``-th track (``ch_0``, ``ch_1``)."""
        self.track, self.channel = track, channel
        self.notify: Callable[[], None] = lambda: None  # set by who hears it
        self._call = call
        self._replay: deque[tuple[int, bytes]] = deque()
        self._replay_max = replay_bytes
        self._replay_bytes = 0
        self._unsent: deque[tuple[int, bytes]] = deque()
        self.unsent_samples = 0  # at most the replay's: a stalled session holds no more
        self.dropped_samples = 0
        self.out: list[LiveResult] = []
        self.closing = False
        self.final_end = 0  # the track sample up to which finals have come

    # -- the LiveRecognizer port ---------------------------------------------------------

    def feed(self, pcm: bytes, start_sample: int) -> None:
        """The track's next audio (PCM16 LE at its rate)."""
        if self._call.finished or self.closing:
            return
        self._unsent.append((start_sample, pcm))
        self.unsent_samples += len(pcm) // 2
        while self.unsent_samples * 2 > self._replay_max:  # a session stalled for that long
            dropped = len(self._unsent.popleft()[1]) // 2
            self.unsent_samples -= dropped
            self.dropped_samples += dropped
        self._replay.append((start_sample, pcm))
        self._replay_bytes += len(pcm)
        while self._replay_bytes > self._replay_max:
            self._replay_bytes -= len(self._replay.popleft()[1])
        self._call.more()

    def results_ready(self) -> list[LiveResult]:
        """Return and forget the results made since the last call, in order."""
        out, self.out = self.out, []
        return out

    def close(self) -> list[LiveResult]:
        """The track ended: its audio ends; the last finals come later (then ``finished``).

        A stereo session ends its audio once both tracks are closed.
        """
        self.closing = True
        self._call.more()
        return self.results_ready()

    @property
    def finished(self) -> bool:
        """True once nothing more comes (the call's session is over, or given up)."""
        return self._call.finished

    @property
    def refused(self) -> str | None:
        """Why the call was given up, when it was."""
        return self._call.refused

    async def aclose(self) -> None:
        """Stop the call now, finals or not (the worker is stopping)."""
        await self._call.aclose()

    # -- what the call does with it ------------------------------------------------------

    def take(self, samples: int) -> list[tuple[int, bytes]]:
        """The next ``samples`` of unsent audio at most, as (start, pcm) pieces."""
        out: list[tuple[int, bytes]] = []
        while samples > 0 and self._unsent:
            start, pcm = self._unsent.popleft()
            if len(pcm) // 2 > samples:  # the rest goes in the next chunk
                self._unsent.appendleft((start + samples, pcm[samples * 2 :]))
                pcm = pcm[: samples * 2]
            out.append((start, pcm))
            samples -= len(pcm) // 2
            self.unsent_samples -= len(pcm) // 2
        return out

    def heard(self, result: LiveResult) -> None:
        """A result of this track's channel."""
        if result.final:
            self.final_end = max(self.final_end, result.end_sample)
            replay = self._replay  # the audio a final covers is not replayed again
            while replay and replay[0][0] + len(replay[0][1]) // 2 <= self.final_end:
                self._replay_bytes -= len(replay.popleft()[1])
        self.out.append(result)

    def requeue(self) -> None:
        """A new session hears again what the failed one had not finished, from the last final.

        Cut at the final's end sample: a tail of its last word heard again could be a word.
        """
        end = self.final_end
        self._unsent = deque(
            (max(start, end), pcm[max(0, end - start) * 2 :])
            for start, pcm in self._replay
            if start + len(pcm) // 2 > end
        )
        self.unsent_samples = sum(len(pcm) // 2 for _, pcm in self._unsent)

    def clear(self) -> None:
        """Forget all audio (the call was given up)."""
        self._unsent.clear()
        self.unsent_samples = 0
        self._replay.clear()
        self._replay_bytes = 0


@dataclass
class _Session:
    number: int
    connection: Connection
    timelines: list[Timeline]  # one per track (channel)
    sent: int = 0  # samples (per channel) sent
    open_lines: int = 0  # lines heard as partial, not yet final
    quiet: int = 0  # samples of quiet audio sent last (counted once a rotation is due)
    heard: bool = False  # a result came: it worked
    ending: bool = False
    lines: set[tuple[int, str]] = field(default_factory=set)  # (channel, ResultId) open


class TranscribeCall:
    """One or two tracks of a call heard by one Transcribe session at a time. See the module.

    Created on the worker's running loop; each track's ``notify`` is called when its results
    are ready.
    """

    def __init__(
        self,
        tracks: Sequence[str],
        rate: int,
        options: StreamOptions,
        connect: Connect,
        *,
        rotate_after_s: float = ROTATE_AFTER_S,
        keepalive_s: float = KEEPALIVE_S,
        replay_s: float = REPLAY_S,
        retry_s: float = 0.2,
        lag_s: float = LAG_S,
    ) -> None:
        """Start the call's first session (``tracks`` in channel order: at most two).

        Raises:
            ConfigError: no track, or more than Transcribe's two channels.
        """
        if not 1 <= len(tracks) <= 2:
            raise ConfigError(f"a Transcribe session hears 1 or 2 tracks, not {len(tracks)}")
        self.name = "+".join(tracks)
        self.rate = rate
        replay_bytes = int(replay_s * rate) * 2
        self.tracks = {
            name: TranscribeTrack(self, name, i, replay_bytes) for i, name in enumerate(tracks)
        }
        self._channels = list(self.tracks.values())
        channels = len(self._channels)
        self._options = dataclasses.replace(options, channels=2 if channels == 2 else 1)
        self._connect = connect
        self._rotate_after = rotate_after_s * rate
        self._keepalive_s, self._retry_s, self._lag_s = keepalive_s, retry_s, lag_s
        self._chunk = round(CHUNK_S * rate)
        self._lag = round(lag_s * rate)
        self._more = asyncio.Event()
        self._sessions = 0
        self.finished = False
        self.refused: str | None = None  # why the call was given up, when it was
        self._rotated: set[asyncio.Task[None]] = set()  # rotated sessions' last finals
        self._endings: set[asyncio.Task[None]] = set()  # failed sessions' closes
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"transcribe-{self.name}"
        )

    def track(self, name: str) -> TranscribeTrack:
        """One of the call's tracks (its recogniser)."""
        return self.tracks[name]

    def more(self) -> None:
        """A track has new audio, or closed."""
        self._more.set()

    async def aclose(self) -> None:
        """Stop now, finals or not (the worker is stopping)."""
        tasks = (self._task, *self._rotated)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            # failed sessions' closes are let finish (at most 10 s): their sockets go with them
            await asyncio.gather(*tasks, *self._endings, return_exceptions=True)

    @property
    def _closing(self) -> bool:
        return all(t.closing for t in self._channels)

    def _notify(self) -> None:
        for track in self._channels:
            track.notify()

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
            log.warning("Transcribe session of %s not opened: %s", self.name, error)
            return None
        except Exception as error:  # the handshake refused: HTTP 403 (credentials), 4xx, 5xx
            status = getattr(getattr(error, "response", None), "status_code", 0)
            if status >= 500 or status == 429:
                log.warning("Transcribe session of %s not opened: %s", self.name, error)
            else:
                log.error("Transcribe refused a session of %s: %s", self.name, error)
                self.refused = "refused"
            return None
        return _Session(self._sessions, connection, [Timeline() for _ in self._channels])

    async def _serve(self, session: _Session) -> str:
        """Send the audio and read the results until the session ends: done, rotated, failed."""
        loop = asyncio.get_running_loop()
        receiver = loop.create_task(self._receive(session))
        sender = loop.create_task(self._send(session))
        await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        if sender.done() and sender.exception() is None:
            if sender.result() == "rotated":  # its last finals still come, on its timelines
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
        if error is None and session.ending and self._closing and not self._unsent():
            return "done"  # the call's audio ended and Transcribe said all it had
        # closed on the side: a closing handshake with a peer that stopped talking takes
        # seconds, and the next session must not wait for it to replay
        closing = asyncio.get_running_loop().create_task(_close(session.connection))
        self._endings.add(closing)
        closing.add_done_callback(self._endings.discard)
        if isinstance(error, _RefusedError):
            self._give_up(error.reason)
            return "done"
        log.warning(
            "Transcribe session %d of %s ended mid-call (%s): replaying from sample %s",
            session.number,
            self.name,
            error or "closed",
            "/".join(str(t.final_end) for t in self._channels),
        )
        return "failed"

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A rotated session's receiver is done."""
        self._rotated.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "a rotated Transcribe session of %s failed: %s", self.name, task.exception()
            )

    def _unsent(self) -> int:
        return max(t.unsent_samples for t in self._channels)

    def _ready(self) -> bool:
        """A chunk can go: every track has one, or one runs ``lag_s`` ahead, or all closed."""
        unsent = [t.unsent_samples for t in self._channels]
        if not max(unsent):
            return False
        if len(unsent) == 1 or self._closing:
            return True
        return min(unsent) >= self._chunk or max(unsent) >= self._chunk + self._lag

    async def _send(self, session: _Session) -> str:
        """Send what comes; end the session's audio when the call closes (or to rotate)."""
        connection = session.connection
        while True:
            while self._ready():
                if self._should_rotate(session):
                    session.ending = True
                    await connection.send(audio_event(b""))
                    return "rotated"
                await connection.send(audio_event(self._mix(session)))
            if self._closing and not self._unsent():
                session.ending = True
                await connection.send(audio_event(b""))
                return "ended"
            self._more.clear()
            waiting = self._unsent() > 0  # a track's chunk waits for its partner's
            try:
                async with asyncio.timeout(self._lag_s if waiting else self._keepalive_s):
                    await self._more.wait()
            except TimeoutError:
                if waiting:  # the partner is quiet: its side of the chunk is silence
                    await connection.send(audio_event(self._mix(session)))
                else:  # nothing for a while: silence, or Transcribe ends the session
                    await connection.send(audio_event(self._silence(session, self._chunk)))

    def _mix(self, session: _Session) -> bytes:
        """The next chunk: one track's audio, or both tracks' interleaved (silence filled)."""
        samples = min(self._chunk, self._unsent())
        sides = []
        for track, timeline in zip(self._channels, session.timelines, strict=True):
            pieces = track.take(samples)
            for start, pcm in pieces:
                timeline.audio(start, len(pcm) // 2)
            got = sum(len(pcm) for _, pcm in pieces) // 2
            if got < samples:
                timeline.silence(samples - got)
            sides.append(b"".join(pcm for _, pcm in pieces) + bytes((samples - got) * 2))
        if session.sent >= self._rotate_after:  # only once a rotation is due: a pass over it
            loud = any(_rms(side) >= QUIET_RMS for side in sides)
            session.quiet = 0 if loud else session.quiet + samples
        session.sent += samples
        if len(sides) == 1:
            return sides[0]
        stereo = np.empty(samples * 2, dtype="<i2")
        stereo[0::2] = np.frombuffer(sides[0], dtype="<i2")
        stereo[1::2] = np.frombuffer(sides[1], dtype="<i2")
        return stereo.tobytes()

    def _silence(self, session: _Session, samples: int) -> bytes:
        for timeline in session.timelines:
            timeline.silence(samples)
        session.sent += samples
        session.quiet += samples
        return bytes(samples * 2 * len(self._channels))

    def _should_rotate(self, session: _Session) -> bool:
        if session.sent < self._rotate_after:
            return False
        if session.open_lines == 0 and session.quiet >= QUIET_S * self.rate:
            return True
        return session.sent >= self._rotate_after + ROTATE_GRACE_S * self.rate

    async def _receive(self, session: _Session) -> None:
        reader = ResultReader()
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
                log.error("Transcribe session of %s: %s", self.name, error.message)
                raise
            heard: set[TranscribeTrack] = set()
            for message in messages:
                if isinstance(message, ServiceError):
                    raise self._error(session, message)
                track = self._heard(session, message)
                if track is not None:
                    heard.add(track)
            session.open_lines = len(session.lines)
            for track in heard:
                track.notify()

    def _error(self, session: _Session, error: ServiceError) -> Exception:
        first = self._sessions == 1 and not session.heard
        if error.kind == "LimitExceededException" and first:
            log.warning("Transcribe quota reached: %s goes per utterance (%s)", self.name, error)
            return _RefusedError("quota")
        if error.kind not in RETRYABLE or (error.kind == "BadRequestException" and first):
            log.error("Transcribe refused %s: %s: %s", self.name, error.kind, error.message)
            return _RefusedError(error.kind)
        return _SessionError(f"{error.kind}: {error.message}")

    def _heard(self, session: _Session, result: Result) -> TranscribeTrack | None:
        """Route a result to its channel's track, on that track's samples."""
        session.heard = True
        channel = _channel(result.ChannelId)
        if channel is None or channel >= len(self._channels):
            return None  # no channel this session has
        track, timeline = self._channels[channel], session.timelines[channel]
        best = result.Alternatives[0] if result.Alternatives else None
        words = [i for i in best.Items if i.Type == "pronunciation"] if best else []
        confidences = [i.Confidence for i in words if i.Confidence is not None]
        live = LiveResult(
            result_id=f"{track.track}-{session.number}-{result.ResultId}",
            final=not result.IsPartial,
            text=best.Transcript if best else "",
            start_sample=timeline.to_track(result.StartTime, self.rate),
            end_sample=timeline.to_track(result.EndTime, self.rate),
            confidence=sum(confidences) / len(confidences) if confidences else None,
        )
        if live.final:
            session.lines.discard((channel, result.ResultId))
        else:
            session.lines.add((channel, result.ResultId))
            if self._options.redact_pii:
                return None  # Transcribe redacts finals only: an unredacted partial is not shown
        track.heard(live)
        return track

    def _requeue(self) -> None:
        for track in self._channels:
            track.requeue()

    def _give_up(self, reason: str) -> None:
        self.refused = reason
        for track in self._channels:
            track.clear()
        if not self.finished:
            self.finished = True
            self._notify()


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) if len(samples) else 0.0


def _channel(channel_id: str | None) -> int | None:
    """``ch_1`` → 1; a mono session's results may carry none (channel 0)."""
    if channel_id is None:
        return 0
    prefix, _, number = channel_id.partition("_")
    return int(number) if prefix == "ch" and number.isdigit() else None


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
