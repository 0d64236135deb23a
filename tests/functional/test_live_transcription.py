"""Live recognition through the real stream server: the worker process is spawned as in the
container (PocketSphinx, the local backend), the call is the shared support call as a Vobiz tape,
Kinesis is moto. What is asserted is what reaches UtteranceStream."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from callstream.audio.records import TranscriptRecord, UtteranceRecord
from stream_server.protection import LocalProtection
from stream_server.wiring import build_server
from tests.functional.test_stream_server import (
    KEY,
    Harness,
    play,
    settings,
    token,
    tuning,
    wait_for,
)

TAPES = Path(__file__).resolve().parents[2] / "events" / "tapes"
#: The worker decodes at about half real time per speaking track: the 40 s call, sent as fast
#: as the socket takes it, is heard in some seconds more than that on a busy machine.
HEARD_S = 240.0


async def live_server(aws, backend: str):
    """The real server with live recognition on ``backend``, its workers spawned and started."""
    server = build_server(
        settings(live_transcription=backend),
        tuning=tuning(),
        kinesis=aws["kinesis"],
        dynamodb=aws["dynamodb"],
        token_key=KEY,
        protect=LocalProtection(),
    )
    await server.start()
    return server


@pytest.fixture
async def live(aws):
    server = await live_server(aws, "local")
    yield Harness(server, aws, None)
    await server.close()


async def play_at_real_time(url: str, lines: list[str]) -> None:
    """Send the tape as Vobiz does, a frame of each track every 20 ms."""
    from websockets.asyncio.client import connect

    begun = time.monotonic()
    async with connect(url, max_size=2**20) as ws:
        for i, line in enumerate(lines):
            await ws.send(line)
            ahead = begun + i * 0.01 - time.monotonic()  # two media lines per 20 ms
            if ahead > 0:
                await asyncio.sleep(ahead)


def lines_of(found: list) -> tuple[list[TranscriptRecord], list[UtteranceRecord]]:
    transcripts = [r for r in found if isinstance(r, TranscriptRecord)]
    utterances = [r for r in found if isinstance(r, UtteranceRecord)]
    return transcripts, utterances


def check_lines(transcripts: list[TranscriptRecord], utterances: list[UtteranceRecord]) -> None:
    """Each utterance has one final line at its own span, after partials of the same line."""
    finals = [t for t in transcripts if t.kind == "final" and t.text]
    assert Counter(t.result_id for t in finals).most_common(1)[0][1] == 1, "a line doubled"
    spans = sorted((t.track, t.utterance_index, round(t.start_ms), round(t.end_ms)) for t in finals)
    assert spans == sorted(
        (u.track, u.index, round(u.start_ms), round(u.end_ms)) for u in utterances
    ), "each utterance named by the final at its span"
    assert all(u.live for u in utterances), "left to the live finals by the utterance consumer"
    for final in finals:
        before = transcripts[: transcripts.index(final)]
        assert any(t.kind == "partial" and t.result_id == final.result_id for t in before)
    first = min((t for t in finals if t.track == "inbound"), key=lambda t: t.start_ms)
    assert "frustrated" in first.text  # "…and I am really frustrated": the caller's first line


async def test_the_call_is_heard_live_partials_then_one_final_per_utterance(live):
    lines = (TAPES / "support_call_mulaw_8k.jsonl").read_text().splitlines()
    await play(live.url(token(call="tape-call")), lines)
    await wait_for(lambda: not live.server.sessions, 30)
    await wait_for(lambda: not live.server.hearing.hearing, HEARD_S)
    await live.settle()
    transcripts, utterances = lines_of(live.records("UtteranceStream"))
    assert len(utterances) == 8
    check_lines(transcripts, utterances)
    assert all(
        t.call_uuid == "tape-call" and t.stream_id == utterances[0].stream_id for t in transcripts
    )
    assert live.server.hearing is not None and live.server.hearing.stats.restarts == 0


async def test_a_worker_killed_mid_call_is_restarted_and_no_line_is_lost_or_doubled(live):
    """The call at real time, as Vobiz sends it; the worker SIGKILLed once it gave a final and
    is hearing the next lines. A restart replays each track from its last final (at most
    REPLAY_MS): every utterance still gets exactly one final line."""
    assert live.server.hearing is not None
    recognition = live.server.hearing.pool
    lines = (TAPES / "support_call_mulaw_8k.jsonl").read_text().splitlines()
    call = asyncio.create_task(play_at_real_time(live.url(token(call="tape-call")), lines))

    def heard_one_final() -> bool:
        found = live.records("UtteranceStream")
        return any(isinstance(r, TranscriptRecord) and r.kind == "final" for r in found)

    await wait_for(heard_one_final, 60)
    (shard,) = [s for s in recognition.shards if s._tracks]  # the worker hearing the call
    worker = shard._worker
    assert worker is not None and not call.done(), "the call is still going"
    os.kill(worker.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    await wait_for(lambda: recognition.stats.restarts == 1, 30)
    await call
    await wait_for(lambda: not live.server.sessions, 30)
    await wait_for(lambda: not live.server.hearing.hearing, HEARD_S)
    await live.settle()
    transcripts, utterances = lines_of(live.records("UtteranceStream"))
    check_lines(transcripts, utterances)


async def test_a_drain_before_the_last_finals_gives_their_utterances_to_the_per_utterance_path(
    live,
):
    """The call sent faster than PocketSphinx hears it, then SIGTERM's drain with a deadline
    shorter than the worker's backlog: each utterance gets exactly one transcript source, a
    live final naming it or its record again unmarked (transcribe_utterance recognises it)."""
    lines = (TAPES / "support_call_mulaw_8k.jsonl").read_text().splitlines()
    await play(live.url(token(call="tape-call")), lines)
    await wait_for(lambda: not live.server.sessions, 30)
    assert live.server.hearing.hearing, "the worker is still behind the call"
    assert await live.server.drain(deadline_s=8) == 0
    transcripts, utterances = lines_of(live.records("UtteranceStream"))
    named = Counter((t.track, t.utterance_index) for t in transcripts if t.kind == "final")
    named.pop(("inbound", None), None)
    named.pop(("outbound", None), None)
    given_back = Counter((u.track, u.index) for u in utterances if not u.live)
    marked = {(u.track, u.index) for u in utterances if u.live}
    assert len(marked) == 8 and given_back, "some finals were still to come at the deadline"
    assert named + given_back == Counter({key: 1 for key in marked}), "one source each"


# -- Amazon Transcribe streaming (the aws backend) against the fake endpoint -------------------


@pytest.fixture
async def live_aws(aws, monkeypatch):
    """The server with live_transcription=aws; its worker's sessions go to the fake Transcribe."""
    from local.fake_transcribe import ACCESS_KEY, SECRET_KEY, FakeTranscribe

    fake = FakeTranscribe().start()
    # read by the spawned worker: the credentials the fake checks the signature with
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("CALLSTREAM_TRANSCRIBE_ENDPOINT", fake.endpoint)
    server = await live_server(aws, "aws")
    yield Harness(server, aws, None), fake
    await server.close()
    fake.stop()


def tone_call() -> tuple[list[str], dict[str, list[list[str]]]]:
    """A two-speaker call in tone words: the caller's lines, then the agent's, turn by turn."""
    from local.fake_transcribe import silence, tone_words
    from local.vobiz_frames import CallAudio, messages

    said = {
        "inbound": [["alpha", "bravo"], ["charlie"], ["delta", "echo", "alpha"]],
        "outbound": [["foxtrot", "golf"], ["hotel", "hotel"], ["bravo"]],
    }
    tracks = {"inbound": b"", "outbound": b""}
    for turn in range(3):  # the caller speaks while the agent is quiet, then the other way
        for speaker, other in (("inbound", "outbound"), ("outbound", "inbound")):
            pcm = silence(300, 8000) + tone_words(said[speaker][turn], 8000) + silence(900, 8000)
            tracks[speaker] += pcm
            tracks[other] += bytes(len(pcm))
    audio = CallAudio(tracks=tracks, sample_rate=8000, stream_id="s-tones", call_id="tone-call")
    return messages(audio, "mulaw"), said


async def play_tone_call(live):
    """The tone call through the server, until its last finals are on UtteranceStream."""
    lines, said = tone_call()
    await play(live.url(token(call="tone-call")), lines)
    await wait_for(lambda: not live.server.sessions, 30)
    await wait_for(lambda: not live.server.hearing.hearing, 60)
    await live.settle()
    transcripts, utterances = lines_of(live.records("UtteranceStream"))
    return transcripts, utterances, said


async def test_a_stereo_call_through_transcribe_each_speakers_words_once_in_their_lines(
    live_aws,
):
    live, fake = live_aws
    transcripts, utterances, said = await play_tone_call(live)
    assert utterances and all(u.live for u in utterances), "every utterance was heard live"
    for track in ("inbound", "outbound"):
        finals = sorted(
            (t for t in transcripts if t.track == track and t.kind == "final"),
            key=lambda t: t.start_ms,
        )
        stored = [t for t in finals if t.utterance_index is not None]
        indexes = sorted(u.index for u in utterances if u.track == track)
        assert sorted(t.utterance_index for t in stored) == indexes, "one final per utterance"
        heard = [w for t in stored for w in t.text.split()]
        assert heard == [w for line in said[track] for w in line], f"{track}: each word once"
        assert any(t.kind == "partial" and t.track == track for t in transcripts)
    (session,) = fake.sessions  # one stereo session for the call: billed once, one of the quota
    assert session.params["language-code"] == "en-US"
    assert (
        session.params["enable-channel-identification"],
        session.params["number-of-channels"],
    ) == (
        "true",
        "2",
    )
    assert session.ended_by == "end", "ended by the call's audio"


async def test_a_call_transcribe_has_no_quota_for_goes_per_utterance_and_is_counted(live_aws):
    live, fake = live_aws
    fake.max_sessions = 0  # the account's concurrent streams: all taken
    transcripts, utterances, _ = await play_tone_call(live)
    assert [s.ended_by for s in fake.sessions] == ["LimitExceededException"], "not retried"
    assert live.server.hearing.stats.refused == 2, "both tracks: the RecognitionRefused metric"
    assert not [t for t in transcripts if t.kind == "final" and t.utterance_index is not None]
    for track in ("inbound", "outbound"):
        indexes = {u.index for u in utterances if u.track == track}
        given_back = {u.index for u in utterances if u.track == track and not u.live}
        assert indexes and given_back == indexes, (
            f"each of the refused call's {track} utterances went to the per-utterance path"
        )
