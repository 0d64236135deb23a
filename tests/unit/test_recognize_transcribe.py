"""The Transcribe streaming recogniser against a fake endpoint written from AWS's wire format.

The real client (picows, the presigned URL, event-stream frames) talks to ``local.
fake_transcribe`` on 127.0.0.1, whose SigV4 check and frame encoder are its own. Audio is tone
words, so every test knows what was said and checks each word is finalised exactly once, through
rotations, errors and dropped connections.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials

from callstream.adapters.recognize_transcribe import Connect, TranscribeCall, TranscribeTrack
from callstream.adapters.transcribe_wire import (
    PATH,
    ResultReader,
    StreamOptions,
    audio_event,
    presigned_url,
)
from callstream.exceptions import ConfigError, RecordError
from callstream.ports import LiveResult
from local.fake_transcribe import (
    ACCESS_KEY,
    SECRET_KEY,
    FakeTranscribe,
    expected_signature,
    silence,
    tone_words,
)

RATE = 8000
CHUNK = RATE // 10 * 2  # 100 ms of PCM16


@pytest.fixture
def fake() -> Iterator[FakeTranscribe]:
    endpoint = FakeTranscribe().start()
    yield endpoint
    endpoint.stop()


def connector(fake: FakeTranscribe, secret: str = SECRET_KEY) -> Callable[..., object]:
    from picows.websockets.asyncio.client import connect

    credentials = ReadOnlyCredentials(ACCESS_KEY, secret, None)

    async def open_session(options: StreamOptions) -> object:
        url = presigned_url(credentials, "us-east-1", options, base=fake.endpoint)
        return await connect(url, compression=None, open_timeout=5)

    return open_session


def mono(
    options: StreamOptions, connect: Connect, notify: Callable[[], None], **settings: Any
) -> TranscribeTrack:
    """A one-track call's recogniser."""
    track = TranscribeCall(("inbound",), RATE, options, connect, **settings).track("inbound")
    track.notify = notify
    return track


async def recognise(
    fake: FakeTranscribe,
    pcm: bytes,
    *,
    pace_s: float = 0.0,
    pause_after: dict[int, float] | None = None,
    **options: object,
) -> tuple[TranscribeTrack, list[LiveResult]]:
    """Feed ``pcm`` in 100 ms chunks (``pace_s`` apart), close, wait until finished."""
    results: list[LiveResult] = []
    ready = asyncio.Event()
    recognizer = mono(
        StreamOptions("en-US", RATE),
        connector(fake),  # type: ignore[arg-type]
        ready.set,
        retry_s=0.05,
        **options,  # type: ignore[arg-type]
    )
    for i, offset in enumerate(range(0, len(pcm), CHUNK)):
        recognizer.feed(pcm[offset : offset + CHUNK], offset // 2)
        await asyncio.sleep(pace_s)
        if pause_after and i in pause_after:
            await asyncio.sleep(pause_after[i])
        results += recognizer.results_ready()
    results += recognizer.close()
    async with asyncio.timeout(20):
        while not recognizer.finished:
            ready.clear()
            await ready.wait()
            results += recognizer.results_ready()
    results += recognizer.results_ready()
    await recognizer.aclose()
    return recognizer, results


def final_words(results: list[LiveResult]) -> list[str]:
    return [w for r in results if r.final for w in r.text.split()]


SAID = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def call(rate: int = RATE) -> bytes:
    """Four lines of two tone words, a second of silence after each."""
    return b"".join(tone_words(SAID[i : i + 2], rate) + silence(1000, rate) for i in range(0, 8, 2))


# -- the wire ---------------------------------------------------------------------------------


def test_the_presigned_url_is_signed_as_the_websocket_guide_computes_it() -> None:
    credentials = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, "session-token/with=odd+chars")
    options = StreamOptions("hi-IN", 16000, vocabulary="callstream-terms", redact_pii=True)
    url = presigned_url(credentials, "ap-south-1", options)
    parts = urllib.parse.urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "wss",
        "transcribestreaming.ap-south-1.amazonaws.com:8443",
        PATH,
    )
    params = dict(urllib.parse.parse_qsl(parts.query))
    assert params["X-Amz-Expires"] == "300" and params["X-Amz-SignedHeaders"] == "host"
    assert params["X-Amz-Credential"].endswith("/ap-south-1/transcribe/aws4_request")
    assert params["X-Amz-Security-Token"] == "session-token/with=odd+chars"
    assert (params["language-code"], params["sample-rate"], params["media-encoding"]) == (
        "hi-IN",
        "16000",
        "pcm",
    )
    assert params["vocabulary-name"] == "callstream-terms"
    assert params["content-redaction-type"] == "PII"
    assert params["X-Amz-Signature"] == expected_signature(parts.netloc, params, SECRET_KEY)


def test_an_audio_event_is_what_botocores_decoder_reads_and_garbage_is_refused() -> None:
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(audio_event(b"\x01\x02" * 50) + audio_event(b""))
    first, last = list(buffer)
    assert first.headers == {
        ":content-type": "application/octet-stream",
        ":event-type": "AudioEvent",
        ":message-type": "event",
    }
    assert first.payload == b"\x01\x02" * 50 and last.payload == b""
    with pytest.raises(RecordError, match="unreadable"):
        ResultReader().feed(b"\x00\x00\x00\x10" + b"\xff" * 12)


# -- sessions ---------------------------------------------------------------------------------


async def test_partials_grow_then_each_line_is_final_once_at_its_place_on_the_track(
    fake: FakeTranscribe,
) -> None:
    _, results = await recognise(fake, call())
    finals = [r for r in results if r.final]
    assert [r.text for r in finals] == [
        "alpha bravo",
        "charlie delta",
        "echo foxtrot",
        "golf hotel",
    ]
    line_ms = (300 + 100) * 2 + 1000
    for i, final in enumerate(finals):  # the track's own samples: the line's first tone word
        assert final.start_sample == pytest.approx(i * line_ms * 8, abs=160)
        partials = [r for r in results if r.result_id == final.result_id and not r.final]
        assert partials and partials[0].text == SAID[2 * i], "a partial before its final"
        assert results.index(partials[-1]) < results.index(final)
    assert [s.ended_by for s in fake.sessions] == ["end"], "one session, ended by its audio's end"
    assert fake.sessions[0].params["enable-partial-results-stabilization"] == "true"


async def test_a_session_is_rotated_mid_call_and_no_word_is_lost_or_doubled(
    fake: FakeTranscribe,
) -> None:
    _, results = await recognise(fake, call(), pace_s=0.02, rotate_after_s=2.5)
    assert len(fake.sessions) >= 3, "rotated at the quiet moments after 2.5 s of audio each"
    assert all(s.ended_by == "end" for s in fake.sessions)
    assert final_words(results) == SAID
    assert len({r.result_id for r in results if r.final}) == 4


@pytest.mark.parametrize(
    "fault",
    ["drop", "ServiceUnavailableException", "InternalFailureException", "garbage", "wrong types"],
)
async def test_a_session_lost_mid_utterance_is_replayed_from_the_last_final(
    fake: FakeTranscribe, fault: str
) -> None:
    # at 2.0 s of audio: inside the second line's first word ("charlie", 1.8-2.1 s)
    fake.faults = [(2.0, fault)]
    _, results = await recognise(fake, call())
    assert [s.ended_by for s in fake.sessions] == [fault, "end"]
    assert final_words(results) == SAID, "no word lost or doubled"
    second = fake.sessions[1]
    # the first line's final ends with "bravo" at 0.7 s: the replay starts there
    assert second.audio_s == pytest.approx(len(call()) / 2 / RATE - 0.7, abs=0.05), (
        "the new session heard from the first line's final on, not the whole call"
    )


async def test_the_4_hour_limit_ending_a_session_mid_line_loses_nothing(
    fake: FakeTranscribe,
) -> None:
    fake.max_session_s = 3.0  # Transcribe's LimitExceededException at its maximum length
    _, results = await recognise(fake, call())
    assert fake.sessions[0].ended_by == "LimitExceededException" and len(fake.sessions) >= 2
    assert final_words(results) == SAID


async def test_a_refused_quota_gives_the_track_up_at_once(fake: FakeTranscribe) -> None:
    fake.max_sessions = 0
    recognizer, results = await recognise(fake, call())
    assert recognizer.refused == "quota" and results == []
    assert len(fake.sessions) == 1, "no retry against a full quota: per utterance instead"


async def test_a_quiet_track_is_kept_alive_past_the_idle_limit(fake: FakeTranscribe) -> None:
    fake.idle_s = 1.5  # Transcribe's is 15 s
    pcm = tone_words(["alpha"], RATE) + silence(900, RATE) + tone_words(["bravo"], RATE)
    _, results = await recognise(fake, pcm, pause_after={5: 3.5}, keepalive_s=0.3)
    assert [s.ended_by for s in fake.sessions] == ["end"], "the session outlived 3.5 s of nothing"
    assert final_words(results) == ["alpha", "bravo"]
    finals = [r for r in results if r.final]
    assert finals[1].start_sample == pytest.approx((400 + 900) * 8, abs=160), (
        "keep-alive silence is on no track: the next line is where the track has it"
    )


async def test_a_wrong_secret_is_refused_at_the_handshake_and_not_retried(
    fake: FakeTranscribe,
) -> None:
    ready = asyncio.Event()
    recognizer = mono(
        StreamOptions("en-US", RATE),
        connector(fake, secret="wrong"),  # type: ignore[arg-type]
        ready.set,
        retry_s=0.05,
    )
    recognizer.feed(tone_words(["alpha"], RATE), 0)
    async with asyncio.timeout(10):
        await ready.wait()
    assert recognizer.finished and recognizer.refused == "refused"
    assert fake.refused_handshakes == 1 and fake.sessions == []
    await recognizer.aclose()


async def test_a_redacting_stream_gives_no_partials(fake: FakeTranscribe) -> None:
    results: list[LiveResult] = []
    ready = asyncio.Event()
    recognizer = mono(
        StreamOptions("en-US", RATE, redact_pii=True),
        connector(fake),  # type: ignore[arg-type]
        ready.set,
    )
    recognizer.feed(tone_words(["alpha", "bravo"], RATE), 0)
    recognizer.close()
    async with asyncio.timeout(10):
        while not recognizer.finished:
            ready.clear()
            await ready.wait()
    results = recognizer.results_ready()
    assert [(r.final, r.text) for r in results] == [(True, "alpha bravo")]
    assert fake.sessions[0].params["content-redaction-type"] == "PII"
    await recognizer.aclose()


async def test_a_stalled_session_holds_at_most_the_replay_window_of_audio() -> None:
    """Transcribe stops reading (TCP full, send never returns): a minute of audio later the
    track holds 30 s, not a minute, and says how much it let go."""

    class Stalled:
        async def send(self, message: bytes) -> None:
            await asyncio.Event().wait()

        async def recv(self) -> bytes:
            await asyncio.Event().wait()
            return b""

        async def close(self) -> None:
            return None

    async def open_stalled(options: StreamOptions) -> Stalled:
        return Stalled()

    recognizer = mono(
        StreamOptions("en-US", RATE),
        open_stalled,  # type: ignore[arg-type]
        lambda: None,
        replay_s=30,
    )
    chunk = bytes(CHUNK)
    for i in range(600):  # 60 s
        recognizer.feed(chunk, i * CHUNK // 2)
        await asyncio.sleep(0)
    assert recognizer.unsent_samples <= 30 * RATE
    assert recognizer._replay_bytes <= 30 * RATE * 2
    assert recognizer.dropped_samples >= 29 * RATE
    await recognizer.aclose()


# -- a call's two tracks in one stereo session ------------------------------------------------

INBOUND = tone_words(["alpha", "bravo"], RATE) + silence(1000, RATE)
INBOUND += tone_words(["charlie", "delta"], RATE) + silence(1000, RATE)
#: the agent's lines overlap the caller's first one (double talk): 0.5-1.3 s and 2.5-3.3 s
OUTBOUND = silence(500, RATE) + tone_words(["echo", "foxtrot"], RATE) + silence(1200, RATE)
OUTBOUND += tone_words(["golf", "hotel"], RATE) + silence(800, RATE)


async def recognise_call(
    fake: FakeTranscribe,
    tracks: dict[str, tuple[int, bytes]],
    *,
    pace_s: float = 0.0,
    **settings: Any,
) -> tuple[TranscribeCall, dict[str, list[LiveResult]], dict[str, int]]:
    """Feed each track (its first sample, its PCM) 100 ms a step, as the worker does; close.

    Returns the call, each track's results, and the results each had before the close.
    """
    ready = asyncio.Event()
    call_ = TranscribeCall(
        tuple(tracks),
        RATE,
        StreamOptions("en-US", RATE),
        connector(fake),  # type: ignore[arg-type]
        retry_s=0.05,
        **settings,
    )
    results: dict[str, list[LiveResult]] = {name: [] for name in tracks}
    for name in tracks:
        call_.track(name).notify = ready.set
    steps = max((start * 2 + len(pcm)) // CHUNK + 1 for start, pcm in tracks.values())
    for step in range(steps):
        for name, (start, pcm) in tracks.items():
            offset = step * CHUNK - start * 2  # this step's chunk, on the track's own samples
            if 0 <= offset < len(pcm):
                call_.track(name).feed(pcm[offset : offset + CHUNK], start + offset // 2)
        await asyncio.sleep(pace_s)
        for name in tracks:
            results[name] += call_.track(name).results_ready()
    before_close = {name: len(r) for name, r in results.items()}
    for name in tracks:
        results[name] += call_.track(name).close()
    async with asyncio.timeout(20):
        while not call_.finished:
            ready.clear()
            await ready.wait()
    for name in tracks:
        results[name] += call_.track(name).results_ready()
    await call_.aclose()
    return call_, results, before_close


def finals_at(results: list[LiveResult]) -> list[tuple[str, int]]:
    """Each final's text and its first sample, to the 20 ms frame."""
    return [(r.text, round(r.start_sample / 160) * 160) for r in results if r.final]


async def test_a_two_track_call_is_one_stereo_session_and_each_track_hears_its_own_words(
    fake: FakeTranscribe,
) -> None:
    _, results, _ = await recognise_call(fake, {"inbound": (0, INBOUND), "outbound": (0, OUTBOUND)})
    assert len(fake.sessions) == 1, "one session for the call: billed once, one of the quota"
    params = fake.sessions[0].params
    assert (params["enable-channel-identification"], params["number-of-channels"]) == (
        "true",
        "2",
    )
    assert fake.sessions[0].audio_s == pytest.approx(len(OUTBOUND) / 2 / RATE, abs=0.15)
    assert finals_at(results["inbound"]) == [("alpha bravo", 0), ("charlie delta", 1800 * 8)]
    assert finals_at(results["outbound"]) == [
        ("echo foxtrot", 500 * 8),
        ("golf hotel", 2500 * 8),
    ], "the agent's words on the agent's track, at their samples, through the double talk"
    assert all(r.result_id.startswith("outbound-") for r in results["outbound"])
    assert any(not r.final for r in results["outbound"]), "partials per channel too"


async def test_a_quiet_track_neither_holds_up_its_partner_nor_loses_its_place(
    fake: FakeTranscribe,
) -> None:
    """The agent's track sends nothing for its first 2 s (nothing played): the caller's words
    still come while the caller speaks, and the agent's line lands at its own samples."""
    late = tone_words(["golf", "hotel"], RATE) + silence(800, RATE)
    _, results, before_close = await recognise_call(
        fake, {"inbound": (0, INBOUND), "outbound": (2000 * 8, late)}, pace_s=0.02
    )
    assert len(fake.sessions) == 1
    inbound_partials = [r for r in results["inbound"] if not r.final]
    assert inbound_partials and before_close["inbound"] > 0, (
        "the caller's partials came while the agent's track was quiet"
    )
    assert finals_at(results["inbound"]) == [("alpha bravo", 0), ("charlie delta", 1800 * 8)]
    assert finals_at(results["outbound"]) == [("golf hotel", 2000 * 8)]


@pytest.mark.parametrize("trouble", ["drop", "rotation"])
async def test_a_stereo_session_lost_or_rotated_mid_line_replays_each_track_from_its_own_final(
    fake: FakeTranscribe, trouble: str
) -> None:
    """Lost at 2.6 s (inside the agent's "golf", after the caller's first final and the
    agent's first), or rotated after 1.5 s: each track's words come once, at their places."""
    settings: dict[str, Any] = {}
    if trouble == "drop":
        fake.faults = [(2.6, "drop")]
    else:  # after 1.5 s, at the first quiet moment: both tracks quiet from 3.3 s on
        settings["rotate_after_s"] = 1.5
    # a rotation is fed at 5x real time: it waits for results to say no line is open, and at
    # full speed they would trail the whole call
    paced = {"pace_s": 0.02} if trouble == "rotation" else {}
    tail = silence(1500, RATE) if trouble == "rotation" else b""
    _, results, _ = await recognise_call(
        fake,
        {"inbound": (0, INBOUND), "outbound": (0, OUTBOUND + tail)},
        **paced,
        **settings,
    )
    assert len(fake.sessions) >= 2
    assert final_words(results["inbound"]) == ["alpha", "bravo", "charlie", "delta"]
    assert final_words(results["outbound"]) == ["echo", "foxtrot", "golf", "hotel"]
    assert finals_at(results["outbound"])[-1] == ("golf hotel", 2500 * 8)
    assert finals_at(results["inbound"])[-1] == ("charlie delta", 1800 * 8)
    if trouble == "drop":
        # each track is replayed from its own last final, side by side: the caller's from
        # "bravo"'s end at 0.7 s, the agent's from "foxtrot"'s at 1.2 s
        replayed = max(len(INBOUND) / 2 / RATE - 0.7, len(OUTBOUND) / 2 / RATE - 1.2)
        assert fake.sessions[1].audio_s == pytest.approx(replayed, abs=0.15)


async def test_a_refused_quota_gives_both_tracks_of_a_stereo_call_up_at_once(
    fake: FakeTranscribe,
) -> None:
    fake.max_sessions = 0
    call_, results, _ = await recognise_call(
        fake, {"inbound": (0, INBOUND), "outbound": (0, OUTBOUND)}
    )
    assert call_.track("inbound").refused == call_.track("outbound").refused == "quota"
    assert results == {"inbound": [], "outbound": []}
    assert len(fake.sessions) == 1


def test_a_session_hears_one_or_two_tracks_and_no_more() -> None:
    async def never(options: StreamOptions) -> object:
        raise AssertionError("not opened")

    with pytest.raises(ConfigError, match="1 or 2 tracks"):
        TranscribeCall(("a", "b", "c"), RATE, StreamOptions("en-US", RATE), never)  # type: ignore[arg-type]


async def test_a_rotation_waits_for_quiet_audio_not_only_for_no_open_line() -> None:
    """Results trail the audio sent: with none in yet ("no line open"), a rotation due while a
    word is being sent waits until 300 ms of quiet have gone on every track."""
    from botocore.eventstream import EventStreamBuffer

    sent: list[list[bytes]] = [[]]

    class Deaf:  # takes audio, hears nothing, closes when the audio ends
        def __init__(self) -> None:
            self.closed = asyncio.Event()

        async def send(self, message: bytes) -> None:
            buffer = EventStreamBuffer()
            buffer.add_data(message)
            payload = next(iter(buffer)).payload
            sent[-1].append(payload)
            if not payload:
                sent.append([])
                self.closed.set()

        async def recv(self) -> bytes:
            await self.closed.wait()
            raise type("ConnectionClosedOK", (Exception,), {})()

        async def close(self) -> None:
            self.closed.set()

    async def open_deaf(options: StreamOptions) -> Deaf:
        return Deaf()

    call_ = TranscribeCall(
        ("inbound", "outbound"),
        RATE,
        StreamOptions("en-US", RATE),
        open_deaf,  # type: ignore[arg-type]
        rotate_after_s=0.5,
    )
    word = tone_words(["alpha"], RATE, word_ms=1000, gap_ms=0)  # loud from 0 to 1 s
    inbound = word + silence(1000, RATE)
    for offset in range(0, len(inbound), CHUNK):
        call_.track("inbound").feed(inbound[offset : offset + CHUNK], offset // 2)
        call_.track("outbound").feed(bytes(CHUNK), offset // 2)
        await asyncio.sleep(0.005)
    done = asyncio.Event()
    call_.track("inbound").notify = done.set  # told when the call is finished
    for name in ("inbound", "outbound"):
        call_.track(name).close()
    async with asyncio.timeout(10):
        while not call_.finished:
            done.clear()
            await done.wait()
    await call_.aclose()
    first = [p for p in sent[0] if p]
    first_s = sum(len(p) for p in first) / 4 / RATE  # stereo PCM16
    assert len(sent) >= 3, "rotated once, then the second session's audio ended"
    assert first_s == pytest.approx(1.3, abs=0.11), (
        "due at 0.5 s, inside the word: rotated after it and 300 ms of quiet, not at 0.5 s"
    )
