"""Offline speech recognition with PocketSphinx and the en-us model its wheel ships.

The model is loaded with the transcriber, which ``callstream.wiring`` builds once per process (a
Lambda cold start or the embedded stack), not per utterance. It expects 16 kHz: 8 kHz audio is
resampled up with soxr first.
"""

from __future__ import annotations

import threading
from typing import Any

from callstream.audio import codecs
from callstream.ports import Transcript

MODEL_RATE = 16000


class PocketSphinxTranscriber:
    """The ``local`` transcriber backend."""

    name = "local"

    def __init__(self) -> None:
        """Load the model."""
        from pocketsphinx import Decoder

        self._decoder: Any = Decoder(samprate=MODEL_RATE, loglevel="FATAL")
        self._lock = threading.Lock()  # one decoder, one utterance at a time

    def transcribe(self, pcm: bytes, sample_rate: int, language: str) -> Transcript:
        """Recognise one utterance (PCM16 LE mono at 8 or 16 kHz)."""
        audio = codecs.resample(pcm, sample_rate, MODEL_RATE) if sample_rate != MODEL_RATE else pcm
        with self._lock:
            decoder = self._decoder
            decoder.start_utt()
            decoder.process_raw(audio, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            if hyp is None:
                return Transcript(text="", confidence=None)
            # PocketSphinx 5 computes no posterior without a lattice: report none, not a guess
            return Transcript(text=hyp.hypstr.strip(), confidence=None)
