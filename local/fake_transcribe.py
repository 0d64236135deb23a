"""A stand-in for Amazon Transcribe streaming's WebSocket API, written from AWS's documentation.

It has its own wire code and never imports the product's (``callstream.adapters.
transcribe_wire``): the presigned URL is checked by a SigV4 computed here as the WebSocket guide's
pseudocode says (a wrong signature, an expired URL or ``X-Amz-Expires`` over 300 is HTTP 403);
audio frames are read with botocore's event-stream decoder (AWS's own code: a second witness of
our encoder) and results are written by an encoder of its own.

With ``enable-channel-identification`` and ``number-of-channels=2`` it takes interleaved stereo
and hears each channel on its own, its results labelled ``ch_0`` and ``ch_1``.

What it hears is not speech: a **tone word** is a tone held 200 ms or more, each frequency in
:data:`TONE_WORDS` a word, so a test knows exactly what was said and can check that nothing is
lost or doubled. Like Transcribe, it cuts a segment at a pause (``pause_ms``), gives a partial
result per audio event while a segment is open (``IsPartial``, the same ``ResultId``), the final
at the pause, times in seconds of the session's audio, and ends the session with a close frame
after the empty audio event.

It keeps the documented limits, smaller when asked: ``max_sessions`` at once
(``LimitExceededException``), ``max_session_s`` of audio per session (``LimitExceededException``)
and ``idle_s`` without audio (``BadRequestException``); and it fails as asked: ``faults`` are
``(after_audio_s, kind)`` for the sessions in the order they open, ``kind`` an exception type to
send, ``"drop"`` to cut the TCP connection with no close frame, ``"garbage"`` (bytes that are no
event-stream message) or ``"wrong types"`` (a TranscriptEvent whose times are strings).
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import datetime
import hashlib
import hmac
import json
import struct
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np
from botocore.eventstream import EventStreamBuffer
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

PATH = "/stream-transcription-websocket"
ACCESS_KEY, SECRET_KEY = "AKIDFAKETRANSCRIBE", "fake-transcribe-secret"
#: Frequency (Hz) → word. A tone word is one of these held for at least ``MIN_WORD_MS``.
TONE_WORDS = {
    500: "alpha",
    700: "bravo",
    900: "charlie",
    1100: "delta",
    1300: "echo",
    1500: "foxtrot",
    1700: "golf",
    1900: "hotel",
}
MIN_WORD_MS = 100
_FRAME_MS = 20


def tone_words(words: list[str], rate: int, *, word_ms: int = 300, gap_ms: int = 100) -> bytes:
    """PCM16 LE of ``words`` said as tones, ``gap_ms`` of silence after each."""
    by_word = {w: f for f, w in TONE_WORDS.items()}
    out = []
    for word in words:
        t = np.arange(rate * word_ms // 1000) / rate
        out.append((np.sin(2 * np.pi * by_word[word] * t) * 9000).astype("<i2"))
        out.append(np.zeros(rate * gap_ms // 1000, dtype="<i2"))
    return b"".join(a.tobytes() for a in out)


def silence(ms: int, rate: int) -> bytes:
    """PCM16 LE silence."""
    return bytes(rate * ms // 1000 * 2)


# -- SigV4, as the WebSocket guide computes it -------------------------------------------------


def _uri_encode(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


def _sign(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def expected_signature(host: str, params: dict[str, str], secret: str) -> str:
    """The signature the guide's Tasks 1-3 make for these query parameters."""
    query = "&".join(
        f"{_uri_encode(k)}={_uri_encode(v)}"
        for k, v in sorted(params.items())
        if k != "X-Amz-Signature"
    )
    canonical = "\n".join(
        ["GET", PATH, query, f"host:{host}\n", "host", hashlib.sha256(b"").hexdigest()]
    )
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    datestamp, region, service, _ = scope.split("/")
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            params["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _sign(("AWS4" + secret).encode(), datestamp)
    for part in (region, service, "aws4_request"):
        key = _sign(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


# -- event-stream messages out ----------------------------------------------------------------


def _message(headers: dict[str, str], payload: bytes) -> bytes:
    head = b"".join(
        struct.pack("B", len(k)) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
        for k, v in headers.items()
    )
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + head + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def _event(results: list[dict[str, Any]]) -> bytes:
    return _message(
        {
            ":content-type": "application/json",
            ":event-type": "TranscriptEvent",
            ":message-type": "event",
        },
        json.dumps({"Transcript": {"Results": results}}).encode(),
    )


def _exception(kind: str, message: str) -> bytes:
    return _message(
        {
            ":content-type": "application/json",
            ":exception-type": kind,
            ":message-type": "exception",
        },
        json.dumps({"Message": message}).encode(),
    )


# -- hearing tone words -----------------------------------------------------------------------


@dataclass
class _Word:
    word: str
    start: int  # samples of the session
    end: int


@dataclass
class _Segment:
    result_id: str
    start: int
    words: list[_Word] = field(default_factory=list)


class ToneHearing:
    """A session's recogniser: tone words in, segments out (partial, then final at a pause)."""

    def __init__(self, rate: int, pause_ms: int, channel: str = "ch_0") -> None:
        self.rate = rate
        self.channel = channel
        self._frame = rate * _FRAME_MS // 1000
        self._pause = pause_ms // _FRAME_MS
        self._buf = np.zeros(0, dtype=np.int16)
        self.pos = 0  # samples heard
        self._segment: _Segment | None = None
        self._word: _Word | None = None
        self._quiet = 0

    def hear(self, pcm: bytes) -> list[dict[str, Any]]:
        """The results this audio makes: finals of segments it closed, a partial of the open one."""
        self._buf = np.concatenate([self._buf, np.frombuffer(pcm, dtype="<i2")])
        out: list[dict[str, Any]] = []
        while len(self._buf) >= self._frame:
            frame, self._buf = self._buf[: self._frame], self._buf[self._frame :]
            word = self._tone(frame)
            start, self.pos = self.pos, self.pos + self._frame
            if word is None:
                self._end_word()
                self._quiet += 1
                if self._segment is not None and self._quiet >= self._pause:
                    out.append(self._result(final=True))
                    self._segment = None
                continue
            self._quiet = 0
            if self._segment is None:
                self._segment = _Segment(str(uuid.uuid4()), start)
            if self._word is not None and self._word.word != word:
                self._end_word()
            if self._word is None:
                self._word = _Word(word, start, self.pos)
            self._word.end = self.pos
        if self._segment is not None and self._heard_words():
            out.append(self._result(final=False))
        return out

    def end(self) -> list[dict[str, Any]]:
        """The audio ended: the open segment's final."""
        self._end_word()
        if self._segment is None:
            return []
        result, self._segment = self._result(final=True), None
        return [result]

    def _tone(self, frame: np.ndarray) -> str | None:
        if np.sqrt(np.mean(frame.astype(np.float64) ** 2)) < 1000:
            return None
        crossings = np.count_nonzero(np.diff(np.signbit(frame)))
        hz = crossings * self.rate / (2 * len(frame))
        nearest = min(TONE_WORDS, key=lambda f: abs(f - hz))
        return TONE_WORDS[nearest] if abs(nearest - hz) < 80 else None

    def _end_word(self) -> None:
        word, self._word = self._word, None
        if (
            word is not None
            and self._segment is not None
            and (word.end - word.start) * 1000 >= MIN_WORD_MS * self.rate
        ):
            self._segment.words.append(word)

    def _heard_words(self) -> list[_Word]:
        words = list(self._segment.words) if self._segment else []
        if self._word is not None and (self._word.end - self._word.start) * 1000 >= (
            MIN_WORD_MS * self.rate
        ):
            words.append(self._word)
        return words

    def _result(self, *, final: bool) -> dict[str, Any]:
        assert self._segment is not None
        words = self._segment.words if final else self._heard_words()
        seconds = self.rate
        end = words[-1].end if words else self.pos
        return {
            "ResultId": self._segment.result_id,
            "StartTime": self._segment.start / seconds,
            "EndTime": end / seconds,
            "IsPartial": not final,
            "ChannelId": self.channel,
            "Alternatives": [
                {
                    "Transcript": " ".join(w.word for w in words),
                    "Items": [
                        {
                            "Content": w.word,
                            "StartTime": w.start / seconds,
                            "EndTime": w.end / seconds,
                            "Type": "pronunciation",
                            "Confidence": 0.9,
                            "Stable": final,
                        }
                        for w in words
                    ],
                }
            ],
        }


class StereoHearing:
    """A session of one or two channels (interleaved samples), each heard on its own."""

    def __init__(self, rate: int, pause_ms: int, channels: int) -> None:
        self._channels = [ToneHearing(rate, pause_ms, f"ch_{i}") for i in range(channels)]
        self._odd = b""  # a sample frame split across two audio events

    def hear(self, pcm: bytes) -> list[dict[str, Any]]:
        """Each channel's results for its samples of this audio, channel 0's first."""
        if len(self._channels) == 1:
            return self._channels[0].hear(pcm)
        data, width = self._odd + pcm, 2 * len(self._channels)
        whole = len(data) // width * width
        samples, self._odd = np.frombuffer(data[:whole], dtype="<i2"), data[whole:]
        return [
            result
            for i, hearing in enumerate(self._channels)
            for result in hearing.hear(samples[i :: len(self._channels)].tobytes())
        ]

    def end(self) -> list[dict[str, Any]]:
        """The audio ended: each channel's open segment's final."""
        return [result for hearing in self._channels for result in hearing.end()]


# -- the endpoint -----------------------------------------------------------------------------


@dataclass
class SessionLog:
    """What one session was asked and heard (for the tests)."""

    params: dict[str, str]
    audio_s: float = 0.0
    ended_by: str = ""  # "end" (the empty audio event), a fault, a limit
    results: list[dict[str, Any]] = field(default_factory=list)


class FakeTranscribe:
    """The endpoint, on 127.0.0.1 in a thread of its own. See the module."""

    def __init__(
        self,
        *,
        max_sessions: int = 25,
        max_session_s: float = 4 * 3600,
        idle_s: float = 15.0,
        pause_ms: int = 600,
        faults: list[tuple[float, str]] | None = None,
    ) -> None:
        """Not listening until :meth:`start`."""
        self.max_sessions, self.max_session_s, self.idle_s = max_sessions, max_session_s, idle_s
        self.pause_ms = pause_ms
        self.faults = list(faults or [])
        self.sessions: list[SessionLog] = []
        self.refused_handshakes = 0
        self._open = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        """The base URL to give the client (``CALLSTREAM_TRANSCRIBE_ENDPOINT``)."""
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> FakeTranscribe:
        """Listen on a free port, in a thread."""
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()

            async def main() -> None:
                self._server = await serve(
                    self._session,
                    "127.0.0.1",
                    0,
                    process_request=self._check,
                    compression=None,
                    close_timeout=1,
                    max_size=1024 * 1024,
                )
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()
                await self._server.wait_closed()

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-transcribe", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Close every session and stop listening."""
        if self._server is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(10)

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        """The upgrade request: the path, the presigned URL's parameters and signature."""
        url = urllib.parse.urlsplit(request.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        problem = self._problem(url.path, params, request.headers.get("Host", ""))
        if problem is None:
            return None
        self.refused_handshakes += 1
        return connection.respond(HTTPStatus.FORBIDDEN, problem + "\n")

    def _problem(self, path: str, params: dict[str, str], host: str) -> str | None:
        if path != PATH:
            return f"no such path {path}"
        needed = (
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
            "language-code",
            "media-encoding",
            "sample-rate",
        )
        missing = [name for name in needed if name not in params]
        if missing:
            return f"missing {', '.join(missing)}"
        if params["X-Amz-SignedHeaders"] != "host" or params["X-Amz-Algorithm"] != (
            "AWS4-HMAC-SHA256"
        ):
            return "only AWS4-HMAC-SHA256 with host signed"
        if not params["X-Amz-Credential"].startswith(ACCESS_KEY + "/"):
            return "UnrecognizedClientException: unknown access key"
        expires = int(params["X-Amz-Expires"])
        if expires > 300:
            return "X-Amz-Expires over 300"
        signed = datetime.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.UTC
        )
        if datetime.datetime.now(datetime.UTC) > signed + datetime.timedelta(seconds=expires):
            return "the URL expired"
        if params["X-Amz-Signature"] != expected_signature(host, params, SECRET_KEY):
            return "SignatureDoesNotMatch"
        if params["media-encoding"] != "pcm":
            return "only pcm here"
        identify = params.get("enable-channel-identification")
        channels = params.get("number-of-channels")
        if (identify == "true") != (channels is not None):  # the API: one needs the other
            return "BadRequestException: channel identification needs number-of-channels"
        if channels not in (None, "2"):
            return "BadRequestException: two channels at most, and then two"
        return None

    async def _session(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        url = urllib.parse.urlsplit(connection.request.path)
        log = SessionLog(dict(urllib.parse.parse_qsl(url.query)))
        self.sessions.append(log)
        fault = self.faults.pop(0) if self.faults else None
        if self._open >= self.max_sessions:
            log.ended_by = "LimitExceededException"
            await connection.send(
                _exception("LimitExceededException", "You have reached your limit of streams.")
            )
            await connection.close()
            return
        self._open += 1
        try:
            await self._hear(connection, log, fault)
        except ConnectionClosed:
            log.ended_by = log.ended_by or "client closed"
        finally:
            self._open -= 1

    async def _hear(
        self, connection: ServerConnection, log: SessionLog, fault: tuple[float, str] | None
    ) -> None:
        rate = int(log.params["sample-rate"])
        channels = int(log.params.get("number-of-channels", "1"))
        hearing = StereoHearing(rate, self.pause_ms, channels)
        reader = EventStreamBuffer()
        while True:
            try:
                async with asyncio.timeout(self.idle_s):
                    data = await connection.recv()
            except TimeoutError:
                log.ended_by = "BadRequestException"
                await self._fail(connection, "BadRequestException", "no audio for 15 seconds")
                return
            reader.add_data(data if isinstance(data, bytes) else data.encode())
            for message in reader:
                headers = message.headers
                if headers.get(":event-type") != "AudioEvent":
                    log.ended_by = "BadRequestException"
                    await self._fail(connection, "BadRequestException", "not an AudioEvent")
                    return
                pcm = message.payload
                if not pcm:  # the end of the audio: the last final, then a close frame
                    await self._send(connection, log, hearing.end())
                    log.ended_by = "end"
                    await connection.close()
                    return
                log.audio_s += len(pcm) / 2 / rate / channels
                if fault is not None and log.audio_s >= fault[0]:
                    log.ended_by = fault[1]
                    if fault[1] == "drop":
                        connection.transport.abort()
                    elif fault[1] == "garbage":  # not an event-stream message at all
                        await connection.send(b"\x00\x00\x00\x20" + b"\xff" * 28)
                        await self._until_closed(connection)  # nothing more: the client acts
                    elif fault[1] == "wrong types":  # a TranscriptEvent with a string time
                        result = {"ResultId": "x", "StartTime": "soon", "EndTime": 1.0}
                        await connection.send(_event([result | {"IsPartial": "yes"}]))
                        await self._until_closed(connection)
                    else:
                        await self._fail(connection, fault[1], "injected")
                    return
                if log.audio_s > self.max_session_s:
                    log.ended_by = "LimitExceededException"
                    await self._fail(
                        connection, "LimitExceededException", "maximum audio stream length"
                    )
                    return
                await self._send(connection, log, hearing.hear(pcm))

    async def _send(
        self, connection: ServerConnection, log: SessionLog, results: list[dict[str, Any]]
    ) -> None:
        for result in results:
            log.results.append(result)
            await connection.send(_event([result]))

    async def _until_closed(self, connection: ServerConnection) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await connection.wait_closed()

    async def _fail(self, connection: ServerConnection, kind: str, message: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await connection.send(_exception(kind, message))
            await connection.close()


def main() -> None:
    """Run the endpoint on its own (``python -m local.fake_transcribe``): prints its URL."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="A fake Amazon Transcribe streaming endpoint")
    parser.add_argument("--max-sessions", type=int, default=25)
    args = parser.parse_args()
    fake = FakeTranscribe(max_sessions=args.max_sessions).start()
    print(fake.endpoint, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    fake.stop()


if __name__ == "__main__":
    main()
