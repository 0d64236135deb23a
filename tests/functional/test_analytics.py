"""The analytics consumers end to end on moto: tape → records → recording, transcripts,
sentiment, summary, with real Kinesis and EventBridge event shapes and the local backends."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import msgspec
import pytest

from bench.transcript_accuracy import word_error_rate
from callstream import wiring
from callstream.adapters.transcribe_aws import AwsTranscriber
from callstream.audio import records
from callstream.audio.assembler import Assembler
from callstream.audio.continuation import UTTERANCE_STRIDE, Continuation
from callstream.audio.protocol import parse_message
from callstream.audio.vad import Segmenter
from callstream.exceptions import UpstreamError
from callstream.vocabulary import AudioLimits
from local.aws import table_request
from local.kinesis_events import kinesis_event
from local.lambdas import invoke
from tests.conftest import TABLES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = json.loads((ROOT / "samples" / "support_call.json").read_text())["utterances"]


class Bus:
    """Reads what was published on the callstream bus (a rule → SQS tap), as Lambda gets it."""

    def __init__(self):
        events = boto3.client("events", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        events.create_event_bus(Name="callstream")
        self.url = self.sqs.create_queue(QueueName="tap")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name="tap",
            EventBusName="callstream",
            EventPattern=json.dumps({"source": ["callstream"]}),
        )
        events.put_targets(Rule="tap", EventBusName="callstream", Targets=[{"Id": "q", "Arn": arn}])

    def drain(self) -> list[dict]:
        out = []
        while batch := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            out += [json.loads(m["Body"]) for m in batch]
            for m in batch:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return out


@pytest.fixture
def stack(aws, monkeypatch):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="recordings")
    aws["dynamodb"].create_table(**table_request("Transcripts", TABLES["TranscriptsTable"]))
    bus = Bus()
    env = {
        "RECORDINGS_BUCKET": "recordings",
        "REGISTRY_TABLE": "Registry",
        "TRANSCRIPTS_TABLE": "Transcripts",
        "EVENT_BUS": "callstream",
        "TRANSCRIBER": "local",
        "SENTIMENT": "local",
    }
    for name, value in env.items():
        monkeypatch.setenv(f"CALLSTREAM_{name}", value)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "callstream")
    wiring.reset()
    return bus


def take(events, audio: list, utterances: list) -> None:
    """What the core hands the session to write, as (partition key, bytes), per stream."""
    for event in events:
        if event.write is not None:
            to = audio if event.write.stream == "audio" else utterances
            to.append((event.record.stream_id, event.write.data))


def tape_records(name: str):
    cfg = AudioLimits()
    asm = Assembler(limits=cfg, segmenter_factory=lambda r, t: Segmenter(r, t, cfg))
    audio, utterances = [], []
    for line in (ROOT / "events" / "tapes" / f"{name}.jsonl").read_text().splitlines():
        asm.receive(parse_message(line))
        take(asm.events_ready(), audio, utterances)
    asm.close("socket closed")  # Vobiz sends no stop: the socket close ends the stream
    take(asm.events_ready(), audio, utterances)
    return audio, utterances


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["detail-type"] == kind]


@pytest.mark.slow
def test_tape_to_summary(stack):
    audio, utterances = tape_records("support_call_l16_16k")
    early = {"detail-type": "Sentiment Scored", "source": "callstream"} | {
        "detail": {"stream_id": "tape-support_call_l16_16k", "call_uuid": "tape-call"}
    }
    assert invoke("finalize_call", early)["waiting"] == "the recording"  # a score came first
    assert invoke("store_recording", kinesis_event(audio)) == {"batchItemFailures": []}
    ready = of_type(stack.drain(), "Recording Ready")
    assert len(ready) == 1
    waiting = invoke("finalize_call", ready[0])  # transcripts are still on their way
    assert waiting["waiting"] == "0 of 8 utterances scored"

    event = kinesis_event(utterances, stream="UtteranceStream")
    assert invoke("transcribe_utterance", event) == {"batchItemFailures": []}
    transcribed = of_type(stack.drain(), "Utterance Transcribed")
    assert len(transcribed) == 8
    assert invoke("transcribe_utterance", event) == {
        "batchItemFailures": []
    }  # redelivered: nothing new
    assert stack.drain() == []

    # As the bus delivers them: each score, then finalize_call on its Sentiment Scored. The
    # last one completes the call, with no retry of the Recording Ready waited for.
    published, results = [], []
    for e in transcribed:
        invoke("analyze_sentiment", e)
        new = stack.drain()
        published += new
        results += [invoke("finalize_call", s) for s in of_type(new, "Sentiment Scored")]
    after = stack.drain()  # what the last finalize_call published
    invoke("analyze_sentiment", transcribed[0])  # redelivered: nothing new
    assert stack.drain() == []
    assert len(of_type(published, "Sentiment Scored")) == 8
    (alert,) = of_type(published, "Sentiment Alert")
    assert "frustrated" in alert["detail"]["text"]
    assert [r.get("waiting") for r in results[:-1]] == [
        f"{n} of 8 utterances scored" for n in range(1, 8)
    ]
    result = results[-1]
    assert [
        (u["track"], u["start_s"] < s["end_s"] and u["end_s"] > s["start_s"])
        for u, s in zip(result["utterances"], SCRIPT, strict=True)
    ] == [(s["track"], True) for s in SCRIPT]
    wer = word_error_rate([s["text"] for s in SCRIPT], [u["text"] for u in result["utterances"]])
    assert wer < 0.2, f"WER {wer:.1%} (bench: 13.7 % at 16 kHz)"
    agree = sum(
        u["sentiment"] == s["sentiment"] for u, s in zip(result["utterances"], SCRIPT, strict=True)
    )
    assert agree >= 5
    assert set(result["talk_time_s"]) == {"inbound", "outbound"} and result[
        "duration_s"
    ] == pytest.approx(40.06, abs=0.05)
    (completed,) = of_type(after, "Call Completed")
    assert completed["detail"]["utterances"] == 8
    # the digest is made of the call's own lines: the caller's first, the agent's promise
    digest = result["digest"]
    heard = {u["text"] for u in result["utterances"]}
    assert digest["source"] == "extractive" and digest["intent"] == result["utterances"][1]["text"]
    assert digest["outcome"] in " ".join(heard) and len(digest["action_items"]) >= 1
    assert completed["detail"]["digest"] == digest
    assert invoke("finalize_call", ready[0]) == result  # a retry: the same summary


def reconnected_tape_records(name: str, cut: int):
    """The tape as Vobiz reconnecting after line ``cut``: two connections, one call stream.

    The second connection has its own ``start`` (a new streamId) and numbers its media from 1,
    as Vobiz does; it continues the first's timeline with no outage.
    """
    cfg = AudioLimits()
    lines = (ROOT / "events" / "tapes" / f"{name}.jsonl").read_text().splitlines()
    out: list[tuple[str, bytes]] = []
    said: list[tuple[str, bytes]] = []

    def play(asm: Assembler, messages: list[str]) -> None:
        for line in messages:
            asm.receive(parse_message(line))
        asm.close("socket closed")
        take(asm.events_ready(), out, said)

    first = Assembler(limits=cfg, segmenter_factory=lambda r, t: Segmenter(r, t, cfg))
    play(first, lines[:cut])
    totals = first.stream_totals
    start = json.loads(lines[0])
    start["start"]["streamId"] = "vobiz-second"
    again = [json.dumps(start)]
    for n, line in enumerate(lines[cut:], start=1):
        media = json.loads(line)
        media["sequenceNumber"], media["streamId"] = n, "vobiz-second"
        media["media"]["chunk"] = (n + 1) // 2  # two tracks a chunk, from 1 again
        again.append(json.dumps(media))
    second = Assembler(
        limits=cfg,
        segmenter_factory=lambda r, t: Segmenter(r, t, cfg),
        continuation=Continuation(
            stream_id=str(first.stream_id),
            generation=2,
            position_ms=first.position_ms,
            outage_ms=0.0,
            previous_stream_id=first.vobiz_stream_id,
            frames=totals.frames,
            utterances=totals.utterances,
        ),
    )
    play(second, again)
    return out, said, totals.utterances


@pytest.mark.slow
def test_a_reconnected_call_is_transcribed_and_summarised_whole(stack):
    """Vobiz's reconnect is one call stream: its utterances are not taken for the first
    connection's (they used to share numbers, and the transcriber skipped them as done), and
    the summary waits for every connection's utterances, not the last connection's count."""
    audio, said, before = reconnected_tape_records("support_call_l16_16k", cut=2001)
    assert 0 < before < len(said), "utterances on both sides of the reconnect"
    assert invoke("store_recording", kinesis_event(audio)) == {"batchItemFailures": []}
    ready = of_type(stack.drain(), "Recording Ready")
    assert [r["detail"]["generation"] for r in ready] == [1, 2]

    event = kinesis_event(said, stream="UtteranceStream")
    assert invoke("transcribe_utterance", event) == {"batchItemFailures": []}
    transcribed = of_type(stack.drain(), "Utterance Transcribed")
    assert len(transcribed) == len(said), "every utterance of both connections is transcribed"
    keys = sorted(e["detail"]["index"] for e in transcribed)
    assert keys[before:] == [k for k in keys if k >= UTTERANCE_STRIDE]

    late = [e for e in transcribed if e["detail"]["index"] < UTTERANCE_STRIDE]
    for e in transcribed:
        if e not in late:
            invoke("analyze_sentiment", e)
    stack.drain()
    waiting = invoke("finalize_call", ready[1])  # the first connection's are not scored yet
    assert waiting["waiting"] == f"{len(said) - before} of {len(said)} utterances scored"
    for e in late:
        invoke("analyze_sentiment", e)
    stack.drain()
    whole = invoke("finalize_call", ready[1])
    assert len(whole["utterances"]) == len(said) and whole["generation"] == 2
    assert whole["duration_s"] == pytest.approx(40.06, abs=0.05)
    (completed,) = of_type(stack.drain(), "Call Completed")
    assert completed["detail"]["generation"] == 2
    # The first connection's end, redelivered late, neither shortens the recording nor
    # announces the call a second time.
    assert invoke("finalize_call", ready[0])["superseded_by_generation"] == 2
    first_end = next(
        (key, data)
        for key, data in audio
        if isinstance(r := records.decode(data), records.EventRecord) and r.name == "close"
    )
    assert invoke("store_recording", kinesis_event([first_end])) == {"batchItemFailures": []}
    # (its session event is on the bus again: at least once, keyed on stream_id + seq)
    again = stack.drain()
    assert [e["detail-type"] for e in again] == ["Session Event"]
    assert again[0]["detail"]["seq"] == records.decode(first_end[1]).seq
    s3 = boto3.client("s3", region_name="us-east-1")
    sidecar = json.loads(
        s3.get_object(Bucket="recordings", Key=ready[1]["detail"]["sidecar"])["Body"].read()
    )
    assert (sidecar["generation"], sidecar["duration_s"]) == (2, whole["duration_s"])


class FlakyStream:
    """A Transcribe streaming client that throttles ``fail`` times, then raises or answers."""

    def __init__(self, fail: int, error: str = "LimitExceededException"):
        self.fail = fail
        self.calls = 0
        self.error = type(error, (Exception,), {})

    async def start_stream_transcription(self, **kwargs):
        self.calls += 1
        if self.calls <= self.fail:
            raise self.error("slow down")
        return _Stream()


class _Stream:
    class input_stream:  # noqa: N801 - the SDK's attribute name
        sent = b""

        @classmethod
        async def send_audio_event(cls, audio_chunk):
            cls.sent += audio_chunk

        @staticmethod
        async def end_stream():
            return None

    @property
    def output_stream(self):
        async def events():
            alt = type(
                "Alt",
                (),
                {"transcript": "hello there", "items": [type("I", (), {"confidence": 0.8})()]},
            )
            result = type("R", (), {"is_partial": False, "alternatives": [alt]})
            yield type("E", (), {"transcript": type("T", (), {"results": [result]})})

        return events()


def test_aws_transcriber_retries_throttling_then_answers():
    client = FlakyStream(fail=2)
    transcript = AwsTranscriber("us-east-1", client=client).transcribe(
        b"\x00\x00" * 1600, 8000, "en-US"
    )
    assert (transcript.text, transcript.confidence, client.calls) == ("hello there", 0.8, 3)


def test_aws_transcriber_gives_up_on_other_errors():
    client = FlakyStream(fail=5, error="BadRequestException")
    with pytest.raises(UpstreamError, match="BadRequestException"):
        AwsTranscriber("us-east-1", client=client).transcribe(b"\x00\x00" * 160, 8000, "en-US")
    assert client.calls == 1


def test_transcription_defers_what_it_has_no_time_for(stack):
    """With less time left than one utterance may take, the records are handed back as batch
    item failures (Lambda retries them) rather than the invocation timing out mid-batch."""
    _, utterances = tape_records("support_call_mulaw_8k")
    event = kinesis_event(utterances[:3], stream="UtteranceStream")
    answer = invoke("transcribe_utterance", event, timeout_ms=20_000)
    assert len(answer["batchItemFailures"]) == 3
    assert of_type(stack.drain(), "Utterance Transcribed") == []
    assert invoke("transcribe_utterance", event) == {"batchItemFailures": []}  # 120 s: all done
    assert len(of_type(stack.drain(), "Utterance Transcribed")) == 3


def _live(utterances, index: int, kind: str = "final", text: str = "live words"):
    """A live transcript record of the tape's ``index``-th inbound utterance, and the
    utterance records marked live as the server writes them when it hears the call live."""
    decoded = [records.decode(data) for _, data in utterances]
    inbound = [u for u in decoded if u.track == "inbound"]
    u = inbound[index]
    line = records.TranscriptRecord(
        stream_id=u.stream_id,
        call_uuid=u.call_uuid,
        track="inbound",
        result_id=f"inbound-{u.start_sample}",
        kind=kind,
        text=text,
        start_ms=u.start_ms,
        end_ms=u.end_ms,
        utterance_index=u.index if kind != "partial" else None,
    )
    marked = [(u.stream_id, records.encode(msgspec.structs.replace(u, live=True))) for u in inbound]
    return (u.stream_id, records.encode(line)), marked


def test_a_live_call_is_stored_from_its_finals_and_its_utterances_are_left_alone(stack):
    """Live recognition marks the utterances live and names each in a final: the consumer
    stores and publishes the final's text under the utterance, recognises nothing, and passes
    over partials and provisional finals (the console's)."""
    _, utterances = tape_records("support_call_mulaw_8k")
    final, marked = _live(utterances, 0)
    partial, _ = _live(utterances, 1, kind="partial", text="it is")
    provisional, _ = _live(utterances, 1, kind="provisional", text="it is four")
    batch = [*marked, partial, provisional, final]
    assert invoke("transcribe_utterance", kinesis_event(batch, stream="UtteranceStream")) == {
        "batchItemFailures": []
    }
    said = of_type(stack.drain(), "Utterance Transcribed")
    (published,) = [e for e in said if e["detail"]["kind"] == "final"]
    assert published["detail"]["text"] == "live words"
    assert published["detail"]["utterance"] == "inbound#000000000"
    (early,) = [e["detail"] for e in said if e["detail"]["kind"] == "provisional"]
    assert (early["utterance"], early["text"]) == ("inbound#000000001", "it is four")
    kept = boto3.client("s3", region_name="us-east-1").list_objects_v2(
        Bucket="recordings", Prefix="quarantine/"
    )
    assert kept.get("KeyCount", 0) == 0
    again = kinesis_event([final], stream="UtteranceStream")
    assert invoke("transcribe_utterance", again) == {"batchItemFailures": []}
    assert stack.drain() == [], "a redelivered final publishes nothing twice"


def consume(kinesis, after: str | None = None) -> str | None:
    """Hand what UtteranceStream holds past ``after`` to transcribe_utterance, as Lambda does
    (the records' own shard and sequence numbers); the last sequence number handed."""
    shard = kinesis.list_shards(StreamName="UtteranceStream")["Shards"][0]["ShardId"]
    start = (
        {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        if after
        else {"ShardIteratorType": "TRIM_HORIZON"}
    )
    iterator = kinesis.get_shard_iterator(StreamName="UtteranceStream", ShardId=shard, **start)
    found = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    batch = [(r["PartitionKey"], r["Data"], r["SequenceNumber"]) for r in found]
    event = kinesis_event(batch, stream="UtteranceStream", shard=shard)
    assert invoke("transcribe_utterance", event) == {"batchItemFailures": []}
    return batch[-1][2] if batch else after


def test_a_live_utterance_whose_final_never_comes_is_given_back_and_transcribed_once(
    stack, aws, monkeypatch
):
    """The task hearing a call dies between an utterance and its live final: the consumer held
    the utterance, the sweeper reads it again from UtteranceStream after HOLD_S and puts it
    back unmarked, and the per-utterance path transcribes it. The utterances whose finals did
    come (before or after their record) are never touched."""
    from callstream.analytics import sweeper
    from callstream.analytics.transcripts import pending_partitions

    monkeypatch.setenv("CALLSTREAM_UTTERANCE_STREAM", "UtteranceStream")
    monkeypatch.setenv("CALLSTREAM_AUDIO_STREAM", "AudioStream")
    kinesis = aws["kinesis"]
    _, utterances = tape_records("support_call_mulaw_8k")
    final_0, marked = _live(utterances, 0, text="heard live")
    final_2, _ = _live(utterances, 2, text="heard early")
    for key, data in [final_2, *marked[:3], final_0]:  # 2's final before its record; 1's never
        kinesis.put_record(StreamName="UtteranceStream", Data=data, PartitionKey=key)
    last = consume(kinesis)
    svc = wiring.sweeper_services()
    stream = records.decode(marked[0][1]).stream_id

    def held() -> list[str]:
        return [
            i["utterance"]
            for p in pending_partitions()
            for i in svc.transcripts.pending(p, 2e9, 10)
        ]

    assert held() == ["inbound#000000001"], "only the utterance without a final is held"
    assert sweeper.give_back(svc)["given_back"] == [], "not before HOLD_S: its final may come"
    later = time.time() + sweeper.HOLD_S + 1
    assert sweeper.give_back(svc, now=later)["given_back"] == [f"{stream}/inbound#000000001"]
    assert sweeper.give_back(svc, now=later)["given_back"] == [], "held again meanwhile"
    consume(kinesis, after=last)
    items = {i["utterance"]: i for i in svc.transcripts.for_stream(stream)}
    assert items["inbound#000000000"]["text"] == "heard live"
    assert items["inbound#000000002"]["text"] == "heard early", "the hold never replaced a final"
    filled = items["inbound#000000001"]
    assert filled["transcriber"] != "live" and "seven" in filled["text"], "recognised here"
    assert held() == [], "the transcript replaced the hold"
    said = [e["detail"]["utterance"] for e in of_type(stack.drain(), "Utterance Transcribed")]
    assert sorted(said) == [f"inbound#00000000{n}" for n in range(3)], "each published once"


def test_a_held_utterance_the_stream_no_longer_has_is_let_go(stack, aws, monkeypatch):
    from callstream.analytics import sweeper
    from callstream.analytics.transcripts import pending_partitions

    monkeypatch.setenv("CALLSTREAM_UTTERANCE_STREAM", "UtteranceStream")
    monkeypatch.setenv("CALLSTREAM_AUDIO_STREAM", "AudioStream")
    _, utterances = tape_records("support_call_mulaw_8k")
    _, marked = _live(utterances, 0)
    shard = aws["kinesis"].list_shards(StreamName="UtteranceStream")["Shards"][0]["ShardId"]
    gone = "49" + "0" * 54  # a sequence number the stream does not hold (past its retention)
    event = kinesis_event([(*marked[0], gone)], stream="UtteranceStream", shard=shard)
    assert invoke("transcribe_utterance", event) == {"batchItemFailures": []}
    svc = wiring.sweeper_services()
    back = sweeper.give_back(svc, now=time.time() + sweeper.HOLD_S + 1)
    assert back["given_back"] == [] and len(back["lost"]) == 1
    assert [i for p in pending_partitions() for i in svc.transcripts.pending(p, 2e9, 10)] == []


def test_an_utterance_the_live_path_gave_back_is_recognised_here(stack):
    """An utterance written again unmarked (its live line could not be finished) is recognised
    by the per-utterance path as any other."""
    _, utterances = tape_records("support_call_mulaw_8k")
    _, marked = _live(utterances, 0)
    first = records.decode(marked[0][1])
    given_back = (first.stream_id, records.encode(msgspec.structs.replace(first, live=False)))
    event = kinesis_event([marked[0], given_back], stream="UtteranceStream")
    assert invoke("transcribe_utterance", event) == {"batchItemFailures": []}
    (published,) = of_type(stack.drain(), "Utterance Transcribed")
    assert "frustrated" in published["detail"]["text"]  # PocketSphinx heard it here


def test_an_utterance_is_recognised_and_scored_in_its_streams_language(stack):
    _, utterances = tape_records("support_call_mulaw_8k")
    first = records.decode(utterances[0][1])
    in_hindi = msgspec.structs.replace(first, language="hi-IN")
    event = kinesis_event([(first.stream_id, records.encode(in_hindi))], stream="UtteranceStream")
    assert invoke("transcribe_utterance", event) == {"batchItemFailures": []}
    (published,) = of_type(stack.drain(), "Utterance Transcribed")
    assert published["detail"]["language"] == "hi-IN"  # what analyze_sentiment scores it in
