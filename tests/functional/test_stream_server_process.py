"""`python -m stream_server` as a real process against a moto server: SIGTERM drains, exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from callstream import codecs, records
from callstream.records import AudioRecord, EventRecord
from callstream.tokens import TokenClaims, new_jti, sign_token
from local.vobiz_frames import CallAudio, messages
from tests.conftest import read_stream

ROOT = Path(__file__).resolve().parents[2]
KEY = "process-test-key-0123456789abcdef"


@pytest.fixture
def moto_server(aws_env):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    # moto's state is per process: start from nothing, whatever an earlier test left
    urllib.request.urlopen(
        urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    ).close()
    kinesis = boto3.client("kinesis", endpoint_url=endpoint)
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
    for stream in ("AudioStream", "UtteranceStream"):
        kinesis.create_stream(StreamName=stream, ShardCount=1)
    for table, key in (("Registry", "stream_id"), ("Nonces", "pk")):
        dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        )
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="recordings")
    boto3.client("events", endpoint_url=endpoint).create_event_bus(Name="callstream")
    yield endpoint, kinesis
    server.stop()


def start_server(endpoint: str, drain_deadline_s: str = "8") -> tuple[subprocess.Popen[str], int]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "layers" / "shared"), str(ROOT / "services"), str(ROOT)]
        ),
        "AWS_ENDPOINT_URL": endpoint,
        "CALLSTREAM_AUDIO_STREAM": "AudioStream",
        "CALLSTREAM_UTTERANCE_STREAM": "UtteranceStream",
        "CALLSTREAM_REGISTRY_TABLE": "Registry",
        "CALLSTREAM_NONCE_TABLE": "Nonces",
        "CALLSTREAM_TOKEN_KEY": KEY,
        "CALLSTREAM_HOST": "127.0.0.1",
        "CALLSTREAM_PORT": "0",
        "CALLSTREAM_CONTROL_PORT": "0",
        "CALLSTREAM_DRAIN_DEADLINE_S": drain_deadline_s,
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "stream_server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "ready on port" in line:
            # keep draining its output so the pipe never fills and blocks the server
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, int(line.rsplit(" ", 1)[1])
    raise AssertionError(f"server did not start (exit {process.wait()})")


async def caller(port: int, audio: CallAudio, stop_after: asyncio.Event | None) -> int:
    """Send frames at 50/s; after ``stop_after`` is set, send stop. Returns frames sent."""
    tok = sign_token(
        TokenClaims(jti=new_jti(), call_uuid="call-1", exp=int(time.time()) + 600), KEY.encode()
    )
    lines = list(messages(audio, "mulaw", with_stop=False))
    sent = 0
    try:
        async with connect(f"ws://127.0.0.1:{port}/v1/audio/{tok}") as ws:
            await ws.send(lines[0])
            for line in lines[1:]:
                if stop_after is not None and stop_after.is_set():
                    await ws.send('{"event": "stop"}')
                    return sent
                await ws.send(line)
                sent += 1
                await asyncio.sleep(0.02)
            await ws.wait_closed()
    except ConnectionClosed:
        pass
    return sent


TONE = bytes(range(0, 256, 2)) * 500  # 64,000 bytes = 4 s at 8 kHz of a ramp signal


@pytest.mark.slow
async def test_sigterm_drains_50_live_calls_and_exits_zero(moto_server):
    endpoint, kinesis = moto_server
    # moto runs in this test process too: give the callers time to end their calls
    process, port = await asyncio.to_thread(start_server, endpoint, "15")
    try:
        calls = [
            CallAudio(
                tracks={"inbound": TONE * 6}, sample_rate=8000, stream_id=f"s-{i}", call_id="call-1"
            )
            for i in range(50)
        ]
        ending = asyncio.Event()
        tasks = [
            asyncio.create_task(caller(port, c, ending if i < 25 else None))
            for i, c in enumerate(calls)
        ]
        await asyncio.sleep(1.5)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        ending.set()  # two calls end by themselves during the drain, two outlive the deadline
        sent = await asyncio.gather(*tasks)
        code = await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
    assert code == 0
    found = [records.decode(d) for _, d in read_stream(kinesis, "AudioStream")]
    for i, call in enumerate(calls):
        mine = [r for r in found if r.stream_id == call.stream_id]
        end = mine[-1]
        assert isinstance(end, EventRecord)
        audio = b"".join(r.payload for r in mine if isinstance(r, AudioRecord))
        frames = sum(r.frames for r in mine if isinstance(r, AudioRecord))
        assert end.data["frames"] == frames, "every frame the server took is in Kinesis"
        expected = codecs.ulaw_encode(call.tracks["inbound"])
        if i < 25:
            assert (end.name, frames) == ("stop", sent[i]), (
                f"{call.stream_id}: {end.name} {end.data}"
            )
            assert audio == expected[: 160 * sent[i]]
        else:
            assert end.name == "close" and end.data["reason"] == "drain"
            assert audio == expected[: len(audio)] and frames >= sent[i] - 5


@pytest.mark.slow
async def test_sigkill_loses_at_most_the_unwritten_second_and_the_sweeper_records_the_rest(
    moto_server, monkeypatch
):
    """20 live calls, the server is SIGKILLed: the sweeper ends them, their recordings hold every
    frame that reached Kinesis, and what was lost is at most about a second per call."""
    from callstream import recording, settings, sweeper
    from callstream.adapters import clients
    from local.kinesis_events import kinesis_event
    from local.lambdas import invoke

    endpoint, kinesis = moto_server
    process, port = await asyncio.to_thread(start_server, endpoint)
    calls = [
        CallAudio(
            tracks={"inbound": TONE * 4}, sample_rate=8000, stream_id=f"k-{i}", call_id="call-1"
        )
        for i in range(20)
    ]
    tasks = [asyncio.create_task(caller(port, c, None)) for c in calls]
    await asyncio.sleep(3.0)
    process.kill()  # SIGKILL: no drain, no flush
    sent = await asyncio.gather(*tasks)
    await asyncio.to_thread(process.wait, 10)
    assert process.stdout is not None
    process.stdout.close()

    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "CALLSTREAM_REGISTRY_TABLE": "Registry",
        "CALLSTREAM_AUDIO_STREAM": "AudioStream",
        "CALLSTREAM_RECORDINGS_BUCKET": "recordings",
        "CALLSTREAM_TRANSCRIPTS_TABLE": "Transcripts",
        "CALLSTREAM_EVENT_BUS": "callstream",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "callstream",
    }.items():
        monkeypatch.setenv(name, value)
    settings.reset()
    clients.reset()
    sweeper.services.cache_clear()
    recording.services.cache_clear()
    swept = await asyncio.to_thread(sweeper.sweep, sweeper.services())
    assert sorted(swept) == sorted(c.stream_id for c in calls)
    data = [(k, d) for k, d in read_stream(kinesis, "AudioStream")]
    assert (await asyncio.to_thread(invoke, "store_recording", kinesis_event(data)))[
        "batchItemFailures"
    ] == []
    s3 = boto3.client("s3", endpoint_url=endpoint)
    lost = []
    for call, frames_sent in zip(calls, sent, strict=True):
        in_kinesis = b"".join(
            r.payload
            for _, d in data
            if isinstance(r := records.decode(d), AudioRecord) and r.stream_id == call.stream_id
        )
        wav = s3.get_object(Bucket="recordings", Key=f"recordings/call-1/{call.stream_id}.wav")[
            "Body"
        ].read()
        assert wav[44:] == codecs.ulaw_decode(in_kinesis), (
            "the recording holds everything that reached Kinesis"
        )
        assert in_kinesis == codecs.ulaw_encode(call.tracks["inbound"])[: len(in_kinesis)]
        lost.append(frames_sent - len(in_kinesis) // 160)
    assert max(lost) <= 60, (
        f"lost frames per call {lost}: more than ~1 s (50 frames) plus in flight"
    )
    print(
        f"SIGKILL loss per call (frames of 20 ms): max {max(lost)}, mean {sum(lost) / len(lost):.1f}"
    )
