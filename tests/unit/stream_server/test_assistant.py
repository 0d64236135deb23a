"""The assistant agent with fakes for its model and voice, on a real Talkback and the
caller's real speech (frames of the sample call, judged by the agent's own VAD).

A fake Vobiz answers each checkpoint with ``playedStream`` once the audio before it would have
played (in real time), and a clear with ``clearedAudio``, dropping the checkpoints it cut.
"""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import webrtcvad

from callstream.audio.records import TranscriptRecord
from callstream.exceptions import ModelError
from callstream.ports import Said, ToolCall
from stream_server.agents import StreamInfo
from stream_server.assistant import AssistantAgent, AssistantSettings, _sentences
from stream_server.talkback import CHUNK_MS, Talkback

ROOT = Path(__file__).resolve().parents[3]
RATE = 8000
FRAME = RATE * 20 // 1000 * 2


def voiced_frames() -> list[bytes]:
    """20 ms frames of the sample caller that WebRTC's VAD calls speech."""
    with wave.open(str(ROOT / "samples" / "support_call_8000_inbound.wav"), "rb") as wav:
        pcm = wav.readframes(wav.getnframes())
    vad = webrtcvad.Vad(2)
    frames = [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]
    return [f for f in frames if vad.is_speech(f, RATE)]


VOICE = voiced_frames()


class Vobiz:
    """The far end of the socket: plays what it is sent, confirms checkpoints and clears."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.talk: Talkback | None = None
        self.played_until = 0.0  # loop time the queued audio ends
        self._timers: list[asyncio.TimerHandle] = []

    async def send(self, frame: bytes) -> None:
        message = json.loads(frame)
        self.frames.append(message)
        loop = asyncio.get_running_loop()
        event = message["event"]
        assert self.talk is not None
        if event == "playAudio":
            self.played_until = max(self.played_until, loop.time()) + CHUNK_MS / 1000
        elif event == "checkpoint":
            name = message["name"]
            delay = max(0.0, self.played_until - loop.time())
            self._timers.append(loop.call_later(delay, self.talk.on_played, name))
        elif event == "clearAudio":
            for timer in self._timers:
                timer.cancel()
            self.played_until = loop.time()
            loop.call_soon(self.talk.on_cleared)

    def events(self) -> list[str]:
        return [f["event"] for f in self.frames]


class Model:
    """A scripted chat model: each call streams the next reply, word by word."""

    def __init__(self, *replies: list[str | ToolCall] | Exception, first_s: float = 0.0) -> None:
        self.replies = list(replies)
        self.asked: list[list[Said]] = []
        self.cancelled = 0
        self.first_s = first_s

    async def reply(self, system: str, history: Sequence[Said]) -> AsyncIterator[str | ToolCall]:
        self.asked.append(list(history))
        script = self.replies.pop(0)
        await asyncio.sleep(self.first_s)
        if isinstance(script, Exception):
            raise script
        try:
            for piece in script:
                yield piece
                await asyncio.sleep(0.005)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise


class Voice:
    """A synthesiser: 60 ms of tone per word (``word_s``) at 16 kHz, in two chunks."""

    def __init__(self, fail: bool = False, word_s: float = 0.06) -> None:
        self.spoken: list[str] = []
        self.fail, self.word_s = fail, word_s

    async def speak(self, text: str) -> AsyncIterator[tuple[bytes, int]]:
        if self.fail:
            raise ModelError("the voice is down")
        self.spoken.append(text)
        n = int(len(text.split()) * self.word_s * 16000)
        tone = (np.sin(np.arange(n) * 2 * np.pi * 300 / 16000) * 8000).astype("<i2").tobytes()
        yield tone[: len(tone) // 2 // 2 * 2], 16000
        yield tone[len(tone) // 2 // 2 * 2 :], 16000


class Call:
    """Drives an agent as the session does, hook by hook, in real time."""

    def __init__(self, agent: AssistantAgent, greeting: bool = True) -> None:
        self.agent = agent
        self.vobiz = Vobiz()
        self.talk = Talkback(
            self.vobiz.send,
            stream_id="s-1",
            codec="mulaw",
            sample_rate=RATE,
            bidirectional=True,
            on_action=lambda action, data: self.notes.append((action, data)),
        )
        self.vobiz.talk = self.talk
        self.notes: list[tuple[str, dict]] = []
        self.sample = 0
        self.lines = 0

    async def start(self) -> None:
        info = StreamInfo("s-1", "c-1", "mulaw", RATE, ("inbound",), True)
        await self.agent.on_start(self.talk, info)

    async def speak(self, ms: int, text: str | None = None) -> None:
        """The caller talks for ``ms``; the recogniser's partial of it is ``text``."""
        for i in range(ms // 20):
            await self._frame(VOICE[(self.sample // 160 + i) % len(VOICE)])
            if text is not None and i == min(5, ms // 20 - 1):
                self.lines += 1
                await self.heard(text)
        if text is not None and ms // 20 > 6:
            await self.heard(text)  # the recogniser has heard it to its end

    async def turn(self, ms: int, text: str) -> None:
        """The caller says ``text`` for ``ms``, goes quiet, and the reply plays out."""
        await self.speak(ms, text)
        await self.quiet(500)
        await self.reply_done()

    async def heard(self, text: str) -> None:
        line = TranscriptRecord(
            stream_id="s-1",
            track="inbound",
            result_id=f"r-{self.lines}",
            kind="partial",
            text=text,
            start_ms=0.0,
            end_ms=self.sample / 8,
        )
        await self.agent.on_transcript(self.talk, line)

    async def quiet(self, ms: int) -> None:
        for _ in range(ms // 20):
            await self._frame(b"\x00" * FRAME)

    async def _frame(self, pcm: bytes) -> None:
        start, self.sample = self.sample, self.sample + len(pcm) // 2
        await self.agent.on_audio(self.talk, "inbound", pcm, start)
        await asyncio.sleep(0.02)  # real time: the agent's reply runs beside it

    async def reply_done(self) -> None:
        for _ in range(300):
            if self.agent._reply is None:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the reply never finished")

    def turns(self) -> list[dict]:
        return [data for action, data in self.notes if action == "turn"]


def settings(**kwargs: object) -> AssistantSettings:
    return AssistantSettings(**({"greeting": "Hello, how can I help?"} | kwargs))  # type: ignore[arg-type]


async def test_a_conversation_greets_listens_and_replies_sentence_by_sentence():
    model = Model(["Sure. ", "I can book ", "a room for you. ", "Which dates?"])
    voice = Voice()
    call = Call(AssistantAgent(model, voice, settings()))
    await call.start()
    await call.reply_done()
    assert voice.spoken == ["Hello, how can I help?"]
    await call.turn(800, "i want to book a room")
    assert model.asked == [
        [Said("agent", "Hello, how can I help?"), Said("caller", "i want to book a room")]
    ]
    assert voice.spoken[1:] == ["Sure.", "I can book a room for you.", "Which dates?"]
    assert call.vobiz.events().count("checkpoint") == 4, "one after each sentence"
    assert "clearAudio" not in call.vobiz.events()
    turn = call.turns()[-1]
    assert turn["caller"] == "i want to book a room"
    assert turn["reply"] == "Sure. I can book a room for you. Which dates?"
    assert 300 <= turn["latency_ms"] < 1000, turn  # the quiet that ends a turn is 300 ms
    assert {"model_first_ms", "voice_first_ms", "send_ms"} <= set(turn)


async def test_a_barge_in_clears_at_once_cancels_the_model_and_keeps_only_what_was_heard():
    long = ["First we check the booking. "] + [f"Then step {i} of many. " for i in range(20)]
    model = Model(long, ["Okay, stopping."])
    call = Call(AssistantAgent(model, Voice(), settings(greeting="")))
    await call.start()
    await call.speak(600, "check my booking")
    await call.quiet(500)
    for _ in range(200):  # until two sentences have played
        if call.talk.stats.chunks > 40:
            break
        await asyncio.sleep(0.02)
    onset = len(call.vobiz.frames)
    await call.speak(300, "no stop")
    assert "clearAudio" in call.vobiz.events()[onset:]
    clear_at = call.vobiz.events().index("clearAudio")
    frames_after_voice = clear_at - onset  # what went out between the voice and the clear
    assert frames_after_voice <= 15, "the clear went out within ~10 frames of voice"
    assert model.cancelled == 1, "the model's stream was cancelled mid-reply"
    await call.quiet(500)
    await call.reply_done()
    agent_said = [s.text for s in model.asked[1] if s.role == "agent"]
    assert agent_said and agent_said[0].startswith("First we check the booking.")
    assert "step 19" not in agent_said[0], "sentences cleared are not in the history"
    assert model.asked[1][-1] == Said("caller", "no stop")
    # in the caller's media time: 600 ms of speech and 500 of quiet before the new voice
    assert ("barge_in", {"onset_ms": pytest.approx(1100, abs=40)}) in call.notes


async def test_a_backchannel_and_a_cough_do_not_interrupt():
    """A 100 ms cough is up to 300 ms of voice to WebRTC's VAD (its hangover), but only
    100-120 ms of loud voice: under the default 160 ms it interrupts nothing. A "yeah"
    recognised before the minimum waits for a real word, and is forgotten at the quiet after."""
    words = " ".join(["one two three four five six"] * 5)
    model = Model([f"{words}. ", f"{words} eleven twelve."])
    call = Call(AssistantAgent(model, Voice(), settings(greeting="")))
    await call.start()
    await call.speak(600, "count for me")
    await call.quiet(500)
    await asyncio.sleep(0.2)
    await call.speak(100)  # a cough
    await call.quiet(500)
    await call.turn(300, "yeah")
    assert "clearAudio" not in call.vobiz.events()
    assert call.turns()[-1]["reply"].endswith("eleven twelve.")


async def test_a_failing_model_gets_an_apology_and_the_call_goes_on():
    model = Model(ModelError("throttled"), ["Yes, it is open."])
    voice = Voice()
    call = Call(AssistantAgent(model, voice, settings(greeting="")))
    await call.start()
    await call.turn(500, "are you open")
    assert voice.spoken == [AssistantSettings().apology]
    assert ("model_failed", {"error": "model_failed"}) in call.notes
    await call.turn(500, "are you open today")
    assert voice.spoken[-1] == "Yes, it is open."


async def test_end_call_stops_the_stream_after_the_goodbye_has_played():
    model = Model(["Goodbye, have a nice day.", ToolCall("end_call")])
    call = Call(AssistantAgent(model, Voice(), settings(greeting="")))
    await call.start()
    await call.turn(500, "that is all thanks")
    events = call.vobiz.events()
    assert events[-1] == "stop" and "playAudio" in events
    loop = asyncio.get_running_loop()
    assert call.vobiz.played_until <= loop.time() + 0.05, "stop came after the goodbye played"
    assert ("tool", {"name": "end_call"}) in call.notes


async def test_hand_over_records_the_conversation_so_far():
    model = Model(["Let me put you through.", ToolCall("hand_over")])
    call = Call(AssistantAgent(model, Voice(), settings(greeting="")))
    await call.start()
    await call.turn(500, "i want a human")
    (data,) = [d for a, d in call.notes if a == "hand_over"]
    assert data["transcript"].startswith("caller: i want a human")


def test_sentences_are_cut_at_their_ends_and_long_clauses_at_commas():
    assert _sentences("Hello there. How are") == (["Hello there."], "How are")
    assert _sentences("Well, ok") == ([], "Well, ok")
    clause = "a" * 30 + " " + "b" * 31
    assert _sentences(f"{clause}, and more") == ([f"{clause},"], "and more")


async def test_a_runaway_model_is_cut_and_closed_and_a_monologue_reaches_it_bounded():
    """A model that never stops is read for a bounded reply, then its stream is closed (its
    thread or socket ends); a caller's turn of 10,000 characters reaches it as its newest 2,000."""
    from stream_server.assistant import REPLY_CHARS, TURN_CHARS

    endless = ["Yes and then more. "] * 10_000
    model = Model(endless)
    voice = Voice(word_s=0.004)  # quick words: the bounded reply plays in a second or so
    call = Call(AssistantAgent(model, voice, settings(greeting="")))
    await call.start()
    await call.speak(800, "tell me everything " * 500)
    await call.quiet(500)
    for _ in range(3000):  # the bounded reply plays out
        if call.agent._reply is None:
            break
        await asyncio.sleep(0.02)
    assert call.agent._reply is None, "the reply ended"
    assert model.cancelled == 1, "the model's stream was closed"
    assert sum(len(s) + 1 for s in voice.spoken) <= REPLY_CHARS + 40
    assert len(model.asked[0][-1].text) == TURN_CHARS


class SlowVoice:
    """A voice that makes its speech at real time (slower than Polly), 100 ms at a time, and
    marks on the wire's record when it has made all of a sentence."""

    def __init__(self, record: list[dict], pieces: int = 10) -> None:
        self.record, self.pieces = record, pieces
        self.stopped: list[str] = []

    async def speak(self, text: str) -> AsyncIterator[tuple[bytes, int]]:
        piece = (np.sin(np.arange(1600) * 2 * np.pi * 300 / 16000) * 8000).astype("<i2")
        try:
            for _ in range(self.pieces):
                yield piece.tobytes(), 16000
                await asyncio.sleep(0.1)
        except (asyncio.CancelledError, GeneratorExit):
            self.stopped.append(text)
            raise
        self.record.append({"event": f"voice made {text!r}"})


async def test_the_reply_is_heard_while_its_voice_is_still_making_it():
    """A cloud voice streams a sentence over hundreds of ms: the first frame goes out when
    the voice's first piece does, not when the sentence is all made."""
    model = Model(["Sure, one moment."])
    call = Call(AssistantAgent(model, Voice(), settings(greeting="")))
    voice = SlowVoice(call.vobiz.frames)
    call.agent.voice = voice
    await call.start()
    await call.turn(500, "can you help")
    events = call.vobiz.events()
    made = events.index("voice made 'Sure, one moment.'")
    assert "playAudio" in events[:made], "frames went out before the voice had finished"
    assert events[made:].count("playAudio") < events.count("playAudio")
    assert events[-1] == "checkpoint", "the sentence is marked after its last frame"
    assert call.turns()[-1]["reply"] == "Sure, one moment."


async def test_a_barge_in_stops_the_voice_mid_sentence():
    model = Model(["This is a very long sentence that takes a while to say."], ["Okay."])
    call = Call(AssistantAgent(model, Voice(), settings(greeting="")))
    voice = SlowVoice(call.vobiz.frames, pieces=40)
    call.agent.voice = voice
    await call.start()
    await call.speak(600, "tell me everything")
    await call.quiet(500)
    for _ in range(100):  # until it is talking
        if call.talk.stats.chunks > 10:
            break
        await asyncio.sleep(0.02)
    await call.speak(300, "stop")
    assert "clearAudio" in call.vobiz.events()
    assert voice.stopped == ["This is a very long sentence that takes a while to say."]
    await call.quiet(500)
    await call.reply_done()
    assert all(s.role != "agent" for s in model.asked[1]), "a cut sentence was not heard"
