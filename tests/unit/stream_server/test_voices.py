"""The voices: espeak-ng really speaks (offline), Polly is asked as AWS takes it (moto)."""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import numpy as np
import pytest

from callstream.exceptions import ConfigError, ModelError
from stream_server.voices import EspeakVoice, PollyVoice


async def speech(voice: Any, text: str) -> tuple[bytes, int]:
    chunks = [chunk async for chunk in voice.speak(text)]
    assert {rate for _, rate in chunks} == {chunks[0][1]}
    return b"".join(pcm for pcm, _ in chunks), chunks[0][1]


async def test_espeak_speaks_a_sentence_as_loud_pcm_of_a_plausible_length():
    pcm, rate = await speech(EspeakVoice(), "Thank you for calling. How can I help you today?")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    seconds = samples.size / rate
    assert rate == 22050 and 1.5 < seconds < 6.0  # ten words at 165 wpm: about 3.5 s
    assert np.sqrt(np.mean(samples**2)) > 1000  # speech, not silence
    slower, _ = await speech(EspeakVoice(words_per_minute=100), "How can I help you today?")
    faster, _ = await speech(EspeakVoice(words_per_minute=300), "How can I help you today?")
    assert len(slower) > 1.5 * len(faster)


async def test_concurrent_calls_each_get_their_own_sentence_whole():
    voice = EspeakVoice()
    texts = ["One.", "This sentence is clearly a good deal longer than the first one."] * 4
    alone = {text: len((await speech(voice, text))[0]) for text in set(texts)}
    together = await asyncio.gather(*(speech(voice, text) for text in texts))
    # espeak-ng varies a sentence by a few ms from one run to the next, so compare lengths:
    # audio sent to the wrong caller would make one sentence half again as long, another empty
    for (pcm, _), text in zip(together, texts, strict=True):
        assert abs(len(pcm) - alone[text]) < 0.1 * alone[text]


async def test_a_voice_espeak_lacks_is_a_model_error_and_a_wrong_speed_a_config_error():
    with pytest.raises(ModelError, match="no voice 'xx-nowhere'"):
        await speech(EspeakVoice("xx-nowhere"), "hello")
    with pytest.raises(ConfigError, match="outside 80-450"):
        EspeakVoice(words_per_minute=5)
    assert (await speech(EspeakVoice(), "still fine"))[0]  # the failure left espeak usable


async def test_polly_is_asked_for_neural_pcm_at_the_rate_and_its_stream_read(aws: Any):
    polly = boto3.client("polly", region_name="us-east-1")
    pcm, rate = await speech(PollyVoice(polly, "Joanna", 8000), "Hello there.")
    assert rate == 8000 and pcm == b"\0" * 8  # moto's stand-in audio, read through
    with pytest.raises(ModelError, match="Polly refused"):
        await speech(PollyVoice(polly, "NoSuchVoice"), "Hello")
    with pytest.raises(ConfigError, match="8000 or 16000"):
        PollyVoice(polly, rate=24000)


class _Body:
    """A stream that splits a sample across reads (as a network read may)."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self.data, self.reads, self.fail_after, self.closed = data, 0, fail_after, False

    def read(self, size: int) -> bytes:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise ConnectionResetError("reset by peer")
        piece, self.data = self.data[:3], self.data[3:]  # odd: a sample split in two
        return piece

    def close(self) -> None:
        self.closed = True


class _Polly:
    def __init__(self, body: _Body) -> None:
        self.body = body

    def synthesize_speech(self, **kwargs: Any) -> dict[str, Any]:
        return {"AudioStream": self.body}


async def test_polly_chunks_are_whole_samples_and_a_broken_stream_is_a_model_error():
    data = bytes(range(20))
    body = _Body(data)
    chunks = [pcm async for pcm, _ in PollyVoice(_Polly(body)).speak("hi")]
    assert b"".join(chunks) == data and all(len(c) % 2 == 0 for c in chunks) and body.closed
    broken = _Body(data, fail_after=2)
    with pytest.raises(ModelError, match="reset by peer"):
        _ = [pcm async for pcm, _ in PollyVoice(_Polly(broken)).speak("hi")]
    assert broken.closed


class _SlowBody:
    """Polly's stream while Polly is slow: each read blocks until the test lets it go."""

    def __init__(self, go: Any) -> None:
        self.go, self.closed = go, False

    def read(self, size: int) -> bytes:
        self.go.wait(10)
        return b""

    def close(self) -> None:
        self.closed = True


async def test_callers_answered_at_once_by_a_slow_polly_leave_the_loops_workers_free():
    """The default executor has cpu_count + 4 workers (six for two CPUs) and also runs the
    server's lease renewals: 20 Polly streams read there would hold all of them."""
    import os
    import threading

    go = threading.Event()
    bodies = [_SlowBody(go) for _ in range(20)]
    readers = [
        asyncio.create_task(speech_or_nothing(PollyVoice(_Polly(body)), "hello")) for body in bodies
    ]
    try:
        await asyncio.sleep(0.2)  # every stream is in its blocking read
        assert min(32, (os.cpu_count() or 1) + 4) < 20, "more streams than the default workers"
        renewed = await asyncio.wait_for(asyncio.to_thread(lambda: "renewed"), 5.0)
        assert renewed == "renewed", "a lease renewal is not queued behind Polly's reads"
    finally:
        go.set()
        await asyncio.gather(*readers)
    assert all(body.closed for body in bodies)


async def speech_or_nothing(voice: Any, text: str) -> list[bytes]:
    return [pcm async for pcm, _ in voice.speak(text)]


async def test_a_polly_stream_that_stalls_is_a_model_error_and_is_closed(monkeypatch: Any):
    import threading

    from stream_server import voices

    monkeypatch.setattr(voices, "POLLY_STALL_S", 0.2)
    go = threading.Event()
    body = _SlowBody(go)
    try:
        with pytest.raises(ModelError, match=r"Polly's audio stream sent nothing for 0\.2 s"):
            await speech_or_nothing(PollyVoice(_Polly(body)), "hello")
    finally:
        go.set()
    for _ in range(50):  # its thread sees the stop at its next read and closes the body
        if body.closed:
            break
        await asyncio.sleep(0.02)
    assert body.closed


async def test_callers_waiting_for_espeak_leave_the_loops_workers_free():
    """espeak-ng speaks one sentence at a time: 10 callers queued for it wait in espeak's own
    thread, not in the loop's workers (which a lease renewal needs meanwhile)."""
    voice = EspeakVoice()
    with EspeakVoice._lock:  # a long synthesis under way
        speaking = [asyncio.create_task(speech(voice, f"Line {i}.")) for i in range(10)]
        await asyncio.sleep(0.2)
        renewed = await asyncio.wait_for(asyncio.to_thread(lambda: "renewed"), 5.0)
        assert renewed == "renewed"
        assert not any(task.done() for task in speaking), "they were waiting for espeak"
    said = await asyncio.gather(*speaking)
    assert all(len(pcm) > 1000 for pcm, _ in said)


async def test_the_benchs_paced_voice_streams_a_sentence_in_100_ms_pieces():
    """The bench's cloud-like voice makes a sentence as Polly streams it: in pieces, the
    first as soon as may be, all of the sentence and nothing else."""
    from stream_server.voices import Delayed

    class Whole:
        async def speak(self, text: str):
            yield bytes(range(256)) * 40, 22050  # 10,240 bytes: 232 ms at 22,050 Hz

    pieces = [piece async for piece in Delayed(Whole(), 0.0, pace=50).speak("hi")]
    assert [len(pcm) for pcm, _ in pieces] == [4410, 4410, 1420]
    assert b"".join(pcm for pcm, _ in pieces) == bytes(range(256)) * 40
    assert {rate for _, rate in pieces} == {22050}
    whole = [piece async for piece in Delayed(Whole(), 0.0).speak("hi")]
    assert len(whole) == 1, "no pace: one piece, as espeak makes it"
