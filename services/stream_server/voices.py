"""The voice agent's voices (:class:`~stream_server.ports.Synthesizer`): espeak-ng and Polly.

Each yields PCM16 LE mono at its own rate; :meth:`Talkback.say` resamples and encodes it to the
stream's codec and rate in 20 ms frames. espeak-ng is the offline voice: the ``espeakng-loader``
wheel carries the library and its voice data, so nothing needs installing (``../SPEECH.md``).
Polly is the AWS voice: neural, PCM at 8 or 16 kHz, read as it streams.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from callstream.adapters.threaded import threaded
from callstream.exceptions import ConfigError, ModelError

#: Longest text one synthesis takes (a runaway model reply is cut, not read for minutes).
MAX_TEXT_CHARS = 1500
#: Bytes of Polly's stream read at a time: 100 ms at 16 kHz.
POLLY_CHUNK = 3200
#: Polly sending nothing for this long has failed (its answer, or its stream, stalled).
POLLY_STALL_S = 10.0


#: espeak-ng's one thread: its library keeps one voice and one callback per process.
_ESPEAK = ThreadPoolExecutor(1, thread_name_prefix="espeak")


class EspeakVoice:
    """espeak-ng through its C API (synchronous mode, one synthesis at a time per process).

    espeak-ng keeps one global voice and callback, so calls take turns behind a lock, in a
    thread; a sentence takes a few milliseconds (SPEECH.md), so the turns are short.
    """

    _lock = threading.Lock()
    _lib: Any = None
    _rate = 0
    _chunks: list[bytes] | None = None

    def __init__(self, voice: str = "en-us", words_per_minute: int = 165) -> None:
        """Speak with espeak-ng's ``voice`` (``en-us``, ``en-gb``, ``hi``…) at this speed."""
        if not (80 <= words_per_minute <= 450):
            raise ConfigError(f"espeak speed {words_per_minute} wpm is outside 80-450")
        self.voice = voice.encode("ascii", "replace")[:40]
        self.words_per_minute = words_per_minute
        self._load()

    @classmethod
    def _load(cls) -> None:
        with cls._lock:
            if cls._lib is not None:
                return
            try:
                import espeakng_loader
            except ImportError as error:
                raise ConfigError("the espeak voice needs the espeakng-loader package") from error
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = str(espeakng_loader.get_data_path()).encode()
            rate = lib.espeak_Initialize(2, 0, data, 0)  # AUDIO_OUTPUT_SYNCHRONOUS, no buffer
            if rate <= 0:
                raise ConfigError(f"espeak-ng did not start (returned {rate})")
            lib.espeak_SetSynthCallback(_CALLBACK)
            cls._lib, cls._rate = lib, rate

    async def speak(self, text: str) -> AsyncIterator[tuple[bytes, int]]:
        """The speech of ``text`` (one chunk: espeak-ng is far faster than real time).

        In espeak's own thread: the syntheses take turns anyway, and queued in the loop's few
        shared workers they would hold them all (those also renew the stream leases).
        """
        loop = asyncio.get_running_loop()
        pcm = await loop.run_in_executor(_ESPEAK, self._synthesize, text[:MAX_TEXT_CHARS])
        if pcm:
            yield pcm, self._rate

    def _synthesize(self, text: str) -> bytes:
        data = text.encode("utf-8", "replace") + b"\0"
        cls = type(self)
        with cls._lock:
            lib, chunks = cls._lib, list[bytes]()
            cls._chunks = chunks
            try:
                if lib.espeak_SetVoiceByName(self.voice) != 0:
                    raise ModelError(f"espeak-ng has no voice {self.voice.decode()!r}")
                lib.espeak_SetParameter(1, self.words_per_minute, 0)  # espeakRATE, absolute
                # position 0, POS_CHARACTER, no end, espeakCHARS_UTF8
                status = lib.espeak_Synth(data, len(data), 0, 1, 0, 1, None, None)
            finally:
                cls._chunks = None
        if status != 0:
            raise ModelError(f"espeak-ng failed to speak (status {status})")
        return b"".join(chunks)


def _collect(wav: Any, samples: int, _events: Any) -> int:
    chunks = EspeakVoice._chunks
    if samples > 0 and chunks is not None:
        chunks.append(ctypes.string_at(wav, samples * 2))
    return 0  # go on


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)(_collect)


class Delayed:
    """The bench's cloud-like voice: its first audio late, the rest paced as Polly streams.

    The first audio comes ``delay_s`` late; with ``pace``, the rest is made at ``pace`` times
    real time, 100 ms at a time.
    """

    def __init__(self, voice: Any, delay_s: float, pace: float = 0.0) -> None:
        """Delay ``voice``'s first audio by ``delay_s``; pace the rest (0: all at once)."""
        self.voice, self.delay_s, self.pace = voice, delay_s, pace

    async def speak(self, text: str) -> AsyncIterator[tuple[bytes, int]]:
        """``voice``'s speech, late (and paced)."""
        await asyncio.sleep(self.delay_s)
        async for pcm, rate in self.voice.speak(text):
            if not self.pace:
                yield pcm, rate
                continue
            step = rate // 10 * 2  # 100 ms of PCM16
            for offset in range(0, len(pcm), step):
                if offset:
                    await asyncio.sleep(0.1 / self.pace)
                yield pcm[offset : offset + step], rate


class PollyVoice:
    """Amazon Polly's neural voices, PCM read as it streams (first audio before the last)."""

    def __init__(
        self, client: Any, voice_id: str = "Joanna", rate: int = 16000, engine: str = "neural"
    ) -> None:
        """Speak with Polly's ``voice_id`` as PCM at ``rate`` (8000 or 16000: Polly's PCM)."""
        if rate not in (8000, 16000):
            raise ConfigError(f"Polly gives PCM at 8000 or 16000 Hz, not {rate}")
        self.client, self.voice_id, self.rate, self.engine = client, voice_id, rate, engine

    async def speak(self, text: str) -> AsyncIterator[tuple[bytes, int]]:
        """The speech of ``text``, chunk by chunk as Polly sends it.

        The request and the body's reads block; they run in a thread of the sentence's own
        (``callstream.adapters.threaded``), not in the loop's few shared workers.
        """
        text = text[:MAX_TEXT_CHARS]

        def produce(put: Callable[[tuple[bytes, int]], None], stop: threading.Event) -> None:
            body = self._start(text)
            try:
                carry = b""
                while not stop.is_set() and (chunk := body.read(POLLY_CHUNK)):
                    chunk = carry + chunk
                    cut = len(chunk) - len(chunk) % 2  # whole samples only
                    carry = chunk[cut:]
                    if cut:
                        put((chunk[:cut], self.rate))
            finally:
                body.close()

        async for piece in threaded(produce, POLLY_STALL_S, "Polly's audio stream"):
            yield piece

    def _start(self, text: str) -> Any:
        try:
            answer = self.client.synthesize_speech(
                Engine=self.engine,
                OutputFormat="pcm",
                SampleRate=str(self.rate),
                Text=text,
                TextType="text",
                VoiceId=self.voice_id,
            )
        except Exception as error:  # botocore's ClientError, a timeout, no credentials…
            raise ModelError(f"Polly refused to speak: {error}") from error
        return answer["AudioStream"]
