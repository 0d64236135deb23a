"""Live recognition offline: our VAD opens and closes each line, PocketSphinx hears it as it comes.

The embedded stand-in for Amazon Transcribe streaming behind
:class:`~callstream.ports.LiveRecognizer` (nothing downloaded: the en-us model ships in the
``pocketsphinx`` wheel). Per track:

* the product's own :class:`~callstream.audio.vad.Segmenter` decides where a line begins and ends,
  so a line here is the utterance the assembler cuts from the same audio;
* while a line is spoken, its audio (resampled to the model's 16 kHz by a soxr stream, so chunk
  edges leave no click) goes to a decoder with ``process_raw``, and at most every
  ``partial_every_ms`` of audio ``hyp()`` gives the words so far: a partial, when they changed;
* at the line's end, the final is the utterance's own audio decoded whole, by the same
  :class:`~callstream.ports.Transcriber` the per-utterance path uses: a streaming decode
  normalises its features as it goes (live CMN) and got the opening words of the shared call
  wrong that the whole-utterance decode gets right, so the final is never worse than today's.

The whole-utterance decode takes 1-2 s for a 5 s line here, and PocketSphinx holds the GIL while
it decodes (a Python thread beside it ran at 0.6 % of its speed, measured): in the worker's own
process it would stall every other line's partials that long. Given a :class:`Background`,
the finals are decoded there (a process of their own), in order, and come when they are ready
(``notify``); the partials of the next line do not wait for them.

The live decoders skip the second passes (``fwdflat``, ``bestpath``): their own end is thrown
away. A decoder loads the model (about 0.3 s and 80 MB here), so they are lent from a
:class:`DecoderPool` to a line while it is spoken, not held per track. PocketSphinx's real-time
factor is about 0.45 on this machine: one core decodes two or three tracks speaking at once,
enough for tests and the demo, not for load benches (see docs/transcription.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import soxr

from callstream.audio.vad import Segmenter, Utterance
from callstream.ports import LiveResult, Transcriber
from callstream.vocabulary import AudioLimits

log = logging.getLogger("callstream.recognition")

MODEL_RATE = 16000
#: Longest stretch of a line's audio between two partial hypotheses (Transcribe's chunk size).
PARTIAL_EVERY_MS = 100


def _decoder() -> Any:
    from pocketsphinx import Decoder

    # partials come from the first pass; the final is decoded whole elsewhere
    return Decoder(samprate=MODEL_RATE, loglevel="FATAL", fwdflat=False, bestpath=False)


class DecoderPool:
    """PocketSphinx decoders lent to the lines being spoken; at most ``keep`` kept idle."""

    def __init__(self, make: Callable[[], Any] = _decoder, keep: int = 4) -> None:
        """Build decoders with ``make`` when none is idle."""
        self._make = make
        self._keep = keep
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self.made = 0

    def take(self) -> Any:
        """An idle decoder, or a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.made += 1
        return self._make()

    def give(self, decoder: Any) -> None:
        """Return a decoder (between utterances); past ``keep`` idle ones it is dropped."""
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(decoder)


class Background(Protocol):
    """Whole-utterance decodes elsewhere, in the order submitted.

    ``stream_server.recognition_finals.FinalsProcess`` is one: a child process of the worker.
    """

    def submit(self, pcm: bytes, rate: int, language: str) -> Future[str]:
        """The utterance's text, when decoded (raises RuntimeError when it cannot take it)."""


@dataclass
class _Final:
    """A line's final on its way: its place, then its text."""

    result_id: str
    utterance: Utterance
    text: str | None = None


class PocketSphinxLive:
    """One track's live recogniser (:class:`~callstream.ports.LiveRecognizer`). See the module."""

    def __init__(
        self,
        track: str,
        sample_rate: int,
        limits: AudioLimits,
        pool: DecoderPool,
        finals: Transcriber,
        *,
        language: str = "en-US",
        partial_every_ms: int = PARTIAL_EVERY_MS,
        background: Background | None = None,
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        """Listen to ``track`` at ``sample_rate`` (8000, 16000 or 24000 Hz).

        ``finals`` decodes each whole utterance (the per-utterance path's transcriber); given
        ``background``, it does so only when that process fails, and ``notify`` says when a
        final decoded there is ready (call it on a running loop).
        """
        self.track = track
        self.sample_rate = sample_rate
        self._segmenter = Segmenter(sample_rate, track, limits)
        self._pool = pool
        self._finals = finals
        self._language = language
        self._partial_every = partial_every_ms * MODEL_RATE // 1000
        self._results: list[LiveResult] = []
        self._cmn: str | None = None  # this track's cepstral mean, carried from line to line
        # the line being spoken
        self._decoder: Any = None
        self._resampler: Any = None
        self._start = 0
        self._since_hyp = 0
        self._text = ""
        self._heard_to = 0  # one past the last sample fed
        self._background = background
        self._notify = notify
        self._coming: deque[_Final] = deque()  # finals being decoded in the background, in order
        self._closed = False
        self.refused: str | None = None  # it never gives a track up

    def feed(self, pcm: bytes, start_sample: int) -> None:
        """The track's next audio (PCM16 LE at its rate) at ``start_sample`` on its timeline."""
        segmenter = self._segmenter
        segmenter.receive(pcm, start_sample)
        end = self._heard_to = start_sample + len(pcm) // 2
        if self._decoder is not None:
            self._hear(pcm, end)
        for utterance in segmenter.utterances_ready():
            self._finish(utterance)
        if self._decoder is None and segmenter.active:
            self._open(end)  # an onset, or the rest of a line cut at the maximum length
        elif self._decoder is not None and not segmenter.active:
            self._drop(end)  # too short for an utterance (a click, a breath): no line

    def results_ready(self) -> list[LiveResult]:
        """Return and forget the results made since the last call, in order."""
        out, self._results = self._results, []
        return out

    def close(self) -> list[LiveResult]:
        """The track ended: the line being spoken gets its final; the decoder goes back.

        A line the segmenter drops as too short (under ``vad_min_ms``) settles as an empty
        final if partials of it were given, so a console never keeps a line that is no utterance.
        """
        for utterance in self._segmenter.close():
            self._finish(utterance)
        if self._decoder is not None:  # the segmenter dropped the open line as too short
            self._drop(self._heard_to)
        self._closed = True
        return self.results_ready()

    @property
    def finished(self) -> bool:
        """True once closed and every final is in (those decoded in the background too)."""
        return self._closed and not self._coming

    # -- a line ---------------------------------------------------------------------------

    def _open(self, end: int) -> None:
        """The segmenter opened an utterance: decode it from its first sample (the pre-roll)."""
        segmenter = self._segmenter
        self._decoder = self._pool.take()
        if self._cmn is not None:  # the voice and the line's mean, from this track's last line
            self._decoder.set_cmn(self._cmn)
        self._decoder.start_utt()
        if self.sample_rate != MODEL_RATE:
            self._resampler = soxr.ResampleStream(self.sample_rate, MODEL_RATE, 1, dtype="int16")
        self._start = segmenter.open_start or 0
        self._text = ""
        self._since_hyp = 0
        self._hear(segmenter.open_audio(), end)

    def _hear(self, pcm: bytes, end: int) -> None:
        samples = np.frombuffer(pcm, "<i2")
        audio = samples if self._resampler is None else self._resampler.resample_chunk(samples)
        if not len(audio):
            return
        self._decoder.process_raw(audio.tobytes(), False, False)
        self._since_hyp += len(audio)
        if self._since_hyp >= self._partial_every:
            self._since_hyp = 0
            hyp = self._decoder.hyp()
            text = hyp.hypstr.strip() if hyp is not None else ""
            if text and text != self._text:
                self._text = text
                self._results.append(LiveResult(self._id(), False, text, self._start, end))

    def _finish(self, utterance: Utterance) -> None:
        """The utterance ended: its final is its whole audio decoded (see the module)."""
        if self._decoder is not None:
            self._decoder.end_utt()
            self._cmn = self._decoder.get_cmn(True)
            self._release()
        self._start = utterance.start_sample
        final = _Final(self._id(), utterance)
        if self._background is not None:
            try:
                future = self._background.submit(utterance.pcm, self.sample_rate, self._language)
            except RuntimeError as error:
                log.warning("background decoding is gone (%s): decoding here", error)
            else:
                self._coming.append(final)
                loop = asyncio.get_running_loop()
                future.add_done_callback(
                    lambda done: loop.call_soon_threadsafe(self._decoded, final, done)
                )
                return
        final.text = self._finals.transcribe(utterance.pcm, self.sample_rate, self._language).text
        self._results.append(self._final(final))

    def _decoded(self, final: _Final, done: Future[str]) -> None:
        """A background decode finished (on the loop): its final, and those before it, go."""
        try:
            final.text = done.result()
        except Exception as error:  # the process died (BrokenProcessPool), or was shut down
            log.warning("background decoding failed (%r): decoding here", error)
            pcm, rate = final.utterance.pcm, self.sample_rate
            final.text = self._finals.transcribe(pcm, rate, self._language).text
        while self._coming and self._coming[0].text is not None:  # finals in call order
            self._results.append(self._final(self._coming.popleft()))
        self._notify()

    @staticmethod
    def _final(final: _Final) -> LiveResult:
        utterance = final.utterance
        assert final.text is not None
        return LiveResult(
            final.result_id, True, final.text, utterance.start_sample, utterance.end_sample
        )

    def _drop(self, end: int) -> None:
        """The VAD dropped the line: if words were shown, it settles empty (withdrawn)."""
        self._decoder.end_utt()
        if self._text:  # before the release forgets it
            self._results.append(LiveResult(self._id(), True, "", self._start, end))
        self._release()

    def _release(self) -> None:
        self._pool.give(self._decoder)
        self._decoder = None
        self._resampler = None
        self._text = ""

    def _id(self) -> str:
        """A line's id is its first sample: the same audio, however chunked, gives the same id."""
        return f"{self.track}-{self._start}"
