"""The ``assistant`` agent: a conversation on a bidirectional stream — listen, think, speak.

It hears the caller's track frame by frame (a WebRTC VAD of its own on 20 ms frames, built as
the audio core's segmenter builds one, for the turn-taking's quiet) and the live recogniser's
lines, and leaves the decisions to :class:`~stream_server.turns.Turns`. A reply streams from
the :class:`LanguageModel` and is spoken sentence by sentence as it comes
(:mod:`stream_server.speaking`: each sentence is synthesised as soon as it is known, sent frame
by frame as the voice makes it, and marked with a checkpoint), so speech starts before the
model and the voice finish, and Vobiz's ``playedStream`` says which sentences the caller
heard. A barge-in sends ``clearAudio`` at once and cancels the model and the synthesis in
flight; the history keeps only the sentences that were not cleared.

Tools: ``end_call`` ends the stream after the goodbye has played, ``hand_over`` records a
hand-over event with the conversation so far, ``press_dtmf`` plays DTMF tones. A model or a
voice that fails gives the caller a short apology, and the call goes on.

Each turn is recorded in the call's record (``Talkback.note``: an ``agent`` event on the
audio stream): ``turn`` (what the caller said, the reply as heard, its latency and its split:
``end_of_turn_ms``, ``model_first_ms``, ``voice_first_ms``, ``send_ms``),
``barge_in`` and ``tool``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from callstream.audio.records import TranscriptRecord, UtteranceRecord
from callstream.audio.vad import speech_detector
from callstream.exceptions import CallstreamError
from callstream.ports import LanguageModel, Said, ToolCall
from stream_server.agents import Agent, StreamInfo, dtmf_tone
from stream_server.ports import Synthesizer
from stream_server.speaking import Sentence, Speaker
from stream_server.talkback import CheckpointResult, Talkback
from stream_server.turns import BargeIn, Cancel, Reply, Turns, TurnSettings

log = logging.getLogger(__name__)

#: A sentence ends at . ! ? (or a long clause at , ; :) followed by a space.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[,;:])\s+(?=\S{2,})")
#: A clause is spoken early only past this length (a short "Well," waits for more).
CLAUSE_CHARS = 60
#: Turns of history sent to the model (the oldest are dropped: a bounded prompt).
HISTORY_TURNS = 40
#: A caller's turn as the model gets it: its newest characters (a monologue is not a prompt).
TURN_CHARS = 2000
#: The most of one reply that is read and spoken (a runaway model is cut, not read for minutes).
REPLY_CHARS = 1500
FRAME_MS = 20
#: A frame this loud (RMS, about -40 dBFS) has the energy of speech, not of a line's hiss.
LOUD_RMS = 330.0


@dataclass(frozen=True)
class AssistantSettings:
    """What the assistant says and how it listens."""

    system_prompt: str = (
        "You are a helpful phone assistant. Answer in one or two short spoken sentences."
    )
    greeting: str = "Hello, thank you for calling. How can I help you today?"
    apology: str = "Sorry, I am having trouble right now. Could you say that again?"
    turns: TurnSettings = field(default_factory=TurnSettings)
    vad_mode: int = 2


@dataclass
class _Spoken:
    text: str
    heard: asyncio.Future[CheckpointResult] | None

    @property
    def cleared(self) -> bool:
        return self.heard is None or (self.heard.done() and self.heard.result() == "cleared")


@dataclass
class _Reply:
    said: str
    speech_end_ms: float
    task: asyncio.Task[None] | None = None
    spoken: list[_Spoken] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    noted: bool = False

    @property
    def heard(self) -> str:
        """The reply's sentences the caller heard (or is hearing): none a clear cut."""
        return " ".join(s.text for s in self.spoken if not s.cleared)


class AssistantAgent(Agent):
    """A voice agent: greets, listens, replies as the model streams, stops when interrupted."""

    name = "assistant"
    wants_audio = True
    wants_transcripts = True

    def __init__(
        self,
        model: LanguageModel,
        voice: Synthesizer,
        settings: AssistantSettings | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Talk with ``model``'s words in ``voice``."""
        self.model, self.voice = model, voice
        self.settings = settings or AssistantSettings()
        self.turns = Turns(self.settings.turns)
        self.history: list[Said] = []
        self._clock = clock
        self._is_speech: Callable[[bytes], bool] | None = None  # the VAD, at the stream's rate
        self._reply: _Reply | None = None
        self._talk: Talkback | None = None
        self._caller = "inbound"
        self._marks = 0
        self._ended = False
        self._pending_heard: _Reply | None = None  # the last reply, for the history

    # -- hooks ---------------------------------------------------------------------------------

    async def on_start(self, talk: Talkback, info: StreamInfo) -> None:
        """Greet the caller."""
        self._talk = talk
        self._caller = "inbound" if "inbound" in info.tracks or not info.tracks else info.tracks[0]
        if talk.bidirectional and self.settings.greeting:
            reply = _Reply(said="", speech_end_ms=0.0)
            self._reply = reply
            self.turns.replying()
            reply.task = asyncio.create_task(self._speak_fixed(talk, reply, self.settings.greeting))

    async def on_audio(self, talk: Talkback, track: str, pcm: bytes, start_sample: int) -> None:
        """The caller's frames: voiced or not, in media time."""
        if track != self._caller or not talk.bidirectional:
            return
        rate = talk.sample_rate
        if self._is_speech is None:  # the stream's rate is known from here on
            self._is_speech = speech_detector(rate, self.settings.vad_mode)
        is_speech = self._is_speech
        step = rate * FRAME_MS // 1000 * 2
        for offset in range(0, len(pcm) - step + 1, step):
            frame = pcm[offset : offset + step]
            end_ms = (start_sample + (offset + step) // 2) * 1000 / rate
            voiced = is_speech(frame)
            self.turns.frame(end_ms, voiced, FRAME_MS, loud=voiced and _loud(frame))
        await self._act(talk)

    async def on_transcript(self, talk: Talkback, line: TranscriptRecord) -> None:
        """A line of the live recogniser."""
        if line.track != self._caller or not talk.bidirectional:
            return
        self.turns.heard(line.result_id, line.text, tuple(line.settles), line.end_ms)
        await self._act(talk)

    async def on_utterance(self, talk: Talkback, utterance: UtteranceRecord) -> None:
        """The VAD closed one of the caller's utterances."""
        if utterance.track == self._caller and talk.bidirectional:
            self.turns.utterance_ended()
            await self._act(talk)

    async def on_stop(self, talk: Talkback, reason: str) -> None:
        """The stream ended: nothing more is said."""
        self._ended = True
        await self._drop_reply()

    # -- decisions -----------------------------------------------------------------------------

    async def _act(self, talk: Talkback) -> None:
        for action in self.turns.actions_ready():
            match action:
                case Reply(text=text, speech_end_ms=end) if not self._ended:
                    self._keep_heard()
                    self.history.append(Said("caller", text[-TURN_CHARS:]))
                    reply = _Reply(said=text, speech_end_ms=end)
                    reply.timings["turn_end"] = self._clock()
                    reply.timings["turn_end_media_ms"] = self.turns.heard_until_ms
                    self._reply = reply
                    reply.task = asyncio.create_task(self._respond(talk, reply))
                case Cancel():
                    if self.history and self.history[-1].role == "caller":
                        self.history.pop()  # the turn goes on: said again, whole, next time
                    await self._drop_reply()
                case BargeIn(onset_ms=onset):
                    await talk.clear()
                    talk.note("barge_in", {"onset_ms": round(onset)})
                    await self._drop_reply()

    async def _drop_reply(self) -> None:
        reply, self._reply = self._reply, None
        if reply is not None and reply.task is not None and not reply.task.done():
            reply.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reply.task
        if reply is not None:
            self._record_heard(reply)

    # -- speaking ------------------------------------------------------------------------------

    async def _respond(self, talk: Talkback, reply: _Reply) -> None:
        tools: list[ToolCall] = []
        try:
            try:
                await self._speak_reply(talk, reply, tools)
            except CallstreamError as error:
                log.warning("assistant: %s", error.message)
                talk.note("model_failed", {"error": error.code})
                tools = []
                await self._say(talk, reply, self.settings.apology)
            for tool in tools:
                await self._use(talk, reply, tool)
        except CallstreamError as error:  # even the apology failed: the turn ends in silence
            log.warning("assistant: the apology failed too: %s", error.message)
        except Exception:  # a task's error is never left unretrieved: the call goes on
            log.exception("assistant: the reply failed")
        finally:
            self._finish(talk, reply)

    async def _speak_reply(self, talk: Talkback, reply: _Reply, tools: list[ToolCall]) -> None:
        """Speak the model's reply sentence by sentence as it streams; collect its tool calls."""
        speaker = self._speaker(talk, reply)
        try:
            pending, read = "", 0
            stream = self.model.reply(self.settings.system_prompt, self._prompt())
            try:
                async for piece in stream:
                    if isinstance(piece, ToolCall):
                        tools.append(piece)
                        continue
                    reply.timings.setdefault("model_first", self._clock())
                    read += len(piece)
                    if read > REPLY_CHARS:
                        log.warning("assistant: a reply cut at %d characters", REPLY_CHARS)
                        break
                    pending += piece
                    sentences, pending = _sentences(pending)
                    for sentence in sentences:
                        await speaker.say(sentence)
            finally:  # the model's stream ends now (its thread, its socket), not at a collection
                closing = getattr(stream, "aclose", None)
                if closing is not None:
                    await closing()
            if pending.strip():
                await speaker.say(pending.strip())
            await speaker.finish()
        finally:
            await speaker.close()

    async def _speak_fixed(self, talk: Talkback, reply: _Reply, text: str) -> None:
        try:
            await self._say(talk, reply, text)
        except CallstreamError as error:
            log.warning("assistant: the greeting: %s", error.message)
        except Exception:  # never an unretrieved task error: the call goes on
            log.exception("assistant: the greeting failed")
        finally:
            self._finish(talk, reply)

    async def _say(self, talk: Talkback, reply: _Reply, text: str) -> None:
        """Say a fixed line (the greeting, the apology)."""
        speaker = self._speaker(talk, reply)
        try:
            await speaker.say(text)
            await speaker.finish()
        finally:
            await speaker.close()

    def _speaker(self, talk: Talkback, reply: _Reply) -> Speaker:
        return Speaker(self.voice, lambda sentence: self._play(talk, reply, sentence), self._clock)

    async def _play(self, talk: Talkback, reply: _Reply, sentence: Sentence) -> None:
        """Send one sentence as the voice makes it, with a checkpoint after it."""

        def first_frame() -> None:
            if "first_audio" not in reply.timings:
                reply.timings["voice_first"] = sentence.first_at or self._clock()
                reply.timings["first_audio"] = self._clock()
                reply.timings["first_audio_media_ms"] = self.turns.heard_until_ms
                self.turns.spoke()

        self._marks += 1
        heard = await talk.say(sentence.speech(), f"agent-{self._marks}", first_frame)
        reply.spoken.append(_Spoken(sentence.text, heard))

    async def _use(self, talk: Talkback, reply: _Reply, tool: ToolCall) -> None:
        talk.note("tool", {"name": tool.name, **{k: v[:64] for k, v in tool.arguments.items()}})
        if tool.name == "end_call":
            for spoken in reply.spoken:  # the goodbye plays before ``stop`` (Vobiz drops it)
                if spoken.heard is not None:
                    await asyncio.wait([spoken.heard], timeout=10.0)
            self._ended = True
            await talk.end()
        elif tool.name == "hand_over":
            self._keep_heard(reply)
            said = " | ".join(f"{s.role}: {s.text}" for s in self._prompt())
            talk.note("hand_over", {"transcript": said[-4000:]})
        elif tool.name == "press_dtmf":
            for digit in tool.arguments.get("digits", "")[:32]:
                if digit.upper() in "0123456789*#ABCD":
                    await talk.play(*dtmf_tone(digit))

    def _finish(self, talk: Talkback, reply: _Reply) -> None:
        if self._reply is reply:
            self._reply = None
            self.turns.finished()
            self._record_heard(reply)

    # -- what the caller heard -----------------------------------------------------------------

    def _record_heard(self, reply: _Reply) -> None:
        """Note the turn: what was said, what the caller heard of the reply, how fast."""
        if reply.noted:
            return
        reply.noted = True
        heard = reply.heard
        t = reply.timings
        data: dict[str, str | int | float] = {"caller": reply.said[:500], "reply": heard[:500]}
        if "first_audio_media_ms" in t and reply.said:
            data["latency_ms"] = round(t["first_audio_media_ms"] - reply.speech_end_ms)
        if "turn_end_media_ms" in t:  # quiet, and the recogniser catching up
            data["end_of_turn_ms"] = round(t["turn_end_media_ms"] - reply.speech_end_ms)
        for name, start, end in (
            ("model_first_ms", "turn_end", "model_first"),
            ("voice_first_ms", "model_first", "voice_first"),
            ("send_ms", "voice_first", "first_audio"),
        ):
            if start in t and end in t:
                data[name] = round((t[end] - t[start]) * 1000, 1)
        if self._talk is not None:
            self._talk.note("turn", data)
        self._pending_heard = reply

    def _keep_heard(self, reply: _Reply | None = None) -> None:
        """Put the last reply's heard sentences in the history (a clear may have cut them)."""
        reply = reply or self._pending_heard
        if reply is None:
            return
        self._pending_heard = None
        heard = reply.heard
        if heard and not (self.history and self.history[-1] == Said("agent", heard)):
            self.history.append(Said("agent", heard))

    def _prompt(self) -> list[Said]:
        return self.history[-HISTORY_TURNS:]


def _sentences(text: str) -> tuple[list[str], str]:
    """Whole sentences (and long clauses) of ``text``, and what is left to wait for."""
    out: list[str] = []
    start = 0
    for end in _SENTENCE_END.finditer(text):
        piece = text[start : end.start()].strip()
        if text[end.start() - 1] in ",;:" and len(piece) < CLAUSE_CHARS:
            continue
        if piece:
            out.append(piece)
        start = end.end()
    return out, text[start:]


def _loud(frame: bytes) -> bool:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    return bool(samples.size) and float(np.sqrt(np.mean(samples**2))) > LOUD_RMS
