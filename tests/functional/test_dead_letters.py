"""What a consumer keeps failing on is retried as Lambda retries it, then lands on the queue the
transformed template names; the rest flows on."""

from __future__ import annotations

import json
import time
import warnings

import pytest

from callstream.audio import records
from local.stack import Stack


def wait_for(check, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    return check()


@pytest.mark.slow
def test_an_unreadable_record_is_kept_aside_at_once_and_the_batch_goes_on():
    """Reported as failed, it would hold the shard for 8 retries and then take every record
    after it in the batch down with it (Lambda gives up on the rest of the batch)."""
    warnings.filterwarnings("ignore", "No application metrics to publish")
    with Stack(speed=16) as stack:
        kinesis, sqs, s3 = (stack.aws.client(s) for s in ("kinesis", "sqs", "s3"))
        bucket = stack.aws.names["RecordingsBucket"]
        good = records.EventRecord(
            stream_id="s-after", call_uuid="c-1", seq=0, name="dtmf", at_ms=0.0, data={"digit": "5"}
        )
        poison = b"poison: not a callstream record"
        kinesis.put_records(
            StreamName="AudioStream",
            Records=[
                {"Data": poison, "PartitionKey": "s-poison"},
                {"Data": records.encode(good), "PartitionKey": "s-after"},
            ],
        )
        assert wait_for(
            lambda: s3.list_objects_v2(Bucket=bucket, Prefix="events/s-after/").get("KeyCount")
        )
        (kept,) = s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/AudioStream/")["Contents"]
        assert s3.get_object(Bucket=bucket, Key=kept["Key"])["Body"].read() == poison
        url = sqs.get_queue_url(QueueName="AudioDeadLetterQueue")["QueueUrl"]
        assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
        assert not [e for e in stack.poller.errors if e.startswith("store_recording")]


@pytest.mark.slow
def test_a_record_that_never_gets_ready_is_retried_then_given_up_on_the_mappings_queue():
    """An end whose start never comes: NotReady every time; after the mapping's 8 retries the
    batch's description goes to its OnFailure queue, and the shard moves on."""
    warnings.filterwarnings("ignore", "No application metrics to publish")
    with Stack(speed=16) as stack:
        kinesis, sqs, s3 = (stack.aws.client(s) for s in ("kinesis", "sqs", "s3"))
        stuck = records.EventRecord(
            stream_id="s-stuck", call_uuid="c-1", seq=7, name="close", at_ms=0.0, data={}
        )
        kinesis.put_record(
            StreamName="AudioStream", Data=records.encode(stuck), PartitionKey="s-stuck"
        )
        url = sqs.get_queue_url(QueueName="AudioDeadLetterQueue")["QueueUrl"]
        dead = wait_for(
            lambda: [
                json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url).get("Messages", [])
            ]
        )
        assert dead and dead[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
        info = dead[0]["KinesisBatchInfo"]
        assert info["streamArn"].endswith("/AudioStream") and info["batchSize"] == 1
        # the mapping's MaximumRetryAttempts (8): the first try and 8 retries, then given up
        assert dead[0]["requestContext"]["approximateInvokeCount"] == 8 + 1
        tries = [e for e in stack.poller.errors if "its start event is not stored yet" in e]
        assert len(tries) == 9  # a whole batch failing is an error (Powertools raises it)
        good = records.EventRecord(
            stream_id="s-after", call_uuid="c-1", seq=0, name="dtmf", at_ms=0.0, data={"digit": "5"}
        )
        kinesis.put_record(
            StreamName="AudioStream", Data=records.encode(good), PartitionKey="s-after"
        )
        bucket = stack.aws.names["RecordingsBucket"]
        assert wait_for(
            lambda: s3.list_objects_v2(Bucket=bucket, Prefix="events/s-after/").get("KeyCount")
        )


@pytest.mark.slow
def test_an_async_invocation_that_keeps_failing_is_retried_twice_then_sent_to_its_destination():
    """EventBridge invokes finalize_call asynchronously: Lambda tries it 3 times in all (its
    EventInvokeConfig's MaximumRetryAttempts 2), then puts the invocation record on the
    AsyncFailureQueue (its OnFailure), with the event as requestPayload."""
    warnings.filterwarnings("ignore", "No application metrics to publish")
    with Stack(speed=60) as stack:  # Lambda's 1 and 2 minute waits, 60 times faster
        assert stack.poller is not None
        events, sqs = stack.aws.client("events"), stack.aws.client("sqs")
        detail = {"stream_id": "s-gone", "call_uuid": "c-1", "sidecar": "recordings/none.json"}
        events.put_events(
            Entries=[
                {
                    "Source": "callstream",
                    "DetailType": "Recording Ready",
                    "Detail": json.dumps(detail),
                    "EventBusName": stack.aws.names["EventBus"],
                }
            ]
        )
        url = sqs.get_queue_url(QueueName="AsyncFailureQueue")["QueueUrl"]
        deadline = time.monotonic() + 60
        failed: list[dict] = []
        while time.monotonic() < deadline and not failed:
            failed = [
                json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url).get("Messages", [])
            ]
            time.sleep(0.2)
        assert failed, stack.poller.errors
        (record,) = failed
        assert record["requestContext"]["condition"] == "RetriesExhausted"
        assert record["requestContext"]["approximateInvokeCount"] == 3
        assert record["requestPayload"]["detail"] == detail
        tries = [e for e in stack.poller.errors if e.startswith("finalize_call: NoSuchKey")]
        assert len(tries) == 3, stack.poller.errors
