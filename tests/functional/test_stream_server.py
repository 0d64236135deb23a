"""The real stream server on 127.0.0.1:0, Kinesis and DynamoDB from moto, a Vobiz-like client."""

from __future__ import annotations

import asyncio
import base64
import http.client
import itertools
import json
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from callstream.adapters.dynamodb import DynamoRegistry
from callstream.audio import codecs, records
from callstream.audio.records import AudioRecord, EventRecord, UtteranceRecord
from callstream.control.tokens import TokenClaims, control_auth, new_jti, sign_token
from callstream.settings import ServerSettings
from callstream.vocabulary import AudioLimits
from local.vobiz_frames import CallAudio, messages, read_wav
from stream_server.protection import LocalProtection
from stream_server.tuning import Tuning
from stream_server.wiring import build_server
from tests.conftest import read_stream

KEY = b"test-token-key-0123456789abcdef"
AUDIO = Path(__file__).resolve().parents[2] / "samples"
TAPES = Path(__file__).resolve().parents[2] / "events" / "tapes"


def settings(**overrides) -> ServerSettings:
    values = {
        "audio_stream": "AudioStream",
        "utterance_stream": "UtteranceStream",
        "registry_table": "Registry",
        "nonce_table": "Nonces",
        "host": "127.0.0.1",
        "port": 0,
        "control_port": 0,
    }
    values.update(overrides)
    return ServerSettings(**values)


def tuning(**overrides) -> Tuning:
    """Shorter intervals than production's, so the tests see records and talk-back sooner."""
    values = {
        "kinesis_linger_ms": 5,
        "flush_interval_ms": 50,
        "metrics_interval_s": 3600,
        "play_lead_ms": 200,
    }
    values.update(overrides)
    return Tuning(**values)


def token(call="call-1", exp=None, **claims) -> str:
    return sign_token(
        TokenClaims(jti=new_jti(), call_uuid=call, exp=exp or int(time.time()) + 600, **claims), KEY
    )


class Harness:
    def __init__(self, server, aws, protection):
        self.server = server
        self.aws = aws
        self.protection = protection
        self.registry = DynamoRegistry(aws["dynamodb"], "Registry")

    def url(self, tok: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}/v1/audio/{tok}"

    async def settle(self) -> None:
        """Wait until every record handed to the writers is in Kinesis."""
        assert await self.server.audio_writer.drain(10) == 0
        assert await self.server.utterance_writer.drain(10) == 0

    def records(self, stream="AudioStream", key=None):
        found = [records.decode(data) for k, data in read_stream(self.aws["kinesis"], stream)]
        return [r for r in found if key is None or r.stream_id == key]


@pytest.fixture
async def harness(aws):
    protection = LocalProtection()
    server = build_server(
        settings(),
        tuning=tuning(),
        kinesis=aws["kinesis"],
        dynamodb=aws["dynamodb"],
        token_key=KEY,
        protect=protection,
    )
    await server.start()
    yield Harness(server, aws, protection)
    await server.close()


async def play(url: str, lines, *, close=True, pause_every=0):
    async with connect(url, max_size=2**20) as ws:
        for i, line in enumerate(lines):
            await ws.send(line)
            if pause_every and i % pause_every == 0:
                await asyncio.sleep(0)
        if not close:
            await asyncio.sleep(0.2)


async def wait_for(predicate, limit_s=10.0):
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def track_audio(found, stream_id, track):
    audio = [
        r
        for r in found
        if isinstance(r, AudioRecord) and r.stream_id == stream_id and r.track == track
    ]
    return b"".join(r.payload for r in audio), audio


def source(rate: int, track: str) -> bytes:
    if rate == 24000:  # no 24 kHz recording is shared: resample the 16 kHz one
        from local.vobiz_wire import resample

        pcm, found = read_wav(AUDIO / f"support_call_16000_{track}.wav")
        return resample(pcm, found, 24000)
    pcm, found = read_wav(AUDIO / f"support_call_{rate}_{track}.wav")
    assert found == rate
    return pcm


@pytest.mark.parametrize(
    ("codec", "rate", "tracks"),
    [
        ("mulaw", 8000, ("inbound",)),
        ("mulaw", 8000, ("inbound", "outbound")),
        ("l16", 8000, ("outbound",)),
        ("l16", 16000, ("inbound", "outbound")),
        ("l16", 24000, ("inbound",)),
    ],
)
async def test_every_byte_reaches_kinesis_in_order(harness, codec, rate, tracks):
    audio = CallAudio(
        tracks={t: source(rate, t)[: rate * 2 * 12] for t in tracks},  # 12 s
        sample_rate=rate,
        stream_id=f"s-{codec}-{rate}-{len(tracks)}",
        call_id="call-1",
    )
    await play(harness.url(token()), messages(audio, codec))
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    found = harness.records(key=audio.stream_id)
    assert [r.seq for r in found if not isinstance(r, UtteranceRecord)] == list(range(len(found)))
    assert found[0].name == "start" and found[-1].name == "close"  # Vobiz just closes
    for track in tracks:
        got, parts = track_audio(found, audio.stream_id, track)
        expected = audio.tracks[track]
        if codec == "mulaw":
            expected = codecs.ulaw_decode(codecs.ulaw_encode(expected))
        assert codecs.to_pcm16(codec, got)[: len(expected)] == expected
        assert all(len(p.payload) <= AudioLimits().record_max_bytes for p in parts)
    item = harness.registry.get(audio.stream_id)
    assert item is not None
    assert (item.state, item.end_reason, item.codec, item.sample_rate) == (
        "stopped",
        "close",
        codec,
        rate,
    )
    assert item.frames == 600 * len(tracks) and item.gaps == 0
    assert item.task_address == harness.server.task_address


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
@pytest.mark.parametrize("little", [False, True])
async def test_l16_in_either_byte_order_is_read_right_and_recorded_on_the_stream(
    harness, caplog, rate, little
):
    """Vobiz documents big-endian; its own reference code sends little-endian (issue 22: that
    gave a transcript of noise). Both tracks, each decided from its own audio."""
    caplog.set_level("INFO", logger="callstream.session")
    audio = CallAudio(
        tracks={t: source(rate, t)[: rate * 2 * 12] for t in ("inbound", "outbound")},
        sample_rate=rate,
        stream_id=f"s-bo-{rate}-{little}",
        call_id="call-1",
    )
    await play(harness.url(token()), messages(audio, "l16", l16_little_endian=little))
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    found = harness.records(key=audio.stream_id)
    for track in audio.tracks:
        got, _ = track_audio(found, audio.stream_id, track)
        assert got == audio.tracks[track], f"{track}: every sample, the right way round"
    order = "little" if little else "big"
    decided = [r.data for r in found if isinstance(r, EventRecord) and r.name == "byte_order"]
    assert sorted((d["track"], d["order"]) for d in decided) == [
        ("inbound", order),
        ("outbound", order),
    ]
    item = harness.registry.get(audio.stream_id)
    assert item is not None and (item.byte_order_inbound, item.byte_order_outbound) == (
        order,
        order,
    )
    assert harness.server.counters.byte_orders[order] == 2
    logged = [r.getMessage() for r in caplog.records if "L16 is" in r.getMessage()]
    assert len(logged) == 2 and all(f"{order}-endian" in m for m in logged), "once a track"


async def test_tape_utterances_reach_the_utterance_stream(harness):
    lines = (TAPES / "support_call_mulaw_8k.jsonl").read_text().splitlines()
    await play(harness.url(token(call="tape-call")), lines)
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    utterances = harness.records("UtteranceStream")
    assert sorted((u.track, u.index) for u in utterances) == [
        (t, i) for t in ("inbound", "outbound") for i in range(4)
    ]
    assert all(isinstance(u, UtteranceRecord) and u.sample_rate == 8000 for u in utterances)


async def test_a_streams_language_from_its_token_is_on_every_utterance(harness):
    lines = (TAPES / "support_call_mulaw_8k.jsonl").read_text().splitlines()
    await play(harness.url(token(call="tape-call", language="en-IN")), lines)
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    utterances = harness.records("UtteranceStream")
    assert len(utterances) == 8 and {u.language for u in utterances} == {"en-IN"}


async def test_gaps_are_reported_and_a_bare_close_flushes(harness):
    audio = CallAudio(
        tracks={"inbound": source(8000, "inbound")[: 8000 * 2 * 3]},
        sample_rate=8000,
        stream_id="s-gaps",
        call_id="call-1",
        drop=frozenset({("inbound", 10), ("inbound", 11), ("inbound", 60)}),
    )
    await play(harness.url(token()), messages(audio, "mulaw", with_stop=False))
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    found = harness.records(key="s-gaps")
    gaps = [r for r in found if isinstance(r, EventRecord) and r.name == "gap"]
    assert [(g.data["first_frame"], g.data["frames"]) for g in gaps] == [(10, 2), (60, 1)]
    end = found[-1]
    assert isinstance(end, EventRecord) and end.name == "close" and end.data["lost_frames"] == 3
    _, parts = track_audio(found, "s-gaps", "inbound")
    assert sum(p.frames for p in parts) == 147
    assert parts[-1].start_sample + len(parts[-1].payload) == 150 * 160  # the timeline is true
    item = harness.registry.get("s-gaps")
    assert item is not None and (item.state, item.end_reason, item.gaps) == ("stopped", "close", 2)


@pytest.mark.parametrize(
    "bad",
    [
        "forged",
        "expired",
        "garbage",
    ],
)
async def test_bad_tokens_get_403_before_the_upgrade(harness, bad):
    if bad == "forged":
        tok = token()[:-4] + "AAAA"
    elif bad == "expired":
        tok = token(exp=int(time.time()) - 1)
    else:
        tok = "not-a-token"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(harness.url(tok)):
            pass
    assert refused.value.response.status_code == 403
    assert harness.server.counters.auth_failures == 1
    assert harness.records() == []


@pytest.mark.contention
async def test_a_second_socket_on_a_live_token_is_refused_before_any_message_is_read(harness):
    """One live connection per token (DESIGN §4): a copy of the URL cannot join a live call."""
    tok = token()
    first = CallAudio(
        tracks={"inbound": bytes(3200)}, sample_rate=8000, stream_id="s-live", call_id="call-1"
    )
    intruder = CallAudio(
        tracks={"inbound": bytes(3200)}, sample_rate=8000, stream_id="s-intruder", call_id="call-1"
    )
    leases = harness.server.services.leases
    acquired = []
    real_acquire = leases.acquire

    def counted(*args):
        acquired.append(args[0])
        return real_acquire(*args)

    leases.acquire = counted
    async with connect(harness.url(tok)) as live:
        lines = list(messages(first, "mulaw"))
        await live.send(lines[0])

        async def talk():  # a live Vobiz stream sends media every 20 ms
            for line in itertools.cycle(lines[1:]):
                await live.send(line)
                await asyncio.sleep(0.02)

        talking = asyncio.create_task(talk())
        for _ in range(20):  # a copied URL opened again and again
            with pytest.raises(ConnectionClosed) as closed:
                async with connect(harness.url(tok)) as ws:
                    for line in messages(intruder, "mulaw"):
                        await ws.send(line)
                    await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert closed.value.rcvd.reason == "token in use by another connection"
        talking.cancel()
    assert len(acquired) == 1, "refused from memory: no DynamoDB write per intruding socket"
    await harness.settle()
    assert harness.records(key="s-intruder") == []
    assert harness.registry.get("s-intruder") is None
    assert harness.server.counters.auth_failures == 20
    assert len(harness.records(key="s-live")) > 0


@pytest.mark.contention
async def test_a_reconnect_replaces_a_socket_gone_quiet_that_the_server_still_holds(
    harness, monkeypatch
):
    """A dropped line can leave our side of the socket open (half-open: no close, no reset,
    until the pings time out 40 s later). Vobiz reconnects meanwhile; a socket of the token
    that has sent nothing for SUPERSEDE_QUIET_S is taken for dead and replaced."""
    from stream_server import leases as lease_module

    monkeypatch.setattr(lease_module, "SUPERSEDE_QUIET_S", 0.5)
    tok = token()
    one = CallAudio(
        tracks={"inbound": bytes(3200)}, sample_rate=8000, stream_id="q-1", call_id="call-1"
    )
    two = CallAudio(
        tracks={"inbound": bytes(3200)}, sample_rate=8000, stream_id="q-2", call_id="call-1"
    )
    async with connect(harness.url(tok)) as old:  # stays open, silent: the half-open line
        for line in messages(one, "mulaw"):
            await old.send(line)
        await play(harness.url(tok), messages(two, "mulaw"))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(old.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    await harness.settle()
    audio = [r for r in harness.records(key="q-1") if isinstance(r, records.AudioRecord)]
    assert sum(r.frames for r in audio) == 2 * 10, "both connections' frames, one call stream"
    assert harness.server.counters.auth_failures == 0


@pytest.mark.contention
async def test_a_reconnect_waits_for_its_tokens_release_however_slow(harness, monkeypatch):
    """Vobiz reconnects at once; giving the lease back is a DynamoDB write in a thread, and a
    busy task may get to it seconds later (CI saw the reconnect refused as "token in use"). A
    reconnect landing on the task that is releasing its token awaits that release."""
    from stream_server import leases as lease_module

    leases = harness.server.services.leases
    real_release = leases.release

    def slow_release(*args, **kwargs):
        time.sleep(lease_module.LEASE_WAIT_S + 1.0)  # longer than a reconnect polls for
        return real_release(*args, **kwargs)

    monkeypatch.setattr(leases, "release", slow_release)
    tok = token()
    one = CallAudio(
        tracks={"inbound": bytes(3200)}, sample_rate=8000, stream_id="v-a", call_id="call-1"
    )
    two = CallAudio(
        tracks={"inbound": bytes(3200)}, sample_rate=8000, stream_id="v-b", call_id="call-1"
    )
    async with connect(harness.url(tok)) as ws:
        for line in messages(one, "mulaw"):
            await ws.send(line)
        ws.transport.abort()
    await asyncio.sleep(0.05)
    await play(harness.url(tok), messages(two, "mulaw"))  # refused, this raised ConnectionClosed
    await harness.settle()
    audio = [r for r in harness.records(key="v-a") if isinstance(r, records.AudioRecord)]
    assert sum(r.frames for r in audio) == 2 * 10, "both connections' frames, one call stream"
    assert harness.server.counters.auth_failures == 0


@pytest.mark.contention
async def test_a_reconnect_behind_a_backlog_the_old_socket_is_still_read_out_is_admitted(harness):
    """Issue 22: the old socket dropped with seconds of audio still unread (Kinesis slow, so
    the session reads slowly); its words, read after the newcomer came, were taken for talk and
    the reconnect was refused, losing the rest of the call. What counts is when they reached
    the kernel: before the newcomer. The reconnect waits for the old close, then continues."""
    writer = harness.server.audio_writer
    real_put = writer._put_records

    def slow_put(**kwargs):
        time.sleep(0.25)  # a slow Kinesis: the session pauses its socket behind it
        return real_put(**kwargs)

    writer._put_records = slow_put
    tok = token()
    one = CallAudio(
        tracks={"inbound": source(8000, "inbound")[: 8000 * 2 * 40]},  # 40 s sent at once
        sample_rate=8000,
        stream_id="b-1",
        call_id="call-1",
    )
    two = CallAudio(
        tracks={"inbound": bytes(8000)}, sample_rate=8000, stream_id="b-2", call_id="call-1"
    )
    ws = await connect(harness.url(tok))
    lines = list(messages(one, "mulaw"))

    async def send_all():
        for line in lines:
            await ws.send(line)

    sending = asyncio.create_task(send_all())
    await asyncio.sleep(0.5)
    ws.transport.close()  # the line drops: what was written still reaches us, then the FIN
    await play(harness.url(tok), messages(two, "mulaw"))  # Vobiz reconnects at once
    sending.cancel()
    await wait_for(lambda: not harness.server.sessions, 60)
    await harness.settle()
    audio = [r for r in harness.records(key="b-1") if isinstance(r, records.AudioRecord)]
    second = [r for r in audio if r.seq >= 2**32]
    assert second and sum(r.frames for r in second) == 25, "the reconnect's audio is all there"
    assert harness.server.counters.auth_failures == 0, "the reconnect was not refused"


@pytest.mark.contention
async def test_a_reconnect_on_the_same_token_continues_the_call_stream(harness):
    """Vobiz's maxRetries: same URL, a fresh start with a new streamId, the same call."""
    tok = token()
    one = CallAudio(
        tracks={"inbound": bytes(8000)}, sample_rate=8000, stream_id="v-1", call_id="call-1"
    )
    two = CallAudio(
        tracks={"inbound": bytes(8000)}, sample_rate=8000, stream_id="v-2", call_id="call-1"
    )
    async with connect(harness.url(tok)) as ws:
        for line in messages(one, "mulaw"):
            await ws.send(line)
        ws.transport.abort()  # the line drops: no close frame
    await asyncio.sleep(0.3)
    await play(harness.url(tok), messages(two, "mulaw"))
    await harness.settle()
    for _ in range(50):  # the registry is written in threads after the flush
        item = harness.registry.get("v-1")
        if item is not None and item.generation == 2 and item.state == "stopped":
            break
        await asyncio.sleep(0.1)
    found = harness.records()
    assert {r.stream_id for r in found} == {"v-1"}  # one call stream, one recording
    audio = [r for r in found if isinstance(r, records.AudioRecord)]
    assert sum(r.frames for r in audio) == 2 * 25  # every frame of both connections
    gaps = [r for r in found if isinstance(r, records.EventRecord) and r.name == "gap"]
    (gap,) = gaps
    assert gap.data["reason"] == "reconnect" and gap.data["start_sample"] == 4000
    assert 0.25 * 8000 <= gap.data["samples"] <= 5 * 8000  # the outage, by the clock
    later = [r for r in audio if r.seq >= 2**32]
    assert later and later[0].start_sample == 4000 + gap.data["samples"]
    assert item is not None and item.generation == 2 and item.vobiz_stream_id == "v-2"
    linked = harness.registry.get("v-2")
    assert linked is not None and linked.continues == "v-1"


async def test_a_token_for_another_call_cannot_stream(harness):
    audio = CallAudio(
        tracks={"inbound": bytes(3200)}, sample_rate=8000, stream_id="s-x", call_id="call-OTHER"
    )
    with pytest.raises(ConnectionClosed):
        async with connect(harness.url(token(call="call-1"))) as ws:
            for line in messages(audio, "mulaw"):
                await ws.send(line)
            await ws.recv()
    await harness.settle()
    assert harness.records() == []
    assert harness.registry.get("s-x") is None


async def test_bad_input_is_refused_precisely_and_the_session_goes_on(harness):
    audio = CallAudio(
        tracks={"inbound": source(8000, "inbound")[:3200]},
        sample_rate=8000,
        stream_id="s-bad",
        call_id="call-1",
    )
    lines = list(messages(audio, "mulaw"))
    start, media, stop = lines[0], lines[1:-1], lines[-1]
    bad_base64 = json.loads(media[0])
    bad_base64["media"]["payload"] = "%%%"
    async with connect(harness.url(token())) as ws:
        await ws.send('{"event": "media", "media": {"payload": "AAAA"}}')  # before start: held
        await ws.send(start)
        await ws.send("{not json")
        await ws.send('{"event": "mark", "x": 1}')
        await ws.send(json.dumps(bad_base64))
        await ws.send(b"\x00\x01binary")
        await ws.send(start)  # a second start
        for line in media:
            await ws.send(line)
        await ws.send(stop)
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    got, _ = track_audio(harness.records(key="s-bad"), "s-bad", "inbound")
    assert got[3:] == codecs.ulaw_encode(audio.tracks["inbound"])  # 3 bytes held from before start
    errors = harness.server.counters.errors
    assert errors["malformed_message"] == 1
    assert errors["invalid_audio"] == 1
    assert errors["out_of_order"] == 1
    assert errors["binary_frame"] == 1


#: Messages a peer may send mid-call that once ended it (issue 22), or that must never.
HOSTILE = [
    '{"event": {}}',
    '{"event": []}',
    '{"event": ["media"]}',
    '{"event": null}',
    "[]",
    '"media"',
    "1e999",
    '{"event": "media", "media": []}',
    '{"event": "media", "media": {"payload": {}, "track": []}}',
    '{"event": "start", "start": []}',
    '{"event": "dtmf", "dtmf": {"digit": {}}}',
    '{"event": "playedStream", "name": {"x": 1}}',
    '{"event": "clearedAudio", "streamId": []}',
    '{"event": "media", "sequenceNumber": "-1", "media": {"chunk": 1e300, "payload": "AA=="}}',
]


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_no_single_message_ends_a_call_and_the_recording_is_whole(harness, hostile):
    pcm = source(8000, "inbound")[:16000]
    audio = CallAudio(tracks={"inbound": pcm}, sample_rate=8000, stream_id="s-h", call_id="call-1")
    lines = list(messages(audio, "mulaw", with_stop=True))
    async with connect(harness.url(token())) as ws:
        for i, line in enumerate(lines[:-1]):
            await ws.send(line)
            if i == len(lines) // 2:
                await ws.send(hostile)
        await ws.send(lines[-1])
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    got, _ = track_audio(harness.records(key="s-h"), "s-h", "inbound")
    assert got == codecs.ulaw_encode(pcm), "every frame before and after the message"
    assert harness.registry.get("s-h").end_reason == "stop"
    assert sum(harness.server.counters.errors.values()) == 1, "the one message is counted"


async def test_a_message_the_core_fails_on_is_dropped_and_counted_never_the_call(
    harness, monkeypatch, caplog
):
    """A bug of ours on one message costs that message (counted, logged with its traceback),
    not the rest of the call: the session no longer closes 1011 on it."""
    from callstream.audio.assembler import Assembler

    real = Assembler.receive
    failures = []

    def receive(self, message, now=0.0):
        if getattr(message, "name", None) == "boom":
            failures.append(message)
            raise RuntimeError("a bug in the core")
        return real(self, message, now)

    monkeypatch.setattr(Assembler, "receive", receive)
    pcm = source(8000, "inbound")[:16000]
    audio = CallAudio(tracks={"inbound": pcm}, sample_rate=8000, stream_id="s-b", call_id="call-1")
    lines = list(messages(audio, "mulaw", with_stop=True))
    async with connect(harness.url(token())) as ws:
        for i, line in enumerate(lines[:-1]):
            await ws.send(line)
            if i == 10:
                for _ in range(50):
                    await ws.send('{"event": "playedStream", "name": "boom"}')
        await ws.send(lines[-1])
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    got, _ = track_audio(harness.records(key="s-b"), "s-b", "inbound")
    assert got == codecs.ulaw_encode(pcm)
    assert len(failures) == 50 and harness.server.counters.errors["internal_error"] == 50
    lines_logged = [r for r in caplog.records if "dropped: RuntimeError" in r.getMessage()]
    assert len(lines_logged) == 1 and lines_logged[0].exc_info is not None, "once, with traceback"


async def test_oversized_message_closes_1009_and_other_sessions_carry_on(harness):
    good = CallAudio(
        tracks={"inbound": source(8000, "inbound")[:16000]},
        sample_rate=8000,
        stream_id="s-good",
        call_id="call-1",
    )
    async with (
        connect(harness.url(token())) as ws_good,
        connect(harness.url(token()), max_size=None) as ws_bad,
    ):
        lines = list(messages(good, "mulaw"))
        await ws_good.send(lines[0])
        await ws_bad.send("x" * 70_000)
        with pytest.raises(ConnectionClosed) as closed:
            await ws_bad.recv()
        assert closed.value.rcvd.code == 1009
        for line in lines[1:]:
            await ws_good.send(line)
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    got, _ = track_audio(harness.records(key="s-good"), "s-good", "inbound")
    assert got == codecs.ulaw_encode(good.tracks["inbound"])


class FlakyPut:
    """Wraps moto's put_records: throttles a share of records and fails some whole calls."""

    def __init__(self, put, every=3):
        self.put = put
        self.calls = 0
        self.every = every

    def __call__(self, StreamName, Records):  # noqa: N803
        self.calls += 1
        if self.calls % 7 == 0:
            raise ConnectionError("connection reset")
        keep = [r for i, r in enumerate(Records) if (i + self.calls) % self.every]
        response = self.put(StreamName=StreamName, Records=keep) if keep else {"Records": []}
        results = iter(response["Records"])
        out = [
            next(results)
            if (i + self.calls) % self.every
            else {
                "ErrorCode": "ProvisionedThroughputExceededException",
                "ErrorMessage": "slow down",
            }
            for i in range(len(Records))
        ]
        return {"FailedRecordCount": sum("ErrorCode" in r for r in out), "Records": out}


async def test_throttling_and_partial_failures_lose_nothing(aws):
    flaky = FlakyPut(aws["kinesis"].put_records)

    class Kinesis:
        put_records = flaky

    server = build_server(
        settings(),
        tuning=tuning(),
        kinesis=Kinesis(),
        dynamodb=aws["dynamodb"],
        token_key=KEY,
        protect=LocalProtection(),
    )
    await server.start()
    try:
        calls = [
            CallAudio(
                tracks={"inbound": source(8000, "inbound")[: 8000 * 2 * 5]},
                sample_rate=8000,
                stream_id=f"s-flaky-{i}",
                call_id="call-1",
            )
            for i in range(4)
        ]
        await asyncio.gather(
            *(
                play(f"ws://127.0.0.1:{server.port}/v1/audio/{token()}", messages(c, "mulaw"))
                for c in calls
            )
        )
        await wait_for(lambda: not server.sessions)
        assert await server.audio_writer.drain(30) == 0
        assert server.audio_writer.stats.retries > 0
        found = [records.decode(d) for _, d in read_stream(aws["kinesis"], "AudioStream")]
        for call in calls:
            mine = [r for r in found if r.stream_id == call.stream_id]
            assert [r.seq for r in mine] == list(range(len(mine))), "in order, no duplicates"
            got, _ = track_audio(mine, call.stream_id, "inbound")
            assert got == codecs.ulaw_encode(call.tracks["inbound"])
    finally:
        await server.close()


@pytest.mark.contention
async def test_drain_ends_live_streams_and_loses_nothing(harness):
    audio = CallAudio(
        tracks={"inbound": source(8000, "inbound")[: 8000 * 2 * 4]},
        sample_rate=8000,
        stream_id="s-drain",
        call_id="call-1",
    )
    lines = list(messages(audio, "mulaw", with_stop=False))
    async with connect(harness.url(token())) as ws:
        for line in lines:
            await ws.send(line)
        await wait_for(lambda: any(s.live for s in harness.server.sessions.values()))
        assert harness.protection.protected
        lost = await harness.server.drain(deadline_s=7)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1001
    assert lost == 0
    found = harness.records(key="s-drain")
    assert found[-1].name == "close" and found[-1].data["reason"] == "drain"
    got, _ = track_audio(found, "s-drain", "inbound")
    assert got == codecs.ulaw_encode(audio.tracks["inbound"])
    item = harness.registry.get("s-drain")
    assert item is not None and item.end_reason == "drain"
    assert harness.protection.changes == [True, False]


def http_get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


async def test_health_is_200_then_503_while_draining(harness):
    port = harness.server.port
    assert await asyncio.to_thread(http_get, port, "/healthz") == 200
    assert await asyncio.to_thread(http_get, port, "/nope") == 404
    harness.server.draining = True
    assert await asyncio.to_thread(http_get, port, "/healthz") == 503
    harness.server.draining = False


def control(
    port: int, stream_id: str, action: str, body: dict, auth: str | None = None
) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {
        "Content-Type": "application/json",
        "Authorization": auth or "Bearer " + control_auth(stream_id, KEY),
    }
    try:
        conn.request("POST", f"/internal/streams/{stream_id}/{action}", json.dumps(body), headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def play_state(
    port: int, stream_id: str, play_id: str, auth: str | None = None
) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": auth or "Bearer " + control_auth(stream_id, KEY)}
    try:
        conn.request("GET", f"/internal/streams/{stream_id}/plays/{play_id}", headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.contention
async def test_talk_back_barge_in_and_checkpoints(harness):
    """prompt agent: greets, is cleared when the caller speaks, holds audio until clearedAudio."""
    speech = source(8000, "inbound")[7 * 16000 : 9 * 16000]  # the caller talks from ~7.1 s
    audio = CallAudio(
        tracks={"inbound": bytes(8000) + speech},  # the caller talks over the 1.5 s chime
        sample_rate=8000,
        stream_id="s-talk",
        call_id="call-1",
    )
    cleared = False
    lines = list(messages(audio, "mulaw", with_stop=False))
    received: list[dict] = []
    async with connect(harness.url(token(agent="prompt", bidirectional=True))) as ws:

        async def reader():
            async for frame in ws:
                received.append(json.loads(frame))

        reading = asyncio.create_task(reader())
        began = time.monotonic()
        for i, line in enumerate(lines):  # real time, by the clock: no drift on a slow box
            await ws.send(line)
            await asyncio.sleep(max(0.0, began + (i + 1) * 0.02 - time.monotonic()))
            if not cleared and any(f["event"] == "clearAudio" for f in received):
                n_before = len(received)
                await asyncio.sleep(0.3)  # hold: nothing may be sent until clearedAudio
                assert all(f["event"] != "playAudio" for f in received[n_before:])
                await ws.send(json.dumps({"event": "clearedAudio", "streamId": "s-talk"}))
                cleared = True
            if i == len(lines) - 10:
                status, body = await asyncio.to_thread(
                    control,
                    harness.server.control_port,
                    "s-talk",
                    "play",
                    {"audio_b64": base64.b64encode(bytes(3200)).decode(), "sample_rate": 8000},
                )
                assert status == 200 and (body["ms"], body["sent_ms"]) == (200, 0)
                play_id = body["play_id"]  # answered at once: the audio is not sent yet
        status, _ = await asyncio.to_thread(
            control, harness.server.control_port, "s-talk", "clear", {}, "Bearer wrong"
        )
        assert status == 403
        status, _ = await asyncio.to_thread(
            control, harness.server.control_port, "s-nope", "clear", {}
        )
        assert status == 404
        mark = f"{play_id}-played"  # the play's own checkpoint, after its last frame
        await wait_for(lambda: any(f.get("name") == mark for f in received))
        await ws.send(json.dumps({"event": "playedStream", "streamId": "s-talk", "name": mark}))
        port = harness.server.control_port  # asked from a thread: the loop answers it

        async def state(play: str, auth: str | None = None) -> tuple[int, dict]:
            return await asyncio.to_thread(play_state, port, "s-talk", play, auth)

        deadline = time.monotonic() + 10
        while (await state(play_id))[1]["state"] != "played":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert await state(play_id) == (
            200,
            {"play_id": play_id, "state": "played", "ms": 200, "sent_ms": 200},
        )
        assert (await state("p999"))[1]["error"] == "no_such_play"
        assert (await state(play_id, "Bearer x"))[0] == 403
        checkpoint = asyncio.create_task(
            asyncio.to_thread(
                control,
                harness.server.control_port,
                "s-talk",
                "checkpoint",
                {"name": "turn-9", "timeout_s": 5},
            )
        )
        await wait_for(lambda: any(f.get("name") == "turn-9" for f in received))
        await ws.send(json.dumps({"event": "playedStream", "streamId": "s-talk", "name": "turn-9"}))
        status, body = await checkpoint
        assert (status, body["result"]) == (200, "played")
        reading.cancel()
    events = [f["event"] for f in received]
    assert events[0] == "playAudio"  # the greeting
    first_clear = events.index("clearAudio")
    assert 0 < first_clear < len(events)
    assert "checkpoint" in events
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    found = harness.records(key="s-talk")
    assert any(isinstance(r, EventRecord) and r.name == "played_stream" for r in found)


async def test_an_agent_that_wants_audio_gets_every_frame_as_pcm(harness, monkeypatch):
    from stream_server import agents

    heard: list[tuple[str, bytes, int]] = []

    class Listener(agents.Agent):
        name = "listener"
        wants_audio = True

        async def on_audio(self, talk, track, pcm, start_sample):
            heard.append((track, pcm, start_sample))

    monkeypatch.setitem(agents.AGENTS, "listener", Listener)
    pcm = source(8000, "inbound")[:3200]
    audio = CallAudio(
        tracks={"inbound": pcm}, sample_rate=8000, stream_id="s-listen", call_id="call-1"
    )
    await play(harness.url(token(agent="listener", bidirectional=True)), messages(audio, "mulaw"))
    await wait_for(lambda: not harness.server.sessions)
    assert [s for _, _, s in heard] == [i * 160 for i in range(10)]
    assert b"".join(p for _, p, _ in heard) == codecs.ulaw_decode(codecs.ulaw_encode(pcm))


def mutations(lines: list[str], count: int, seed: int = 10):
    """Seeded mutations of real Vobiz messages: fields dropped, retyped, garbled; raw garbage."""
    import random

    rng = random.Random(seed)
    junk = [None, 0, -1, 2**70, 3.5, "", "x" * 300, [], {}, [1, {"a": None}], True]
    for _ in range(count):
        doc = json.loads(rng.choice(lines))
        roll = rng.random()
        if roll < 0.1:
            yield bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80))).decode("latin-1")
            continue
        target = doc.get("media") or doc.get("start") or doc
        if isinstance(target, dict) and target:
            key = rng.choice(list(target))
            if roll < 0.4:
                del target[key]
            else:
                target[key] = rng.choice(junk)
        if rng.random() < 0.2:
            doc["event"] = rng.choice(
                ["media", "start", "dtmf", "mark", 7, None]
            )  # not stop: it ends a call
        text = json.dumps(doc)
        if rng.random() < 0.05:
            text = text[: rng.randint(0, len(text))]
        yield text


async def test_fuzzed_messages_never_crash_a_session_nor_touch_another(harness):
    pcm = source(8000, "inbound")[: 8000 * 2 * 4]
    clean = CallAudio(
        tracks={"inbound": pcm}, sample_rate=8000, stream_id="s-clean", call_id="call-1"
    )
    fuzzed = CallAudio(
        tracks={"inbound": pcm}, sample_rate=8000, stream_id="s-fuzz", call_id="call-1"
    )
    fuzz_lines = list(messages(fuzzed, "mulaw"))
    async with (
        connect(harness.url(token())) as good,
        connect(harness.url(token()), max_size=None) as bad,
    ):
        clean_lines = list(messages(clean, "mulaw"))
        await bad.send(fuzz_lines[0])  # a real start, then 3,000 mutated messages
        sent = 0
        for i, text in enumerate(mutations(fuzz_lines[1:-1], 3_000)):
            if i % 15 == 0 and sent < len(clean_lines):
                await good.send(clean_lines[sent])
                sent += 1
            await bad.send(text)
        for line in clean_lines[sent:]:
            await good.send(line)
        await bad.send(json.dumps({"event": "stop", "streamId": "s-fuzz"}))
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    got, _ = track_audio(harness.records(key="s-clean"), "s-clean", "inbound")
    assert got == codecs.ulaw_encode(pcm), "the clean call is untouched"
    fuzz_records = harness.records(key="s-fuzz")
    assert fuzz_records[0].name == "start" and fuzz_records[-1].name in ("stop", "close")
    assert sum(harness.server.counters.errors.values()) > 500, (
        "the fuzzer produced refused messages"
    )


async def test_fragmented_messages_are_reassembled_and_bounded(harness):
    audio = CallAudio(
        tracks={"inbound": source(8000, "inbound")[:6400]},
        sample_rate=8000,
        stream_id="s-frag",
        call_id="call-1",
    )
    lines = list(messages(audio, "mulaw"))
    async with connect(harness.url(token())) as ws:
        for line in lines:  # every message in three fragments
            third = len(line) // 3
            await ws.send([line[:third], line[third : 2 * third], line[2 * third :]])
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    got, _ = track_audio(harness.records(key="s-frag"), "s-frag", "inbound")
    assert got == codecs.ulaw_encode(audio.tracks["inbound"])
    with pytest.raises(ConnectionClosed) as closed:
        async with connect(harness.url(token()), max_size=None) as ws:
            await ws.send(["x" * 40_000, "x" * 40_000])  # each part fits, the whole does not
            await ws.recv()
    assert closed.value.rcvd.code == 1009


async def test_a_start_the_stream_cannot_begin_with_is_refused_precisely_never_silently(harness):
    start = {
        "event": "start",
        "start": {
            "streamId": "s-opus",
            "callId": "call-1",
            "mediaFormat": {"encoding": "audio/opus", "sampleRate": 48000},
        },
    }
    with pytest.raises(ConnectionClosed) as closed:
        async with connect(harness.url(token())) as ws:
            await ws.send(json.dumps(start))
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    assert "audio/opus" in closed.value.rcvd.reason
    for _ in range(100):  # "requested" is written first, then the refusal: wait for that one
        item = harness.registry.get("s-opus")
        if item is not None and item.state != "requested":
            break
        await asyncio.sleep(0.1)
    assert item is not None and item.state == "failed"
    assert item.end_reason is not None and item.end_reason.startswith("start refused")
    await harness.settle()
    assert harness.records(key="s-opus") == []


async def test_a_start_without_a_rate_falls_back_to_what_was_requested(harness):
    start = {
        "event": "start",
        "start": {
            "streamId": "s-norate",
            "callId": "call-1",
            "tracks": "INBOUND",
            "mediaFormat": {"encoding": "audio/x-l16"},
        },
    }
    frame = base64.b64encode(bytes(960)).decode()
    async with connect(harness.url(token(content_type="audio/x-l16;rate=24000"))) as ws:
        await ws.send(json.dumps(start))
        for chunk in range(1, 51):
            media = {"track": "Inbound", "chunk": str(chunk), "payload": frame}
            await ws.send(
                json.dumps({"event": "media", "sequenceNumber": f"{chunk}.0", "media": media})
            )
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    audio = [r for r in harness.records(key="s-norate") if isinstance(r, records.AudioRecord)]
    assert {r.sample_rate for r in audio} == {24000} and sum(r.frames for r in audio) == 50


def raw_post(port: int, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """A request written by hand: headers a well-behaved client would never send."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: task\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer


@pytest.mark.parametrize(
    ("length", "authorized", "status"),
    [
        ("-1", False, 403),  # credential first: nothing is read for a stranger
        ("300000000", False, 403),
        (None, False, 403),
        ("-1", True, 400),
        ("12abc", True, 400),
        ("300000000", True, 413),
        (None, True, 411),
    ],
)
async def test_the_control_endpoint_reads_no_body_before_the_credential_and_its_length(
    harness, length, authorized, status
):
    headers = {"Content-Type": "application/json"}
    if length is not None:
        headers["Content-Length"] = length
    if authorized:
        headers["Authorization"] = "Bearer " + control_auth("s-any", KEY)
    # a body that never ends: a server reading it to EOF (or to its length) would hang here
    got, _ = await asyncio.to_thread(
        raw_post,
        harness.server.control_port,
        "/internal/streams/s-any/clear",
        headers,
        b"{" * 1000,
    )
    assert got == status


async def test_a_flood_of_refused_messages_costs_log_lines_per_interval_not_per_message(
    harness, caplog
):
    caplog.set_level("DEBUG")
    audio = CallAudio(tracks={"inbound": bytes(3200)}, sample_rate=8000, stream_id="s-flood")
    lines = list(messages(audio, "mulaw"))
    sent = 0
    async with connect(harness.url(token(call="call-0001"))) as ws:
        await ws.send(lines[0])
        for i in range(20_000):  # one-byte invalid messages, binary frames, unknown events
            junk: str | bytes = ("x", b"\x00", '{"event":"mark"}')[i % 3]
            await ws.send(junk)
            sent += len(junk)
        for line in lines[1:]:
            await ws.send(line)
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    ours = [r for r in caplog.records if not r.name.startswith("moto")]  # moto: the stand-in
    logged = sum(len(r.getMessage()) for r in ours)
    assert logged < 0.01 * sent, [r.getMessage()[:120] for r in ours]
    assert sum(r.frames for r in harness.records(key="s-flood") if isinstance(r, AudioRecord)) == 10
    refused = [r.getMessage() for r in ours if "more" in r.getMessage()]
    assert refused, "the counts are logged: what was held back is not lost"


async def test_forged_upgrades_cost_at_most_a_line_each_library_lines_included(harness, caplog):
    caplog.set_level("DEBUG")
    forged = token()[:-4] + "AAAA"

    def hammer() -> int:
        for _ in range(200):
            conn = http.client.HTTPConnection("127.0.0.1", harness.server.port, timeout=5)
            conn.request(
                "GET",
                f"/v1/audio/{forged}",
                headers={"Upgrade": "websocket", "Connection": "Upgrade",
                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"},
            )  # fmt: skip
            assert conn.getresponse().status == 403
            conn.close()
        return 200

    await asyncio.to_thread(hammer)
    await asyncio.sleep(0.2)
    assert harness.server.counters.auth_failures == 200  # every one counted in the metrics
    assert len(caplog.records) <= 10, [r.getMessage() for r in caplog.records][:12]


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def ping_flood(port: int, path: str, seconds: float = 30.0) -> tuple[int, bool]:
    """Upgrade by hand, then send pings as fast as the socket takes them, never reading.

    Goes on until the server hangs up (reset or closed), or ``seconds`` pass. A send that
    times out only means the server reads slower than we write (a slow machine): we keep on.
    Returns how many bytes of pings went out and whether the server hung up on us.
    """
    import base64 as b64
    import os
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and read nothing
    key = b64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0]
    mask = b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"p" * 125))
    ping = b"\x89" + bytes([0x80 | 125]) + mask + payload
    burst = ping * 64
    sent = 0
    sock.settimeout(0.5)
    deadline = time.monotonic() + seconds
    hung_up = False
    while time.monotonic() < deadline and not hung_up:
        try:
            sent += sock.send(burst)
        except TimeoutError:
            continue  # the server is behind on reading: still pinging
        except OSError:
            hung_up = True  # reset or broken pipe: it hung up on us
    if not hung_up:  # did it close? read what it sent until the end (or give up)
        sock.settimeout(5)
        try:
            while sock.recv(65536):
                pass
            hung_up = True
        except TimeoutError:
            hung_up = False  # still open: it never hung up
        except OSError:
            hung_up = True
    sock.close()
    return sent, hung_up


async def test_a_peer_that_never_reads_its_pongs_is_cut_off_with_bounded_memory(harness, caplog):
    from stream_server.transport import MAX_UNSENT_BYTES

    audio = CallAudio(tracks={"inbound": bytes(16000)}, sample_rate=8000, stream_id="s-ok")
    before = rss_bytes()
    flood = asyncio.create_task(
        asyncio.to_thread(ping_flood, harness.server.port, f"/v1/audio/{token()}")
    )
    await play(harness.url(token(call="call-0001")), messages(audio, "mulaw"))  # another call
    sent, hung_up = await flood
    grown = rss_bytes() - before
    assert hung_up, "the server hung up on a peer that does not read"
    assert "dropped a peer that does not read" in caplog.text
    assert sent > 4 * MAX_UNSENT_BYTES, "the flood went past the bound"
    assert grown < 60_000_000, f"the process grew by {grown / 1e6:.0f} MB"
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    ok = [r for r in harness.records(key="s-ok") if isinstance(r, AudioRecord)]
    assert sum(r.frames for r in ok) == 50, "the other call lost nothing"


async def test_a_socket_paused_behind_kinesis_longer_than_the_keepalive_keeps_its_call(aws):
    """Issue 22: back-pressure stops reading the socket; the keepalive then saw silence and
    closed the call we had paused ourselves. Here Kinesis holds a call 4 s, past a 1 s + 1 s
    keepalive; the peer (like the simulator) keeps sending and the call ends whole."""
    server = build_server(
        settings(max_unacked_ms=1000),
        tuning=tuning(keepalive_idle_s=1.0, keepalive_reply_s=1.0),
        kinesis=aws["kinesis"],
        dynamodb=aws["dynamodb"],
        token_key=KEY,
        protect=LocalProtection(),
    )
    real_put = server.audio_writer._put_records
    stalled = {"until": 0.0}

    def put(**kwargs):
        if stalled["until"] == 0.0:
            stalled["until"] = time.monotonic() + 4.0
        time.sleep(max(0.0, stalled["until"] - time.monotonic()))  # Kinesis is away 4 s
        return real_put(**kwargs)

    server.audio_writer._put_records = put
    await server.start()
    try:
        pcm = source(8000, "inbound")[: 8000 * 2 * 10]
        audio = CallAudio(tracks={"inbound": pcm}, sample_rate=8000, stream_id="s-ka", call_id="c")
        await play(
            f"ws://127.0.0.1:{server.port}/v1/audio/{token(call='c')}",
            messages(audio, "mulaw", with_stop=True),
        )
        await wait_for(lambda: not server.sessions, 30)
        assert await server.audio_writer.drain(30) == 0
        found = [records.decode(d) for _, d in read_stream(aws["kinesis"], "AudioStream")]
        got, _ = track_audio(found, "s-ka", "inbound")
        assert got == codecs.ulaw_encode(pcm), "the whole call"
        assert found[-1].name == "stop", "ended by the peer, not by our keepalive"
        assert server.audio_writer.stats.backpressure_s > 2.0, "the socket was paused"
    finally:
        await server.close()


async def test_a_peer_gone_silent_is_pinged_and_closed_with_the_reason(aws):
    """The keepalive still finds a dead line: a peer that sends a start, then nothing, and
    answers no ping (a raw socket, like a dead NAT) is closed 1011 and recorded so."""
    import base64 as b64
    import os
    import socket

    server = build_server(
        settings(),
        tuning=tuning(keepalive_idle_s=1.0, keepalive_reply_s=1.0),
        kinesis=aws["kinesis"],
        dynamodb=aws["dynamodb"],
        token_key=KEY,
        protect=LocalProtection(),
    )
    await server.start()
    try:
        audio = CallAudio(tracks={"inbound": bytes(320)}, sample_rate=8000, stream_id="s-dead")

        def silent_peer() -> bytes:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            key = b64.b64encode(os.urandom(16)).decode()
            path = f"/v1/audio/{token(call='call-0001')}"
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            start = next(iter(messages(audio, "mulaw"))).encode()
            mask = b"\x01\x02\x03\x04"
            body = bytes(b ^ mask[i % 4] for i, b in enumerate(start))
            sock.sendall(b"\x81" + bytes([0x80 | 126]) + len(body).to_bytes(2, "big") + mask + body)
            time.sleep(4.0)  # silent, answering nothing
            sock.settimeout(1)
            seen = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(4096):
                    seen += chunk
            sock.close()
            return seen

        import contextlib

        seen = await asyncio.to_thread(silent_peer)
        assert b"\x89" in seen, "it was pinged"
        assert b"keepalive ping timeout" in seen, "then closed with the reason"
        await wait_for(lambda: not server.sessions)
        item = DynamoRegistry(aws["dynamodb"], "Registry").get("s-dead")
        assert item is not None and item.end_reason == "keepalive"
    finally:
        await server.close()


class Throttled:
    """A Kinesis client whose PutRecords throttles a share of records, as Kinesis does."""

    def __init__(self, client, share: float, seed: int = 3):
        import random

        self.client = client
        self.share = share
        self.random = random.Random(seed)

    def put_records(self, StreamName, Records):  # noqa: N803 - boto3's names
        keep = [self.random.random() >= self.share for _ in Records]
        passed = [r for r, k in zip(Records, keep, strict=True) if k]
        answers = iter(
            self.client.put_records(StreamName=StreamName, Records=passed)["Records"]
            if passed
            else []
        )
        results = [
            next(answers) if k else {"ErrorCode": "ProvisionedThroughputExceededException"}
            for k in keep
        ]
        return {"FailedRecordCount": keep.count(False), "Records": results}


async def test_under_sustained_throttling_a_stream_holds_at_most_the_cap_outside_kinesis(aws):
    """80 % of records throttled while a call streams as fast as the socket allows: the audio
    a kill would lose (accepted, not yet in Kinesis) stays within CALLSTREAM_MAX_UNACKED_MS,
    because the session stops reading its socket; nothing is lost in the end."""
    server = build_server(
        settings(),
        tuning=tuning(),
        kinesis=Throttled(aws["kinesis"], share=0.8),
        dynamodb=aws["dynamodb"],
        token_key=KEY,
        protect=LocalProtection(),
    )
    await server.start()
    peak = 0.0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server.audio_writer.unacked_ms)
            await asyncio.sleep(0.002)

    sampler = asyncio.create_task(sample())
    try:
        audio = CallAudio(
            tracks={"inbound": source(8000, "inbound")[: 8000 * 2 * 20]},  # 20 s
            sample_rate=8000,
            stream_id="s-throttled",
            call_id="call-1",
        )
        await play(f"ws://127.0.0.1:{server.port}/v1/audio/{token()}", messages(audio, "mulaw"))
        await wait_for(lambda: not server.sessions, limit_s=60)
        assert await server.audio_writer.drain(60) == 0
    finally:
        stop.set()
        await sampler
        await server.close()
    cap = ServerSettings.model_fields["max_unacked_ms"].default
    assert 0 < peak <= cap, f"peak unacknowledged audio {peak} ms"
    assert server.audio_writer.stats.retries > 0 and server.audio_writer.stats.backpressure_s > 0
    found = [
        r
        for r in (records.decode(d) for _, d in read_stream(aws["kinesis"], "AudioStream"))
        if isinstance(r, AudioRecord) and r.stream_id == "s-throttled"
    ]
    assert sum(r.frames for r in found) == 1000, "every frame in Kinesis in the end"


async def test_a_dtmf_flood_on_one_socket_costs_a_few_records_and_loses_no_audio(harness):
    """600 digits in a moment between the audio frames (each used to be an event record on
    AudioStream, a bus event, a console row and an S3 object): the burst passes, one
    ``limited`` record tells of the rest, the close counts them, and the audio is whole."""
    audio = CallAudio(
        tracks={"inbound": source(8000, "inbound")[: 8000 * 2 * 2]},
        sample_rate=8000,
        stream_id="s-keys",
        call_id="call-1",
    )
    lines = list(messages(audio, "mulaw"))
    flood = [
        json.dumps({"event": "dtmf", "dtmf": {"digit": str(i % 10), "track": "inbound"}})
        for i in range(600)
    ]
    await play(harness.url(token()), [lines[0], lines[1], *flood, *lines[2:]])
    await wait_for(lambda: not harness.server.sessions)
    await harness.settle()
    found = harness.records(key=audio.stream_id)
    named = [r.name for r in found if isinstance(r, EventRecord)]
    assert named.count("dtmf") == 20 and named.count("limited") == 1
    assert len(found) < 40, "a few records for 600 digits"
    (close,) = [r for r in found if isinstance(r, EventRecord) and r.name == "close"]
    assert close.data["dtmf_dropped"] == 580
    got, _ = track_audio(found, audio.stream_id, "inbound")
    assert got == codecs.ulaw_encode(audio.tracks["inbound"])


async def test_a_flood_on_a_slow_agent_keeps_a_bounded_backlog(harness, monkeypatch):
    """Every frame an audio-wanting agent hears queues a hook; an agent slower than the peer
    gets at most MAX_AGENT_BACKLOG of them (the rest counted), and its end-of-stream hook still
    runs. (Key presses no longer flood it: the audio core holds them to a rate.)"""
    from stream_server import agents
    from stream_server.session import MAX_AGENT_BACKLOG

    seen: list[str] = []
    gate = asyncio.Event()

    class Slow(agents.Agent):
        name = "slow"
        wants_audio = True

        async def on_audio(self, talk, track, pcm, start_sample):
            await gate.wait()
            seen.append("audio")

        async def on_stop(self, talk, reason):
            seen.append(f"stop:{reason}")

    monkeypatch.setitem(agents.AGENTS, "slow", Slow)
    audio = CallAudio(
        tracks={"inbound": bytes(320 * 800)},
        sample_rate=8000,
        stream_id="s-flood",
        call_id="call-1",
    )
    lines = list(messages(audio, "mulaw"))
    async with connect(harness.url(token(agent="slow", bidirectional=True))) as ws:
        for line in lines:  # 800 frames at once: 16 s of audio in a moment
            await ws.send(line)
        await wait_for(
            lambda: any(
                s.counters.errors.get("agent_backlog") for s in harness.server.sessions.values()
            )
        )
        (session,) = harness.server.sessions.values()
        peak = session._agent_queue.qsize()
        gate.set()
    deadline = time.monotonic() + 60
    while harness.server.sessions:  # what arrives later is bounded the same way
        assert time.monotonic() < deadline, "the session ended"
        peak = max(peak, session._agent_queue.qsize())
        await asyncio.sleep(0.005)
    assert peak <= MAX_AGENT_BACKLOG + 1  # + the end-of-stream hook
    assert "audio" in seen, "the agent heard audio"
    assert seen[-1] == "stop:close", "the end-of-stream hook is never dropped"
    assert harness.server.counters.errors["agent_backlog"] > 0
