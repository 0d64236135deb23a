"""A reply's voice: each sentence synthesised as soon as it is known, played in order as it comes.

A cloud voice (Polly) streams a sentence's audio over a few hundred milliseconds. Waiting for
all of it before the first frame, and starting the next sentence's synthesis only once the
previous one was sent, would put that time before the reply and between its sentences. Here
the next sentence is synthesised while the one before it plays (:data:`AHEAD` at most in
flight: a runaway reply is not synthesised minutes ahead), and each frame goes to
:meth:`Talkback.say` as the voice makes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from callstream.adapters.threaded import handed_over
from stream_server.ports import Synthesizer

#: Sentences in flight at once: the one playing and the next one, being synthesised.
AHEAD = 2
#: A voice that makes nothing for this long has failed (a stalled stream, not a slow one).
VOICE_STALL_S = 10.0

_Piece = tuple[bytes, int]


class Sentence:
    """One sentence's speech, read from the voice into memory from the moment it is known."""

    def __init__(self, voice: Synthesizer, text: str, clock: Callable[[], float]) -> None:
        """Start synthesising ``text`` now."""
        self.text = text
        self.first_at: float | None = None  # when the voice made its first audio
        self._clock = clock
        self._queue: asyncio.Queue[_Piece | BaseException | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._read(voice))

    async def _read(self, voice: Synthesizer) -> None:
        try:
            async for piece in voice.speak(self.text):
                if self.first_at is None:
                    self.first_at = self._clock()
                self._queue.put_nowait(piece)
        except Exception as error:  # handed to the player, in order after what was made
            self._queue.put_nowait(error)
        else:
            self._queue.put_nowait(None)

    def speech(self) -> AsyncIterator[_Piece]:
        """The pieces as they come.

        Raises:
            ModelError: the voice failed, or made nothing for :data:`VOICE_STALL_S`.
        """
        return handed_over(self._queue, VOICE_STALL_S, "the voice")

    def cancel(self) -> None:
        """Stop synthesising (a barge-in, or the reply is over)."""
        self._task.cancel()


class Speaker:
    """Plays a reply's sentences in order while the next is synthesised ahead."""

    def __init__(
        self,
        voice: Synthesizer,
        play: Callable[[Sentence], Awaitable[None]],
        clock: Callable[[], float],
        ahead: int = AHEAD,
    ) -> None:
        """Speak in ``voice``; ``play`` plays one sentence (it returns once it is sent)."""
        self._voice, self._play, self._clock = voice, play, clock
        self._slots = asyncio.Semaphore(ahead)
        self._queue: asyncio.Queue[Sentence | None] = asyncio.Queue()
        self._waiting: list[Sentence] = []
        self._player = asyncio.create_task(self._play_all())

    async def say(self, text: str) -> None:
        """Queue a sentence; its synthesis starts at once, or when one in flight has gone.

        Raises:
            CallstreamError: an earlier sentence failed (its voice, or its playing).
        """
        await self._slots.acquire()
        self._raise_failure()
        sentence = Sentence(self._voice, text, self._clock)
        self._waiting.append(sentence)
        self._queue.put_nowait(sentence)

    async def finish(self) -> None:
        """Wait until every sentence has been sent.

        Raises:
            CallstreamError: a sentence failed.
        """
        self._queue.put_nowait(None)
        await asyncio.wait([self._player])
        self._raise_failure()

    async def close(self) -> None:
        """Stop: the synthesis and the playing in flight end now."""
        for sentence in self._waiting:
            sentence.cancel()
        self._queue.put_nowait(None)  # the player ends even if a voice swallowed its cancel
        self._player.cancel()
        await asyncio.wait([self._player])
        with contextlib.suppress(asyncio.CancelledError):
            self._player.exception()  # retrieved: reported by say or finish, or nobody asked

    async def _play_all(self) -> None:
        while (sentence := await self._queue.get()) is not None:
            try:
                await self._play(sentence)
            finally:
                sentence.cancel()
                self._waiting.remove(sentence)
                self._slots.release()  # a say() waiting for room wakes, and sees a failure

    def _raise_failure(self) -> None:
        if self._player.done() and not self._player.cancelled():
            error = self._player.exception()
            if error is not None:
                raise error
