"""store_recording with real Kinesis events built from the tapes, on moto S3/DynamoDB/EventBridge."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import boto3
import numpy as np
import pytest

from callstream import wiring
from callstream.adapters.dynamodb import DynamoRegistry
from callstream.audio import codecs, records
from callstream.audio.assembler import Assembler
from callstream.audio.events import records as records_of
from callstream.audio.protocol import parse_message
from callstream.vocabulary import AudioLimits
from local.kinesis_events import kinesis_event
from local.lambdas import invoke
from local.vobiz_frames import CallAudio, messages, read_wav

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "samples"
TAPES = ROOT / "events" / "tapes"


@pytest.fixture
def bucket(aws, monkeypatch):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="recordings")
    boto3.client("events", region_name="us-east-1").create_event_bus(Name="callstream")
    for name, value in {
        "RECORDINGS_BUCKET": "recordings",
        "REGISTRY_TABLE": "Registry",
        "TRANSCRIPTS_TABLE": "Transcripts",
        "EVENT_BUS": "callstream",
    }.items():
        monkeypatch.setenv(f"CALLSTREAM_{name}", value)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "callstream")
    wiring.reset()
    return s3


def stream_records(lines) -> list[tuple[str, bytes]]:
    asm = Assembler(limits=AudioLimits())
    out = []
    for line in lines:
        asm.receive(parse_message(line))
        out += [(r.stream_id, records.encode(r)) for r in records_of(asm.events_ready())]
    asm.close("socket closed")
    out += [(r.stream_id, records.encode(r)) for r in records_of(asm.events_ready())]
    return out


def read_recording(s3, stream_id: str, call: str) -> tuple[np.ndarray, int, dict]:
    body = s3.get_object(Bucket="recordings", Key=f"recordings/{call}/{stream_id}.wav")[
        "Body"
    ].read()
    with wave.open(io.BytesIO(body)) as wav:
        channels, rate = wav.getnchannels(), wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, channels)
    sidecar = json.loads(
        s3.get_object(Bucket="recordings", Key=f"recordings/{call}/{stream_id}.json")["Body"].read()
    )
    return samples, rate, sidecar


@pytest.mark.parametrize(
    ("tape", "rate", "codec"),
    [("support_call_mulaw_8k", 8000, "mulaw"), ("support_call_l16_16k", 16000, "l16")],
)
def test_the_recording_is_the_source_audio_in_stereo(bucket, aws, tape, rate, codec):
    payloads = stream_records((TAPES / f"{tape}.jsonl").read_text().splitlines())
    for i in range(0, len(payloads), 100):  # batches as Lambda would receive them
        assert invoke("store_recording", kinesis_event(payloads[i : i + 100])) == {
            "batchItemFailures": []
        }
    stream_id = payloads[0][0]
    samples, found_rate, sidecar = read_recording(bucket, stream_id, "tape-call")
    assert found_rate == rate and samples.shape[1] == 2
    for column, track in enumerate(("inbound", "outbound")):
        source, _ = read_wav(AUDIO / f"support_call_{rate}_{track}.wav")
        if codec == "mulaw":
            source = codecs.ulaw_decode(codecs.ulaw_encode(source))
        expected = np.frombuffer(source, dtype="<i2")
        assert np.array_equal(samples[: len(expected), column], expected)
        assert not samples[len(expected) :, column].any()  # the padded last frame is silence
    assert (
        sidecar["channels"] == ["inbound", "outbound"] and sidecar["frames"] == 2 * 2003
    )  # 40.048 s: the last frame padded
    assert sidecar["end"]["name"] == "close"  # Vobiz ends a stream by closing the socket
    item = DynamoRegistry(aws["dynamodb"], "Registry").get(stream_id)
    assert item is not None and item.recording_key == f"recordings/tape-call/{stream_id}.wav"


def test_gaps_become_silence_of_the_right_length(bucket):
    pcm, _ = read_wav(AUDIO / "support_call_8000_inbound.wav")
    pcm = pcm[: 8000 * 2 * 4]
    audio = CallAudio(
        tracks={"inbound": pcm},
        sample_rate=8000,
        stream_id="s-gap",
        call_id="c-gap",
        drop=frozenset({("inbound", c) for c in range(100, 110)}),
    )
    payloads = stream_records(messages(audio, "mulaw"))
    assert invoke("store_recording", kinesis_event(payloads)) == {"batchItemFailures": []}
    samples, _, sidecar = read_recording(bucket, "s-gap", "c-gap")
    expected = np.frombuffer(codecs.ulaw_decode(codecs.ulaw_encode(pcm)), dtype="<i2").copy()
    expected[99 * 160 : 109 * 160] = 0
    assert samples.shape == (len(expected), 1)
    assert np.array_equal(samples[:, 0], expected)
    assert sidecar["silence_samples"] == {"inbound": 1600}
    assert [g["frames"] for g in sidecar["gaps"]] == [10]


def test_redelivery_changes_nothing(bucket):
    pcm, _ = read_wav(AUDIO / "support_call_8000_outbound.wav")
    audio = CallAudio(
        tracks={"outbound": pcm[: 8000 * 2 * 3]},
        sample_rate=8000,
        stream_id="s-dup",
        call_id="c-dup",
    )
    payloads = stream_records(messages(audio, "mulaw"))
    invoke("store_recording", kinesis_event(payloads))
    first = bucket.get_object(Bucket="recordings", Key="recordings/c-dup/s-dup.wav")["Body"].read()
    keys = sorted(o["Key"] for o in bucket.list_objects_v2(Bucket="recordings")["Contents"])
    invoke("store_recording", kinesis_event(payloads[3:] + payloads))  # redelivered, partly twice
    assert (
        bucket.get_object(Bucket="recordings", Key="recordings/c-dup/s-dup.wav")["Body"].read()
        == first
    )
    assert sorted(o["Key"] for o in bucket.list_objects_v2(Bucket="recordings")["Contents"]) == keys


def test_a_bad_record_is_kept_aside_and_an_early_end_waits_for_its_audio(bucket):
    pcm, _ = read_wav(AUDIO / "support_call_8000_outbound.wav")
    audio = CallAudio(
        tracks={"outbound": pcm[: 8000 * 2 * 3]},
        sample_rate=8000,
        stream_id="s-bad",
        call_id="c-bad",
    )
    payloads = stream_records(messages(audio, "mulaw"))
    garbage = ("s-bad", b"not a callstream record")
    # the stop arrives while one audio record is missing (it failed earlier): the end must fail too
    missing = payloads[2]
    batch = [payloads[0], payloads[1], garbage, *payloads[3:]]
    event = kinesis_event(batch)
    answer = invoke("store_recording", event)
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    ids = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    # the garbage is kept aside, not failed (it would hold up the shard, then sink the batch)
    assert failed == {ids[-1]}, "only the end fails: it waits for its missing audio"
    kept = bucket.get_object(Bucket="recordings", Key=f"quarantine/AudioStream/{ids[2]}.bin")
    assert kept["Body"].read() == garbage[1]
    # the redelivery (from the first failure on) with the missing record completes the recording
    assert invoke("store_recording", kinesis_event([missing, *payloads[3:]])) == {
        "batchItemFailures": []
    }
    samples, _, _ = read_recording(bucket, "s-bad", "c-bad")
    assert np.array_equal(
        samples[:, 0],
        np.frombuffer(codecs.ulaw_decode(codecs.ulaw_encode(pcm[: 8000 * 2 * 3])), dtype="<i2"),
    )


def test_long_recordings_are_written_in_parts(bucket, monkeypatch):
    from callstream.adapters import s3_recordings

    monkeypatch.setattr(s3_recordings, "PART_BYTES", 5 * 1024 * 1024)
    store = s3_recordings.S3Recordings(bucket, "recordings")
    chunks = [bytes([i]) * (1024 * 1024) for i in range(12)]
    assert (
        store.write_streaming("big.bin", iter(chunks), "application/octet-stream")
        == 12 * 1024 * 1024
    )
    assert store.get("big.bin") == b"".join(chunks)


def test_a_swept_stream_is_recorded_from_what_reached_kinesis(bucket):
    from callstream.analytics.sweeper import SWEEP_SEQ

    pcm, _ = read_wav(AUDIO / "support_call_8000_inbound.wav")
    audio = CallAudio(
        tracks={"inbound": pcm[: 8000 * 2 * 3]},
        sample_rate=8000,
        stream_id="s-crash",
        call_id="c-crash",
    )
    payloads = stream_records(messages(audio, "mulaw"))[
        :-2
    ]  # the task died: no last record, no end
    end = records.EventRecord(
        stream_id="s-crash",
        call_uuid="c-crash",
        seq=SWEEP_SEQ,
        name="close",
        at_ms=0.0,
        data={"reason": "swept"},
    )
    assert invoke(
        "store_recording", kinesis_event([*payloads, ("s-crash", records.encode(end))])
    ) == {"batchItemFailures": []}
    samples, _, sidecar = read_recording(bucket, "s-crash", "c-crash")
    stored = b"".join(
        r.payload for _, d in payloads if isinstance(r := records.decode(d), records.AudioRecord)
    )
    assert np.array_equal(samples[:, 0], np.frombuffer(codecs.ulaw_decode(stored), dtype="<i2"))
    assert sidecar["end"] == {"name": "close", "reason": "swept"}
