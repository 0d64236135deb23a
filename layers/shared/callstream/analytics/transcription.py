"""Speech recognition: the transcriber port and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Transcript:
    """What a recogniser heard in one utterance."""

    text: str
    confidence: float | None  # None: the backend gives no confidence (PocketSphinx)


class Transcriber(Protocol):
    """A speech recogniser backend (``aws``: Amazon Transcribe; ``local``: PocketSphinx)."""

    name: str

    def transcribe(self, pcm: bytes, sample_rate: int, language: str) -> Transcript:
        """Recognise one utterance of PCM16 LE mono audio."""
