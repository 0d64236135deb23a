"""Voice-activity segmentation of one track into utterances, sans I/O.

:class:`Segmenter` takes PCM16 as it arrives (:meth:`Segmenter.receive`, with its position on
the track's timeline) and yields finished :class:`Utterance` s (:meth:`Segmenter.utterances_ready`;
:meth:`Segmenter.close` flushes at the end of the stream). The detector is WebRTC's VAD
(``webrtcvad-wheels``) on 20 ms frames: it was the most accurate candidate on the shared support
call and costs a few µs per frame (``python -m bench.vad_accuracy``), where a neural VAD costs
about a millisecond, too much for hundreds of streams per core.

The state machine, in 20 ms frames:

* **onset**: ``vad_start_ms`` of voiced frames within the last ``_ONSET_WINDOW`` frames opens an
  utterance at the first of them, with up to ``vad_preroll_ms`` of audio before it;
* **end**: ``vad_end_ms`` of unvoiced frames closes it at the end of its last voiced frame plus
  ``_TAIL_MS`` (word endings the detector calls unvoiced), not at the end of the hangover;
* utterances whose voiced span is under ``vad_min_ms`` are dropped (clicks, breaths);
* one reaching ``utterance_max_ms`` (or what one Kinesis record holds at its rate) is cut there
  (``split=True``) and the next continues it.

Memory per track is bounded: the pre-roll ring plus one utterance of at most the maximum length.
A jump in the timeline (lost frames) is silence: inside an utterance it is filled with zeros so
the utterance's audio matches its span.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import webrtcvad

from callstream.exceptions import InvalidAudioError
from callstream.vocabulary import AudioLimits, Track

_FRAME_MS = 20
_ONSET_WINDOW = 5  # frames (100 ms) in which vad_start_ms of voice opens an utterance
_TAIL_MS = 100
_RATES = frozenset({8000, 16000, 24000})


@dataclass(frozen=True, slots=True)
class Utterance:
    """A span of speech on one track.

    Attributes:
        track: ``inbound`` or ``outbound``.
        sample_rate: 8000, 16000 or 24000.
        index: 0, 1, 2, … per track.
        start_sample: first sample on the track's timeline.
        end_sample: one past the last sample.
        pcm: PCM16 LE, exactly ``end_sample - start_sample`` samples.
        split: cut at the maximum length; the next utterance continues it.
    """

    track: str
    sample_rate: int
    index: int
    start_sample: int
    end_sample: int
    pcm: bytes
    split: bool = False
    onset_sample: int = 0  # the first voiced frame (``start_sample`` includes the pre-roll)

    @property
    def start_ms(self) -> float:
        """Start, in ms of the track's timeline."""
        return self.start_sample * 1000 / self.sample_rate

    @property
    def end_ms(self) -> float:
        """End, in ms of the track's timeline."""
        return self.end_sample * 1000 / self.sample_rate

    @property
    def duration_ms(self) -> float:
        """Length in ms."""
        return self.end_ms - self.start_ms


def speech_detector(sample_rate: int, mode: int) -> Callable[[bytes], bool]:
    """``is_speech(frame)`` for 20 ms PCM16 LE frames at ``sample_rate`` (8, 16 or 24 kHz).

    WebRTC's VAD takes 8, 16, 32 or 48 kHz: a 24 kHz frame is judged on a 3:1 decimation of
    it (the mean of each three samples, a low-pass enough for a speech/no-speech decision).
    One detector keeps its state between frames: one per track.
    """
    vad = webrtcvad.Vad(mode)
    if sample_rate == 24000:

        def decimated(frame: bytes) -> bool:
            samples = np.frombuffer(frame, dtype="<i2").astype(np.int32)
            low = (samples.reshape(-1, 3).sum(axis=1) // 3).astype("<i2")
            return bool(vad.is_speech(low.tobytes(), 8000))

        return decimated
    return lambda frame: bool(vad.is_speech(frame, sample_rate))


class Segmenter:
    """Segments one track. Not thread-safe; one per track."""

    def __init__(
        self,
        sample_rate: int,
        track: str,
        limits: AudioLimits,
        detector: Callable[[bytes], bool] | None = None,
    ) -> None:
        """Create a segmenter for a track at ``sample_rate`` (8000, 16000 or 24000).

        A 24 kHz frame is judged on a decimation of it (:func:`speech_detector`); the utterance
        keeps the full 24 kHz audio.

        ``detector`` replaces WebRTC's VAD with another ``is_speech(frame)`` (benchmarks).

        Raises:
            InvalidAudioError: an unsupported sample rate.
        """
        if sample_rate not in _RATES:
            raise InvalidAudioError(
                f"voice activity needs 8000, 16000 or 24000 Hz, got {sample_rate}"
            )
        cfg = limits
        self.sample_rate = sample_rate
        self.track = track
        self._is_speech = detector or speech_detector(sample_rate, cfg.vad_mode)
        self._frame = sample_rate * _FRAME_MS // 1000  # samples per frame
        self._frame_bytes = 2 * self._frame
        self._start_frames = max(1, cfg.vad_start_ms // _FRAME_MS)
        self._end_frames = max(1, cfg.vad_end_ms // _FRAME_MS)
        self._min_samples = cfg.vad_min_ms * sample_rate // 1000
        self._max_samples = cfg.utterance_samples(sample_rate)  # fits one Kinesis record
        self._tail = _TAIL_MS * sample_rate // 1000
        preroll_frames = cfg.vad_preroll_ms // _FRAME_MS
        self._ring: deque[tuple[int, bytes, bool]] = deque(maxlen=preroll_frames + _ONSET_WINDOW)
        self._preroll = preroll_frames * self._frame
        self._pending = bytearray()  # input not yet a whole frame
        self._position = 0  # timeline position of the next sample we expect
        self._index = 0
        self._ready: list[Utterance] = []
        # the open utterance
        self._active = False
        self._start = 0
        self._audio = bytearray()
        self._first_voiced = 0
        self._last_voiced_end = 0
        self._silent_frames = 0

    @property
    def active(self) -> bool:
        """True while inside an utterance (speech began and has not ended)."""
        return self._active

    @property
    def open_start(self) -> int | None:
        """First sample (pre-roll included) of the utterance being spoken, or None."""
        return self._start if self._active else None

    def open_audio(self) -> bytes:
        """The audio of the utterance being spoken so far (empty between utterances)."""
        return bytes(self._audio) if self._active else b""

    def receive(self, pcm: bytes, start_sample: int) -> None:
        """Take PCM16 LE audio whose first sample sits at ``start_sample`` on the timeline.

        Raises:
            InvalidAudioError: an odd number of bytes.
        """
        if len(pcm) % 2:
            raise InvalidAudioError(f"voice activity: {len(pcm)} bytes is not whole samples")
        frame_bytes = self._frame_bytes
        if start_sample == self._position and not self._pending and len(pcm) == frame_bytes:
            self._step(pcm, self._is_speech(pcm))  # the usual case: one whole 20 ms frame
            return
        expected = self._position + len(self._pending) // 2
        if start_sample > expected:
            self._gap(start_sample - expected)
        elif start_sample < expected:  # overlap with what we have: keep only the new part
            pcm = pcm[2 * (expected - start_sample) :]
        self._pending += pcm
        while len(self._pending) >= frame_bytes:
            frame = bytes(self._pending[:frame_bytes])
            del self._pending[:frame_bytes]
            self._step(frame, self._is_speech(frame))

    def utterances_ready(self) -> list[Utterance]:
        """Return and forget the utterances finished so far."""
        if not self._ready:
            return []
        out, self._ready = self._ready, []
        return out

    def close(self) -> list[Utterance]:
        """End of stream: close the open utterance; return everything not yet taken."""
        if self._active:
            self._finish(split=False)
        return self.utterances_ready()

    # -- internals ------------------------------------------------------------------------

    def _gap(self, samples: int) -> None:
        """Lost audio is silence.

        Zeros finish a partial frame and run an open utterance on (to its end, or through the
        hole); whatever is left of the hole is skipped.
        """
        while samples > 0 and (self._pending or self._active):
            take = min(samples, (self._frame_bytes - len(self._pending)) // 2)
            self._pending += bytes(2 * take)
            samples -= take
            if len(self._pending) == self._frame_bytes:
                frame = bytes(self._pending)
                self._pending.clear()
                self._step(frame, False)  # zeros are not speech: no need to ask the VAD
        if samples:
            self._ring.clear()  # pre-roll across a hole would not be contiguous
            self._position += samples

    def _step(self, frame: bytes, voiced: bool) -> None:
        start = self._position
        self._position += self._frame
        if not self._active:
            self._ring.append((start, frame, voiced))
            if not voiced:  # only a voiced frame can complete an onset
                return
            recent = list(self._ring)[-_ONSET_WINDOW:]
            if sum(v for _, _, v in recent) >= self._start_frames:
                first = next(s for s, _, v in recent if v)
                self._open(first)
            return
        self._audio += frame
        if voiced:
            self._last_voiced_end = self._position
            self._silent_frames = 0
        else:
            self._silent_frames += 1
        if self._silent_frames >= self._end_frames:
            self._finish(split=False)
        elif self._position - self._start >= self._max_samples:
            # at the limit in a pause: end it there; mid-speech: cut, and carry on
            self._finish(split=self._silent_frames == 0)

    def _open(self, first_voiced: int) -> None:
        begin = max(first_voiced - self._preroll, self._ring[0][0])
        self._active = True
        self._start = begin
        self._audio = bytearray(b"".join(f for s, f, _ in self._ring if s >= begin))
        self._first_voiced = first_voiced
        self._last_voiced_end = self._position
        self._silent_frames = 0
        self._ring.clear()

    def _finish(self, split: bool) -> None:
        end = self._position
        if not split:
            end = min(end, self._last_voiced_end + self._tail)
        pcm = bytes(self._audio[: 2 * (end - self._start)])
        if split or self._last_voiced_end - self._first_voiced >= self._min_samples:
            self._ready.append(
                Utterance(
                    track=self.track,
                    sample_rate=self.sample_rate,
                    index=self._index,
                    start_sample=self._start,
                    end_sample=end,
                    pcm=pcm,
                    split=split,
                    onset_sample=self._first_voiced,
                )
            )
            self._index += 1
        leftover = self._audio[2 * (end - self._start) :]
        self._audio = bytearray()
        if split:  # the next piece starts right here, still speaking
            self._start = end
            self._first_voiced = end
            self._last_voiced_end = end
            return
        self._active = False
        # what followed the end (the hangover) can be pre-roll for the next utterance
        size = self._frame_bytes
        for offset in range(0, len(leftover) - size + 1, size):
            self._ring.append((end + offset // 2, bytes(leftover[offset : offset + size]), False))


# What the assembler needs of a segmenter and its utterances (tests hand in their own).
class SegmenterLike(Protocol):
    """What the assembler needs of a voice-activity segmenter (``audio.vad.Segmenter``)."""

    def receive(self, pcm: bytes, start_sample: int) -> None:
        """Take PCM16 LE audio that starts at ``start_sample`` on the track's timeline."""

    def utterances_ready(self) -> Sequence[UtteranceLike]:
        """Return and forget finished utterances."""

    def close(self) -> Sequence[UtteranceLike]:
        """Flush the open utterance at end of stream; return what was still pending."""

    @property
    def active(self) -> bool:
        """True while inside an utterance (speech detected and not yet ended)."""


class UtteranceLike(Protocol):
    """What the assembler reads of an utterance."""

    @property
    def track(self) -> str:
        """``inbound`` or ``outbound``."""

    @property
    def index(self) -> int:
        """0, 1, 2, … per track."""

    @property
    def start_sample(self) -> int:
        """First sample on the track timeline."""

    @property
    def end_sample(self) -> int:
        """One past the last sample."""

    @property
    def split(self) -> bool:
        """Cut at the maximum length."""

    @property
    def pcm(self) -> bytes:
        """PCM16 LE audio."""


SegmenterFactory = Callable[[int, Track], SegmenterLike]
