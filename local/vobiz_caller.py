"""The simulator's conversational caller: it speaks, waits for the agent's reply, speaks again.

A :class:`Conversation` replaces a call's inbound WAV: the simulator asks it for each 20 ms
frame (:meth:`Conversation.frame`) and tells it what Vobiz does with the app's audio
(:meth:`heard` on each ``playAudio``, :meth:`cleared` on ``clearAudio``). The caller says its
utterances one by one (cut from the sample call by its script's times, trimmed to the
audible words), each once the agent's
reply to the last has played and gone quiet. Once, on purpose, it talks over a reply (a
barge-in). It measures what a caller would: from the end of its own words to the first audio
of the reply on the wire, and from the onset of its words over a reply to the ``clearAudio``.

Wire code of its own, like the rest of the simulator: nothing here imports the product.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from local import vobiz_wire as wire
from local.vobiz_frames import read_wav

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


#: A 20 ms frame this loud (RMS; about -50 dBFS) is sound; the script's times are padded.
AUDIBLE_RMS = 100.0


def words_only(pcm: bytes, rate: int) -> bytes:
    """``pcm`` from its first audible 20 ms to its last: the words.

    The caller's turn then begins at the onset of its speech and ends at its last word, which
    is what reply latency and barge-in are timed from.
    """
    step = rate // 50
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    frames = samples[: samples.size // step * step].reshape(-1, step)
    audible = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > AUDIBLE_RMS)
    if not audible.size:
        return pcm
    return pcm[int(audible[0]) * step * 2 : (int(audible[-1]) + 1) * step * 2]


@dataclass
class Turn:
    """One of the caller's utterances and what came of it (wall-clock monotonic seconds)."""

    text: str
    began: float | None = None  # its first frame was sent
    ended: float | None = None  # its last frame was sent: the end of the caller's words
    reply_at: float | None = None  # the first playAudio after ``ended``
    over_reply: bool = False  # said over the agent's reply, on purpose
    cleared_at: float | None = None  # the clearAudio that answered it

    @property
    def latency_s(self) -> float | None:
        """The caller's words' end → the reply's first audio on the wire."""
        return None if self.ended is None or self.reply_at is None else self.reply_at - self.ended

    @property
    def barge_in_s(self) -> float | None:
        """The onset of words said over the reply → the clearAudio."""
        if self.began is None or self.cleared_at is None:
            return None
        return self.cleared_at - self.began


@dataclass
class Conversation:
    """A caller that takes turns with the agent; see the module docstring.

    Attributes:
        utterances: (text, PCM16 LE at ``rate``) to say, in order.
        rate: the stream's sample rate.
        interrupt: the index of the utterance said over the agent's reply (None: never).
        barge_after_s: how far into that reply the caller starts talking.
        gap_s: the quiet after a reply before the caller answers.
        patience_s: how long the caller waits for a reply before speaking anyway.
        speed: the simulator's speed (the waits are in the call's time).
    """

    utterances: list[tuple[str, bytes]]
    rate: int
    interrupt: int | None = 2
    barge_after_s: float = 1.0
    gap_s: float = 0.6
    patience_s: float = 8.0
    speed: float = 1.0
    turns: list[Turn] = field(default_factory=list)
    finished: bool = False
    _pcm: bytes = b""
    _offset: int = 0
    _waiting_since: float | None = None
    _playing_until: float = 0.0
    _last_play: float = 0.0
    _mid_sentence: bool = False
    _replied: float | None = None  # when the reply to the last turn (or the greeting) began
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_sample(
        cls, rate: int, script: Path | None = None, wav: Path | None = None, **options: float
    ) -> Conversation:
        """The sample call's caller (its inbound utterances), at the stream's ``rate``."""
        script = script or SAMPLES / "support_call.json"
        wav = wav or SAMPLES / "support_call_8000_inbound.wav"
        pcm, source_rate = read_wav(wav)
        pcm = wire.resample(pcm, source_rate, rate)
        said = []
        for utterance in json.loads(script.read_text())["utterances"]:
            if utterance["track"] != "inbound":
                continue
            start = int(utterance["start_s"] * rate) * 2
            end = int(utterance["end_s"] * rate) * 2
            said.append((str(utterance["text"]), words_only(pcm[start:end], rate)))
        return cls(said, rate, **options)  # type: ignore[arg-type]

    # -- what Vobiz tells the caller -----------------------------------------------------------

    def heard(self, now: float, seconds: float) -> None:
        """A ``playAudio`` of ``seconds`` arrived (it plays after what is queued)."""
        with self._lock:
            if self._replied is None and (not self.turns or self.turns[-1].ended is not None):
                self._replied = now
                if self.turns and self.turns[-1].reply_at is None:
                    self.turns[-1].reply_at = now
            self._playing_until = max(self._playing_until, now) + seconds / self.speed
            self._last_play = now
            self._mid_sentence = True

    def marked(self) -> None:
        """A checkpoint played (``playedStream``): the agent's sentence is over.

        A caller waits for the end of what the agent is saying, not just for quiet: a stalled
        agent leaves a gap mid-sentence, which a person waits through.
        """
        with self._lock:
            self._mid_sentence = False

    def cleared(self, now: float) -> None:
        """Vobiz dropped the queued audio (``clearAudio``)."""
        with self._lock:
            self._playing_until, self._mid_sentence = now, False
            turn = self.turns[-1] if self.turns else None
            if turn is not None and turn.over_reply and turn.cleared_at is None:
                turn.cleared_at = now

    # -- what the caller sends -----------------------------------------------------------------

    def frame(self, now: float) -> bytes:
        """The caller's next 20 ms (speech or silence)."""
        size = self.rate // 50 * 2
        with self._lock:
            if not self._pcm and not self.finished:
                self._maybe_start(now)
            if not self._pcm:
                return b"\0" * size
            piece = self._pcm[self._offset : self._offset + size].ljust(size, b"\0")
            self._offset += size
            if self._offset >= len(self._pcm):
                self.turns[-1].ended = now  # sent as its 20 ms were said: the words' end
                self._pcm, self._offset, self._replied = b"", 0, None
                self._waiting_since = now
            return piece

    def _maybe_start(self, now: float) -> None:
        index = len(self.turns)
        if index >= len(self.utterances):
            # the last turn's reply has played (or never came): the caller has said it all
            if (self._quiet(now) and self._replied is not None) or self._waited(now):
                self.finished = True
            return
        over = index == self.interrupt
        if over:  # only while the agent is audibly talking: a stall's gap is waited out
            since = None if self._replied is None else now - self._replied
            ready = since is not None and since >= self.barge_after_s / self.speed
            ready = ready and now < self._playing_until
        else:
            ready = (self._replied is not None or index == 0) and self._quiet(now)
            ready = ready and (self._replied is not None or self._waited(now, 2.0))
        if not (ready or self._waited(now)):
            return
        text, pcm = self.utterances[index]
        self.turns.append(Turn(text, began=now, over_reply=over and now < self._playing_until))
        self._pcm, self._offset = pcm, 0

    def _quiet(self, now: float) -> bool:
        return not self._mid_sentence and now >= self._playing_until + self.gap_s / self.speed

    def _waited(self, now: float, seconds: float | None = None) -> bool:
        since = self._waiting_since
        if since is None:
            self._waiting_since = since = now
        return now - since >= (seconds or self.patience_s) / self.speed
