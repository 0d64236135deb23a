"""A record a consumer keeps failing is retried, then dead-lettered; the rest flows on
(the embedded stack's event sources follow the template's DestinationConfig)."""

from __future__ import annotations

import json
import time
import warnings

import pytest

from callstream import records
from local.stack import Stack


@pytest.mark.slow
def test_a_poison_record_is_dead_lettered_and_the_next_one_is_handled():
    warnings.filterwarnings("ignore", "No application metrics to publish")
    with Stack(speed=16) as stack:
        kinesis, sqs, s3 = (stack.aws.client(s) for s in ("kinesis", "sqs", "s3"))
        good = records.EventRecord(
            stream_id="s-after", call_uuid="c-1", seq=0, name="dtmf", at_ms=0.0, data={"digit": "5"}
        )
        kinesis.put_record(
            StreamName="AudioStream",
            Data=b"poison: not a callstream record",
            PartitionKey="s-poison",
        )
        kinesis.put_record(
            StreamName="AudioStream", Data=records.encode(good), PartitionKey="s-after"
        )
        url = sqs.get_queue_url(QueueName="AudioDeadLetterQueue")["QueueUrl"]
        bucket = stack.aws.names["RecordingsBucket"]
        deadline = time.monotonic() + 60
        dead: list[dict] = []
        while time.monotonic() < deadline and not dead:
            dead = [
                json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url).get("Messages", [])
            ]
            time.sleep(0.2)
        assert dead and dead[0]["stream"] == "AudioStream"
        while time.monotonic() < deadline:
            if s3.list_objects_v2(Bucket=bucket, Prefix="events/s-after/").get("KeyCount"):
                break
            time.sleep(0.2)
        assert s3.list_objects_v2(Bucket=bucket, Prefix="events/s-after/")["KeyCount"] == 1
