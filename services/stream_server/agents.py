"""Talk-back agents: the plug-in interface and the built-in ``none``, ``echo`` and ``prompt``.

An agent reacts to a stream's events through the :class:`Agent` hooks and talks back through the
session's :class:`~stream_server.talkback.Talkback`. The session calls the hooks one at a time,
in order, from a task of its own, so an agent may ``await talkback.play(...)`` for seconds
without holding up the audio ingest. ``on_speech`` alone runs at once, beside any hook in
progress: it is the barge-in signal, and a ``clear()`` there cuts a running ``play()`` short.
Register a new agent in :data:`AGENTS`; the token (per stream) or ``CALLSTREAM_AGENT`` (per task)
chooses it by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callstream.audio.records import TranscriptRecord, UtteranceRecord
from callstream.exceptions import ConfigError
from stream_server.talkback import Talkback

#: The standard DTMF frequency pairs (low, high) in Hz.
_DTMF = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip


@dataclass(frozen=True)
class StreamInfo:
    """What an agent knows about its stream at start."""

    stream_id: str
    call_uuid: str | None
    codec: str
    sample_rate: int
    tracks: tuple[str, ...]
    bidirectional: bool


class Agent:
    """Base agent: every hook does nothing. Subclass and override what you need."""

    name = "none"
    #: Set True to get every frame in ``on_audio`` (costly at scale: off by default).
    wants_audio = False
    #: Set True to get the live recogniser's lines in ``on_transcript``.
    wants_transcripts = False

    async def on_start(self, talk: Talkback, info: StreamInfo) -> None:
        """The stream started (after ``start``)."""

    async def on_audio(self, talk: Talkback, track: str, pcm: bytes, start_sample: int) -> None:
        """One frame of a track as PCM16 LE (only when ``wants_audio`` is True)."""

    async def on_speech(self, talk: Talkback, track: str) -> None:
        """Voice activity began on ``track`` (the moment for barge-in; runs at once)."""

    async def on_utterance(self, talk: Talkback, utterance: UtteranceRecord) -> None:
        """An utterance ended on one track (PCM16 at the stream's rate)."""

    async def on_transcript(self, talk: Talkback, line: TranscriptRecord) -> None:
        """A live recogniser's line: partial, provisional or final (with live recognition)."""

    async def on_dtmf(self, talk: Talkback, digit: str) -> None:
        """The caller pressed a key."""

    async def on_checkpoint(self, talk: Talkback, name: str) -> None:
        """Vobiz confirmed a checkpoint (``playedStream``)."""

    async def on_cleared(self, talk: Talkback) -> None:
        """Vobiz confirmed a clear (``clearedAudio``)."""

    async def on_stop(self, talk: Talkback, reason: str) -> None:
        """The stream ended; ``reason`` is ``stop``, ``close``, ``drain`` or ``error``."""


class EchoAgent(Agent):
    """Plays each of the caller's (inbound) utterances back to them."""

    name = "echo"

    async def on_utterance(self, talk: Talkback, utterance: UtteranceRecord) -> None:
        """Echo inbound speech."""
        if talk.bidirectional and utterance.track == "inbound":
            await talk.play(utterance.payload, utterance.sample_rate)
            await talk.checkpoint(f"echo-{utterance.index}")


class PromptAgent(Agent):
    """Plays a greeting at start, stops it when the caller speaks, plays a tone per DTMF key."""

    name = "prompt"

    def __init__(self, greeting: tuple[bytes, int] | None = None) -> None:
        """Use ``greeting`` (PCM16 LE, rate) or a built-in chime."""
        self.greeting = greeting or chime()

    async def on_start(self, talk: Talkback, info: StreamInfo) -> None:
        """Greet the caller."""
        if talk.bidirectional:
            await talk.play(*self.greeting)
            await talk.checkpoint("greeting")

    async def on_speech(self, talk: Talkback, track: str) -> None:
        """Barge-in: the caller talks over the prompt, so stop it."""
        if talk.bidirectional and track == "inbound" and talk.queued_ms > 0:
            await talk.clear()

    async def on_dtmf(self, talk: Talkback, digit: str) -> None:
        """Answer a key press with its DTMF tone."""
        if talk.bidirectional:
            await talk.play(*dtmf_tone(digit))
            await talk.checkpoint(f"dtmf-{digit.replace('*', 'star').replace('#', 'hash')}")


AGENTS: dict[str, type[Agent]] = {"none": Agent, "echo": EchoAgent, "prompt": PromptAgent}


def make_agent(name: str, prompt_wav: str | None = None) -> Agent:
    """Build the agent called ``name``.

    Raises:
        ConfigError: no agent has that name (the message lists the known ones).
    """
    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name[:40]!r}; known: {', '.join(sorted(AGENTS))}")
    if name == "prompt" and prompt_wav:
        return PromptAgent(read_wav(prompt_wav))
    return AGENTS[name]()


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """Read a mono PCM16 WAV as (little-endian samples, rate)."""
    import wave

    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ConfigError(f"{path}: the prompt must be mono 16-bit PCM")
        return wav.readframes(wav.getnframes()), wav.getframerate()


def _tone(freqs: tuple[float, ...], seconds: float, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * math.pi * f * t) for f in freqs) / len(freqs)
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)  # 10 ms ramps: no clicks
    return np.asarray(wave * fade * 0.4 * 32767, dtype=np.float64)


def chime(rate: int = 8000) -> tuple[bytes, int]:
    """A 1.2 s two-note chime followed by 0.3 s of silence, as PCM16 LE."""
    notes = [_tone((660.0,), 0.4, rate), _tone((880.0,), 0.8, rate), np.zeros(int(0.3 * rate))]
    return np.concatenate(notes).astype("<i2").tobytes(), rate


def dtmf_tone(digit: str, rate: int = 8000) -> tuple[bytes, int]:
    """The 200 ms DTMF tone of ``digit`` as PCM16 LE."""
    low, high = _DTMF[digit.upper()]
    return _tone((low, high), 0.2, rate).astype("<i2").tobytes(), rate
