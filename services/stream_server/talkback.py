"""Talking back into a bidirectional stream: play, checkpoint and clear (docs/protocol.md §2).

:class:`Talkback` is the session controller that agents and the control endpoint call:

* :meth:`Talkback.play` resamples PCM16 to the stream's rate, encodes it in the stream's codec and
  sends it as 20 ms ``playAudio`` frames, paced so that no more than ``play_lead_ms`` of audio is
  queued at Vobiz ahead of real time (so a ``clear`` has little to throw away and barge-in is
  quick).
* :meth:`Talkback.start_play` is the control endpoint's play: it answers at once with an id, and
  the play runs behind the others; :meth:`Talkback.play_state` follows it: ``queued``,
  ``playing`` (until Vobiz has played its end), then ``played`` when Vobiz confirms, by a
  checkpoint after its last frame, that the caller heard it all, ``cleared`` when a clear cut
  it, ``sent`` when Vobiz never confirmed, ``ended`` when the stream ended first. An API
  request never waits on the audio.
* :meth:`Talkback.checkpoint` sends a ``checkpoint`` and resolves when Vobiz answers
  ``playedStream`` with the same name (``played``), when a clear discards it (``cleared``), or
  after a timeout (``timeout``).
* :meth:`Talkback.clear` sends ``clearAudio``, stops any play in progress, and holds new audio
  until ``clearedAudio`` arrives (or a 1 s backstop): audio sent in between may be dropped.
* :meth:`Talkback.end` ends the stream from our side with ``stop``, optionally after a goodbye
  (play, checkpoint, wait for ``playedStream`` with a timeout): Vobiz drops anything still
  queued when ``stop`` arrives, so the goodbye must have played first.

``playAudio`` carries the stream's own format (Vobiz plays anything else as noise); L16 goes
little-endian, as Vobiz plays it (docs/protocol.md §2).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from callstream.audio import codecs, protocol
from callstream.control.commands import CHECKPOINT_TIMEOUT_S
from callstream.exceptions import ConflictError, InvalidAudioError, NotFoundError
from callstream.vocabulary import Codec

#: One ``playAudio`` per 20 ms frame: docs/protocol.md §2 ("send ~20 ms chunks so that clearAudio
#: stays responsive") and Vobiz's own voice agent (``FRAME_MS = 20``, "the cadence a PSTN leg
#: expects", vobiz-ai/Vobiz-Deepgram-Voice-Agent app.py).
CHUNK_MS = 20
#: Most audio queued at Vobiz ahead of real time: what a barge-in may still let through.
LEAD_MS = 400
#: ``clear()`` holds new audio until ``clearedAudio``, or this long.
CLEAR_BACKSTOP_S = 1.0
CheckpointResult = Literal["played", "cleared", "timeout"]
Send = Callable[[bytes], Awaitable[None]]
PlayState = Literal["queued", "playing", "played", "cleared", "sent", "ended"]
#: A stream's most recent plays kept to be followed (a page sends a long WAV as a few).
PLAYS_KEPT = 64
#: How long after its last frame is due to be heard a play waits for Vobiz's ``playedStream``.
PLAYED_GRACE_S = 5.0


@dataclass
class Play:
    """One play started through the control endpoint, as its caller follows it."""

    play_id: str
    ms: int  # its length, in 20 ms frames
    state: PlayState = "queued"
    sent_ms: float = 0.0

    def view(self) -> dict[str, Any]:
        """The answer body about it."""
        return {
            "play_id": self.play_id,
            "state": self.state,
            "ms": self.ms,
            "sent_ms": self.sent_ms,
        }


@dataclass
class TalkbackStats:
    """What a session said back, for logs and the registry."""

    played_ms: float = 0.0
    chunks: int = 0
    checkpoints: int = 0
    clears: int = 0


class Talkback:
    """The talk-back side of one stream. Not thread-safe: use it from the session's loop."""

    def __init__(
        self,
        send: Send,
        *,
        stream_id: str,
        codec: Codec,
        sample_rate: int,
        bidirectional: bool,
        lead_ms: int = LEAD_MS,
        checkpoint_timeout_s: float = CHECKPOINT_TIMEOUT_S,
        clear_backstop_s: float = CLEAR_BACKSTOP_S,
        clock: Callable[[], float] | None = None,
        on_action: Callable[[str, dict[str, str | int | float]], None] | None = None,
    ) -> None:
        """Create the controller of one stream.

        Args:
            send: sends one text frame on the stream's socket.
            stream_id: the Vobiz stream id.
            codec: the stream's codec; playback uses the same.
            sample_rate: the stream's rate; playback uses the same.
            bidirectional: whether Vobiz accepts audio on this stream.
            lead_ms: most audio queued at Vobiz ahead of real time.
            checkpoint_timeout_s: default wait of :meth:`checkpoint`.
            clear_backstop_s: longest hold after ``clearAudio`` without ``clearedAudio``.
            clock: monotonic seconds (the loop's clock by default).
            on_action: told of every play, checkpoint and clear (the session records them
                as ``agent`` events in order with the audio).
        """
        self.stream_id = stream_id
        self.codec = codec
        self.sample_rate = sample_rate
        self.bidirectional = bidirectional
        self.stats = TalkbackStats()
        self._send = send
        self._lead = lead_ms / 1000
        self._checkpoint_timeout = checkpoint_timeout_s
        self._backstop = clear_backstop_s
        self._clock = clock or asyncio.get_running_loop().time
        self._queued_until = 0.0  # clock time at which Vobiz will have played what we sent
        self._generation = 0  # bumped by clear(): plays of an older generation stop
        self._cleared = asyncio.Event()
        self._cleared.set()
        self._checkpoints: dict[str, asyncio.Future[CheckpointResult]] = {}
        self._lock = asyncio.Lock()  # one play at a time, in call order
        self._on_action = on_action or (lambda action, data: None)
        self.stop_sent = False
        self._closed = False
        self._plays: OrderedDict[str, Play] = OrderedDict()
        self._play_numbers = itertools.count(1)
        self._running: set[asyncio.Task[None]] = set()

    @property
    def queued_ms(self) -> float:
        """Audio sent to Vobiz and not yet played, by our clock."""
        return max(0.0, self._queued_until - self._clock()) * 1000

    async def play(self, pcm: bytes, sample_rate: int) -> float:
        """Play PCM16 LE mono audio into the call.

        Returns:
            Milliseconds of audio sent (less than the input if a clear cut it short).

        Raises:
            ConflictError: the stream is not bidirectional.
            InvalidAudioError: the rate is unsupported or the audio is not whole samples.
        """
        audio = self._encode(pcm, sample_rate)
        self._on_action("play", {"ms": self._planned_ms(audio), "source_rate": sample_rate})
        sent, _ = await self._play(audio)
        return sent

    def start_play(self, pcm: bytes, sample_rate: int) -> dict[str, Any]:
        """Queue a play and answer at once: its id, ``queued`` (or ``playing``) and length.

        Raises:
            ConflictError: the stream is not bidirectional, or has ended.
            InvalidAudioError: the rate is unsupported or the audio is not whole samples.
        """
        if self._closed or self.stop_sent:
            raise ConflictError(f"stream {self.stream_id} has ended")
        audio = self._encode(pcm, sample_rate)
        play = Play(f"p{next(self._play_numbers)}", self._planned_ms(audio))
        self._plays[play.play_id] = play
        while len(self._plays) > PLAYS_KEPT:  # the oldest, long finished, are forgotten
            self._plays.popitem(last=False)
        if not self._lock.locked() and not self._running:  # nothing ahead of it
            play.state = "playing"
        task = asyncio.create_task(self._follow(play, audio, sample_rate))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return play.view()

    def play_state(self, play_id: str) -> dict[str, Any]:
        """Where a play of :meth:`start_play` is.

        Raises:
            NotFoundError: no such play (or one of the oldest, forgotten).
        """
        play = self._plays.get(play_id)
        if play is None:
            raise NotFoundError(f"no play {play_id[:40]!r} on stream {self.stream_id}")
        return play.view()

    async def _follow(self, play: Play, audio: bytes, sample_rate: int) -> None:
        def started() -> None:
            play.state = "playing"

        name = f"{play.play_id}-played"
        self._on_action("play", {"ms": play.ms, "source_rate": sample_rate})
        sent, heard = await self._play(audio, started=started, mark=name)
        play.sent_ms = sent
        if heard is None:  # a clear cut it (or the stream ended) before its last frame
            play.state = "ended" if self._closed else "cleared"
            return
        # still "playing": its tail is in Vobiz's queue until Vobiz says it was heard
        try:
            async with asyncio.timeout(self.queued_ms / 1000 + PLAYED_GRACE_S):
                result = await heard
        except TimeoutError:
            play.state = "sent"  # all sent, and Vobiz never said it was heard: all we know
            return
        finally:
            self._checkpoints.pop(name, None)
        if result == "played":
            play.state = "played"
        elif result == "cleared":  # a clear after the last frame: Vobiz dropped its tail
            play.state = "ended" if self._closed else "cleared"
        else:
            play.state = "sent"

    def _encode(self, pcm: bytes, sample_rate: int) -> bytes:
        self._require_bidirectional()
        return codecs.from_pcm16(self.codec, codecs.resample(pcm, sample_rate, self.sample_rate))

    def _planned_ms(self, audio: bytes) -> int:
        step = codecs.frame_bytes(self.codec, self.sample_rate, CHUNK_MS)
        return len(audio) // step * CHUNK_MS + (CHUNK_MS if len(audio) % step else 0)

    async def _play(
        self,
        audio: bytes | AsyncIterator[bytes],
        started: Callable[[], None] | None = None,
        mark: str | None = None,
        first_frame: Callable[[], None] | None = None,
    ) -> tuple[float, asyncio.Future[CheckpointResult] | None]:
        """Send encoded audio as paced frames, after the plays before it.

        ``audio`` is all of it, or its pieces as a voice makes them: each whole frame goes as
        soon as it is there (the tail is padded to 20 ms at the end). With ``mark``, a
        checkpoint follows the last frame (in the lock: before the next play's audio), and
        its future is returned.

        Returns:
            The ms sent, and the mark's future (None: a clear cut the play, or nothing was
            sent, so nothing is marked).
        """
        step = codecs.frame_bytes(self.codec, self.sample_rate, CHUNK_MS)
        generation = self._generation
        heard: asyncio.Future[CheckpointResult] | None = None
        sent = 0.0

        async def send(chunk: bytes) -> bool:
            nonlocal sent
            if not await self._frame(chunk, generation):
                return False
            sent += CHUNK_MS
            if sent == CHUNK_MS and first_frame is not None:
                first_frame()
            return True

        async with self._lock:
            if started is not None:
                started()
            buffer, offset, whole = b"", 0, True
            async with contextlib.aclosing(_pieces(audio)) as pieces:
                async for piece in pieces:
                    buffer = buffer[offset:] + piece if offset < len(buffer) else piece
                    offset = 0
                    while whole and len(buffer) - offset >= step:
                        whole = await send(buffer[offset : offset + step])
                        offset += step
                    if not whole:
                        break
            if whole and len(buffer) > offset:  # keep 20 ms multiples: pad the tail
                tail = buffer[offset:]
                missing = (step - len(tail)) // codecs.bytes_per_sample(self.codec)
                whole = await send(tail + codecs.silence(self.codec, missing))
            if (
                whole
                and mark is not None
                and generation == self._generation
                and not self._closed
                and (sent or isinstance(audio, bytes))
            ):
                heard = asyncio.get_running_loop().create_future()
                self._checkpoints[mark] = heard
                await self._send(protocol.checkpoint(self.stream_id, mark))
        self.stats.played_ms += sent
        return sent, heard

    async def _frame(self, chunk: bytes, generation: int) -> bool:
        """Send one 20 ms frame when Vobiz's queue has room; False if a clear came first."""
        await self._wait_for_clear()
        if generation != self._generation:
            return False
        lead = self._queued_until - self._clock()
        if lead > self._lead:
            await asyncio.sleep(lead - self._lead)
            if generation != self._generation:
                return False
        await self._send(protocol.play_audio(self.stream_id, chunk, self.codec, self.sample_rate))
        self._queued_until = max(self._queued_until, self._clock()) + CHUNK_MS / 1000
        self.stats.chunks += 1
        return True

    async def say(
        self,
        speech: AsyncIterator[tuple[bytes, int]],
        mark: str,
        first_frame: Callable[[], None] | None = None,
    ) -> asyncio.Future[CheckpointResult] | None:
        """Play a voice's speech as it is made, and a checkpoint after it; not waiting for it.

        A voice agent's sentence: each 20 ms frame goes as soon as the voice has made it
        (resampled with the filter's state kept across pieces), the next sentence follows at
        once, and the future tells what the caller heard (``played``; ``cleared`` by a
        barge-in or the end).

        Args:
            speech: (PCM16 LE, rate) pieces, one rate throughout.
            mark: the checkpoint's name.
            first_frame: called when the first frame has gone.

        Returns:
            The checkpoint's future, or None when a clear cut the audio or the voice said
            nothing (nothing marked).

        Raises:
            ConflictError: the stream is not bidirectional.
            InvalidAudioError: the voice's rate is unsupported or changed mid-way.
        """
        self._require_bidirectional()
        rate = 0

        async def encoded() -> AsyncIterator[bytes]:
            nonlocal rate
            resampler: codecs.Resampler | None = None
            try:
                async for pcm, source_rate in speech:
                    if resampler is None:
                        resampler = codecs.Resampler(source_rate, self.sample_rate)
                        rate = source_rate
                    elif source_rate != rate:
                        raise InvalidAudioError(
                            f"a voice changed its rate from {rate} to {source_rate}"
                        )
                    if out := resampler.process(pcm):
                        yield codecs.from_pcm16(self.codec, out)
            finally:
                await _close(speech)
            if resampler is not None and (tail := resampler.process(b"", last=True)):
                yield codecs.from_pcm16(self.codec, tail)

        self.stats.checkpoints += 1
        sent, heard = await self._play(encoded(), mark=mark, first_frame=first_frame)
        if sent:
            self._on_action("play", {"ms": int(sent), "source_rate": rate})
        if heard is not None:
            heard.add_done_callback(lambda _: self._checkpoints.pop(mark, None))
        return heard

    def note(self, action: str, data: dict[str, str | int | float]) -> None:
        """Record an agent's own event (a turn, a barge-in, a tool call) in the call's record."""
        self._on_action(action, data)

    async def checkpoint(self, name: str, timeout_s: float | None = None) -> CheckpointResult:
        """Mark this point of the playback; wait until Vobiz has played up to it.

        Raises:
            ConflictError: the stream is not bidirectional.
            InvalidMessageError: the name is not 1-128 of ``[A-Za-z0-9_.:-]``, or a checkpoint
                of that name is already pending.
        """
        self._require_bidirectional()
        frame = protocol.checkpoint(self.stream_id, name)
        if name in self._checkpoints:
            raise ConflictError(f"checkpoint {name!r} is already pending")
        future: asyncio.Future[CheckpointResult] = asyncio.get_running_loop().create_future()
        self._checkpoints[name] = future
        self.stats.checkpoints += 1
        self._on_action("checkpoint", {"name": name})
        try:
            async with self._lock:  # after the audio already handed to play()
                if not future.done():  # a clear while we waited discarded it: send nothing
                    await self._send(frame)
            async with asyncio.timeout(timeout_s or self._checkpoint_timeout):
                return await future
        except TimeoutError:
            return "timeout"
        finally:
            self._checkpoints.pop(name, None)

    async def clear(self) -> None:
        """Barge-in: drop everything queued at Vobiz and stop the current play.

        Raises:
            ConflictError: the stream is not bidirectional.
        """
        self._require_bidirectional()
        self._generation += 1
        self._cleared.clear()
        self._queued_until = 0.0
        self.stats.clears += 1
        self._on_action("clear", {})
        for future in self._checkpoints.values():
            if not future.done():
                future.set_result("cleared")
        await self._send(protocol.clear_audio(self.stream_id))

    async def end(
        self, goodbye: bytes | None = None, sample_rate: int = 8000, timeout_s: float = 10.0
    ) -> str:
        """End the stream with ``stop``, after playing ``goodbye`` (PCM16 LE) if given.

        Returns:
            How the goodbye went (``played``, ``cleared``, ``timeout``), or ``none``.

        Raises:
            ConflictError: the stream is not bidirectional.
        """
        self._require_bidirectional()
        outcome = "none"
        if goodbye:
            await self.play(goodbye, sample_rate)
            outcome = await self.checkpoint(f"goodbye-{self.stats.checkpoints + 1}", timeout_s)
        self._on_action("stop", {"goodbye": outcome})
        async with self._lock:
            self.stop_sent = True
            await self._send(protocol.stop(self.stream_id))
        return outcome

    # -- from the socket ------------------------------------------------------------------

    def on_played(self, name: str) -> None:
        """Vobiz sent ``playedStream``: resolve the checkpoint of that name."""
        future = self._checkpoints.get(name)
        if future is not None and not future.done():
            future.set_result("played")

    def on_cleared(self) -> None:
        """Vobiz sent ``clearedAudio``: new audio may flow again."""
        self._cleared.set()

    def close(self) -> None:
        """The stream ended: release everything waiting."""
        self._closed = True
        self._generation += 1
        self._cleared.set()
        for future in self._checkpoints.values():
            if not future.done():
                future.set_result("cleared")

    # -- internals ------------------------------------------------------------------------

    def _require_bidirectional(self) -> None:
        if not self.bidirectional:
            raise ConflictError(f"stream {self.stream_id} is not bidirectional")

    async def _wait_for_clear(self) -> None:
        if self._cleared.is_set():
            return
        try:
            async with asyncio.timeout(self._backstop):
                await self._cleared.wait()
        except TimeoutError:
            self._cleared.set()  # the backstop: Vobiz never confirmed, carry on


async def _pieces(audio: bytes | AsyncIterator[bytes]) -> AsyncGenerator[bytes]:
    """All of a play's audio as one piece, or a voice's pieces (closed when the play stops)."""
    if isinstance(audio, bytes):
        yield audio
        return
    try:
        async for piece in audio:
            yield piece
    finally:
        await _close(audio)


async def _close(pieces: AsyncIterator[Any]) -> None:
    """Close an async generator left midway (a clear), so its voice stops now."""
    closing = getattr(pieces, "aclose", None)
    if closing is not None:
        await closing()
