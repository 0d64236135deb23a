"""A session with fakes around it: a socket, two writers and the hooks, and the real audio core.

Messages are built by the simulator's own wire code (``local.vobiz_frames``), never by the
product's protocol module.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np

from callstream.audio import records
from callstream.audio.assembler import Assembler
from callstream.control.tokens import TokenClaims
from callstream.vocabulary import AudioLimits
from local.vobiz_frames import CallAudio, messages
from stream_server.agents import Agent
from stream_server.session import Session
from stream_server.talkback import Talkback

RATE = 8000
VOICE = (np.sin(np.arange(RATE) * 2 * np.pi * 440 / RATE) * 8000).astype("<i2").tobytes()


class Socket:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed: list[tuple[int, str]] = []
        self.pauses: list[str] = []
        self.resumed = asyncio.Event()

    def send(self, text: bytes) -> None:
        self.sent.append(text)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed.append((code, reason))

    def pause_reading(self) -> None:
        self.pauses.append("pause")

    def resume_reading(self) -> None:
        self.pauses.append("resume")
        self.resumed.set()


class Writer:
    """Takes ``room`` records at once, then makes ``put`` wait for ``opened``."""

    def __init__(self, room: int = 10_000) -> None:
        self.records: list[bytes] = []
        self.room = room
        self.opened = asyncio.Event()

    def offer(self, key: str, data: bytes, ms: float = 0.0) -> bool:
        if len(self.records) >= self.room:
            return False
        self.records.append(data)
        return True

    async def put(self, key: str, data: bytes, ms: float = 0.0) -> None:
        await self.opened.wait()
        self.records.append(data)


class Hooks:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def started(self, session: Session) -> None:
        self.calls.append("started")

    async def ended(self, session: Session) -> None:
        self.calls.append(f"ended:{session.end_reason}")

    def release(self, session: Session) -> None:
        self.calls.append("release")

    async def refused(self, session: Session, stream_id: str | None, reason: str) -> None:
        self.calls.append(f"refused:{stream_id}")

    async def annotate(self, session: Session, **fields: str) -> None:
        self.calls.append("annotate")


def session(
    audio: Writer | None = None, call: str = "call-0001"
) -> tuple[Session, Socket, Writer, Hooks]:
    socket, audio, hooks = Socket(), audio or Writer(), Hooks()
    claims = TokenClaims(jti="j" * 32, call_uuid=call, exp=int(time.time()) + 60)
    made = Session(
        socket,
        claims,
        audio_sink=audio,
        utterance_sink=Writer(),
        assembler=Assembler(limits=AudioLimits(record_max_ms=100), call_uuid=call),
        agent=Agent(),
        hooks=hooks,
        talkback_factory=lambda send, **kw: Talkback(send, **kw),
    )
    return made, socket, audio, hooks


def frames(seconds: float = 1.0) -> list[bytes]:
    pcm = VOICE[: int(RATE * seconds) * 2]
    return [m.encode() for m in messages(CallAudio({"inbound": pcm}, RATE), "mulaw")]


def audio_of(written: list[bytes]) -> int:
    """Frames of audio in the records written."""
    return sum(r.frames for r in map(records.decode, written) if isinstance(r, records.AudioRecord))


async def _ended(made: Session) -> str:
    made.disconnected()
    async with asyncio.timeout(5):
        return await made.wait_ended()


def test_a_call_is_written_whole_and_its_life_told_in_order() -> None:
    async def run() -> None:
        made, socket, audio, hooks = session()
        for message in frames():
            made.receive(message)
        assert await _ended(made) == "close"
        assert audio_of(audio.records) == 50
        # the socket's release is synchronous with the close; the registry's end waits for
        # the start's write and comes last
        assert sorted(hooks.calls) == ["ended:close", "release", "started"]
        assert hooks.calls[-1] == "ended:close" and socket.closed == [(1000, "")]

    asyncio.run(run())


def test_hostile_messages_mid_call_are_counted_and_the_call_goes_on() -> None:
    hostile = [b'{"event": {}}', b"[1, 2]", b"\xff\xfe", b'{"event": "media", "media": 7}']

    async def run() -> None:
        made, socket, audio, _ = session()
        sent = frames()
        for n, message in enumerate(sent):
            made.receive(message)
            if n == 10:
                for bad in hostile:
                    made.receive(bad)
                made.receive(b"\x00\x01", binary=True)
        assert made.live and socket.closed == []
        assert await _ended(made) == "close"
        assert audio_of(audio.records) == 50  # every frame, before and after
        assert sum(made.counters.errors.values()) == len(hostile) + 1
        assert "internal_error" not in made.counters.errors

    asyncio.run(run())


def test_a_full_writer_pauses_the_socket_and_loses_nothing() -> None:
    async def run() -> None:
        writer = Writer(room=2)
        made, socket, audio, _ = session(writer)
        for message in frames():
            made.receive(message)
        assert socket.pauses == ["pause"] and made.reading_paused
        writer.opened.set()
        async with asyncio.timeout(5):
            await socket.resumed.wait()
        assert not made.reading_paused
        assert socket.pauses == ["pause", "resume"]
        await _ended(made)
        assert audio_of(audio.records) == 50

    asyncio.run(run())


def test_a_start_for_another_call_is_refused_with_1008_and_nothing_written() -> None:
    async def run() -> None:
        made, socket, audio, hooks = session(call="another-call")
        for message in frames(0.2):
            made.receive(message)
        async with asyncio.timeout(5):
            assert await made.wait_ended() == "refused"
        assert socket.closed and socket.closed[0][0] == 1008
        assert audio_of(audio.records) == 0 and "started" not in hooks.calls

    asyncio.run(run())


def test_messages_after_the_stream_ended_are_not_read() -> None:
    async def run() -> None:
        made, _, audio, _ = session()
        sent = frames(0.4)
        for message in sent:
            made.receive(message)
        await _ended(made)
        written = len(audio.records)
        made.receive(sent[-1])
        assert len(audio.records) == written
        assert json.loads(sent[0])["event"] == "start"

    asyncio.run(run())
