"""Live recognition as the server holds it: the worker pool, and whose call each result is.

The server asks :class:`Hearing` for a connection's :class:`LiveTranscript` when it opens a
session, and tells it when the session ended; results from the workers go to their session by
key. A session is held until its last finals are in, which is after its socket closed:
recognition runs behind the call. A drain waits for them within its deadline
(:meth:`Hearing.wait_all_heard`), then gives what is still waiting to the per-utterance path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from callstream.control.tokens import TokenClaims
from callstream.ports import LiveResult
from stream_server.live_transcript import LiveTranscript
from stream_server.recognition import RecognitionPool, RecognitionStats, Spawn
from stream_server.session import Session


class Hearing:
    """See the module."""

    def __init__(self, spawn: Spawn, *, workers: int, language: str) -> None:
        """Nothing runs until :meth:`start`; ``language`` is the deployment's default."""
        self.pool = RecognitionPool(spawn, self._heard, on_closed=self._closed, workers=workers)
        self._language = language
        self._sessions: dict[str, Session] = {}  # a transcript's key → its session
        self._all_heard = asyncio.Event()
        self._all_heard.set()

    def start(self) -> None:
        """Spawn the workers (from the running loop)."""
        self.pool.start()

    async def stop(self) -> None:
        """Give back what is still waiting, then stop the workers."""
        self.give_back()
        await self.pool.stop()

    @property
    def stats(self) -> RecognitionStats:
        """The workers' counts."""
        return self.pool.stats

    def transcript(self, grant: TokenClaims, conn: int) -> LiveTranscript | None:
        """A new connection's transcript, in its token's language; None when nothing hears."""
        if not self.pool.running:
            return None
        key = f"{grant.jti}#{conn}"  # one connection of the token
        language = grant.language or self._language
        return LiveTranscript(self.pool, key, language, time.time)

    def attach(self, session: Session) -> None:
        """The session its transcript's results go to."""
        assert session.transcript is not None
        self._sessions[session.transcript.key] = session
        self._all_heard.clear()

    def ended(self, session: Session) -> None:
        """The session ended: forgotten once its transcript is finished too."""
        transcript = session.transcript
        if transcript is not None and transcript.finished and session.ending:
            self._sessions.pop(transcript.key, None)
            if not self._sessions:
                self._all_heard.set()

    @property
    def hearing(self) -> bool:
        """True while some session's last finals are still to come."""
        return bool(self._sessions)

    async def wait_all_heard(self, until: float) -> None:
        """Wait for every ended session's last finals, until ``until`` (monotonic)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, until - time.monotonic())):
                await self._all_heard.wait()

    def give_back(self) -> None:
        """Recognition stops with finals still to come: their utterances go per utterance."""
        for session in list(self._sessions.values()):
            session.recognition_over()
        self._sessions.clear()
        self._all_heard.set()

    def _heard(self, key: str, track: str, results: list[LiveResult]) -> None:
        session = self._sessions.get(key)
        if session is not None:
            session.heard(track, results)

    def _closed(self, key: str, track: str) -> None:
        """A track's recognition finished (its last finals come after the session's end)."""
        session = self._sessions.get(key)
        if session is not None and session.transcript is not None:
            session.recognition_closed(track)
            self.ended(session)
