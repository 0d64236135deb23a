"""Amazon Transcribe streaming (the ``amazon-transcribe`` SDK) as the ``aws`` transcriber.

One streaming session per utterance, at the utterance's own sample rate, PCM16. Throttling and
quota errors (``LimitExceededException``, ``ServiceUnavailableException``,
``InternalFailureException``) are retried with backoff; anything else fails the record, which
the batch retries alone and finally dead-letters.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from callstream.exceptions import UpstreamError
from callstream.ports import Transcript

CHUNK_BYTES = 8 * 1024
RETRYABLE = ("LimitExceededException", "ServiceUnavailableException", "InternalFailureException")


class AwsTranscriber:
    """The ``aws`` transcriber backend."""

    name = "aws"

    def __init__(self, region: str, client: Any = None, attempts: int = 4) -> None:
        """Use a ``TranscribeStreamingClient`` (built on first use unless injected)."""
        self._region = region
        self._client = client
        self._attempts = attempts

    def _streaming_client(self) -> Any:
        if self._client is None:
            from amazon_transcribe.client import TranscribeStreamingClient

            self._client = TranscribeStreamingClient(region=self._region)
        return self._client

    def transcribe(self, pcm: bytes, sample_rate: int, language: str) -> Transcript:
        """Recognise one utterance; retries throttling with exponential backoff and jitter.

        Raises:
            UpstreamError: Transcribe refused the request, or kept throttling.
        """
        for attempt in range(1, self._attempts + 1):
            try:
                return asyncio.run(self._session(pcm, sample_rate, language))
            except Exception as error:
                kind = type(error).__name__
                if kind not in RETRYABLE or attempt == self._attempts:
                    raise UpstreamError(f"Amazon Transcribe failed: {kind}: {error}") from None
                time.sleep(random.uniform(0, 0.2 * 2**attempt))  # noqa: S311 - jitter
        raise AssertionError("unreachable")  # pragma: no cover

    async def _session(self, pcm: bytes, sample_rate: int, language: str) -> Transcript:
        stream = await self._streaming_client().start_stream_transcription(
            language_code=language, media_sample_rate_hz=sample_rate, media_encoding="pcm"
        )

        async def send() -> None:
            for offset in range(0, len(pcm), CHUNK_BYTES):
                await stream.input_stream.send_audio_event(
                    audio_chunk=pcm[offset : offset + CHUNK_BYTES]
                )
            await stream.input_stream.end_stream()

        texts: list[str] = []
        confidences: list[float] = []

        async def receive() -> None:
            async for event in stream.output_stream:
                for result in event.transcript.results:
                    if result.is_partial or not result.alternatives:
                        continue
                    best = result.alternatives[0]
                    texts.append(best.transcript)
                    confidences.extend(
                        [i.confidence for i in best.items or [] if i.confidence is not None]
                    )

        await asyncio.gather(send(), receive())
        confidence = sum(confidences) / len(confidences) if confidences else None
        return Transcript(
            text=" ".join(t.strip() for t in texts if t.strip()), confidence=confidence
        )
