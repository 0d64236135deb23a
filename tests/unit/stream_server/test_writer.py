"""The Kinesis writer against a PutRecords stand-in that fails the way Kinesis does.

moto cannot throttle or fail part of a batch, so these tests inject those failures at the same
API boundary (the ``put_records`` callable). The functional tests run the writer on moto.
"""

import asyncio
import random
import threading
from collections import defaultdict

import pytest

from callstream.exceptions import RecordError
from stream_server.writer import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, KinesisWriter


class FlakyKinesis:
    """Accepts records like PutRecords, failing a share of them (partially or whole calls)."""

    def __init__(self, fail_share=0.0, raise_share=0.0, seed=7, delay_s=0.0):
        self.delivered = defaultdict(list)
        self.calls = []
        self.fail_share = fail_share
        self.raise_share = raise_share
        self.random = random.Random(seed)
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()

    def put_records(self, StreamName, Records):  # noqa: N803 - boto3's names
        self.gate.wait(10)
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        with self.lock:
            self.calls.append([(r["PartitionKey"], r["Data"]) for r in Records])
            if self.random.random() < self.raise_share:
                raise ConnectionError("connection reset by peer")
            results = []
            for record in Records:
                if self.random.random() < self.fail_share:
                    results.append(
                        {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "x"}
                    )
                else:
                    self.delivered[record["PartitionKey"]].append(record["Data"])
                    results.append({"SequenceNumber": "1", "ShardId": "shardId-0"})
            failed = sum(1 for r in results if "ErrorCode" in r)
            return {"FailedRecordCount": failed, "Records": results}


def writer_for(kinesis, **kwargs):
    options = {"buffer_records": 8, "linger_s": 0.001, "backoff_base_s": 0.001}
    options.update(kwargs)
    return KinesisWriter(kinesis.put_records, "AudioStream", **options)


async def test_partial_failures_and_errors_lose_nothing_and_keep_order():
    kinesis = FlakyKinesis(fail_share=0.3, raise_share=0.1)
    writer = writer_for(kinesis)
    writer.start()
    sent = defaultdict(list)

    async def stream(key):
        for i in range(40):
            data = f"{key}:{i}".encode()
            sent[key].append(data)
            await writer.put(key, data)

    await asyncio.gather(*(stream(f"s{k}") for k in range(12)))
    assert await writer.drain(30) == 0
    await writer.close()
    assert dict(kinesis.delivered) == dict(sent)  # everything, once, in order per stream
    assert writer.stats.retries > 0 and writer.stats.failed_calls > 0
    for call in kinesis.calls:
        keys = [key for key, _ in call]
        assert len(keys) == len(set(keys)), "one record per stream per batch keeps order"


async def test_batches_respect_kinesis_limits():
    kinesis = FlakyKinesis()
    kinesis.gate.clear()  # hold the first call so the queues fill up
    writer = writer_for(kinesis, buffer_records=4, max_in_flight=1, linger_s=0.01)
    writer.start()
    big = b"x" * 600_000
    for k in range(700):
        await writer.put(f"k{k}", b"small")
    for k in range(20):
        await writer.put(f"big{k}", big)
    kinesis.gate.set()
    assert await writer.drain(30) == 0
    await writer.close()
    for call in kinesis.calls:
        assert len(call) <= MAX_BATCH_RECORDS
        assert sum(len(d) + len(k) for k, d in call) <= MAX_BATCH_BYTES
    assert sum(len(c) for c in kinesis.calls) == 720


async def test_back_pressure_blocks_only_the_full_stream():
    kinesis = FlakyKinesis(fail_share=1.0)  # Kinesis refuses everything for now
    writer = writer_for(kinesis, buffer_records=3, backoff_base_s=0.01, backoff_cap_s=0.02)
    writer.start()
    for i in range(3):
        await writer.put("slow", b"%d" % i)
    blocked = asyncio.create_task(writer.put("slow", b"3"))
    await asyncio.sleep(0.1)
    assert not blocked.done(), "a full buffer makes put wait"
    await asyncio.wait_for(writer.put("other", b"ok"), 1)  # other streams are not held up
    kinesis.fail_share = 0.0
    await asyncio.wait_for(blocked, 5)
    assert await writer.drain(5) == 0
    await writer.close()
    assert kinesis.delivered["slow"] == [b"0", b"1", b"2", b"3"]
    assert writer.stats.backpressure_s > 0


async def test_drain_reports_what_a_dead_sink_left_undelivered():
    kinesis = FlakyKinesis(raise_share=1.0)
    writer = writer_for(kinesis, backoff_cap_s=0.01)
    writer.start()
    await writer.put("s", b"a")
    await writer.put("s", b"b")
    assert await writer.drain(0.3) == 2
    await writer.close()


async def test_oversized_record_is_refused():
    writer = writer_for(FlakyKinesis())
    writer.start()
    with pytest.raises(RecordError, match="1 MiB"):
        await writer.put("s", b"x" * (1024 * 1024))
    await writer.close()


async def test_offer_queues_until_the_key_is_full_then_put_waits():
    kinesis = FlakyKinesis(fail_share=1.0)  # nothing gets in for now
    writer = writer_for(kinesis, buffer_records=2, backoff_base_s=0.01, backoff_cap_s=0.02)
    writer.start()
    assert writer.offer("s", b"a") and writer.offer("s", b"b")
    assert not writer.offer("s", b"c"), "a full buffer refuses the synchronous offer"
    assert writer.offer("other", b"x"), "other keys are not held up"
    kinesis.fail_share = 0.0
    await asyncio.wait_for(writer.put("s", b"c"), 5)
    assert await writer.drain(5) == 0
    await writer.close()
    assert kinesis.delivered["s"] == [b"a", b"b", b"c"]


async def test_unacknowledged_audio_is_capped_whatever_kinesis_does():
    """With every PutRecords throttled for a while, a stream never holds more than the cap of
    audio outside Kinesis (what a crash would lose); when Kinesis recovers, all of it lands."""
    sink = FlakyKinesis(fail_share=1.0)  # every record throttled
    writer = KinesisWriter(
        sink.put_records, "s", buffer_records=64, max_unacked_ms=3000, linger_s=0, backoff_base_s=0.01,
        backoff_cap_s=0.02,
    )  # fmt: skip
    writer.start()
    accepted = 0
    for n in range(30):  # 30 one-second records offered while nothing gets in
        if not writer.offer("k", f"r{n}".encode(), ms=1000):
            break
        accepted += 1
        assert writer.unacked_ms <= 3000
    assert accepted == 3, "the fourth second waits: the session stops reading its socket"
    blocked = asyncio.create_task(writer.put("k", b"r3", ms=1000))
    await asyncio.sleep(0.2)
    assert not blocked.done() and writer.unacked_ms == 3000
    sink.fail_share = 0.0
    await asyncio.wait_for(blocked, 5)
    assert await writer.drain(5) == 0 and writer.unacked_ms == 0
    assert sink.delivered["k"] == [b"r0", b"r1", b"r2", b"r3"]
    await writer.close()


async def test_a_first_record_is_taken_even_when_it_is_longer_than_the_cap():
    sink = FlakyKinesis()
    sink.gate.clear()  # Kinesis holds the first call: the record stays unacknowledged
    writer = KinesisWriter(sink.put_records, "s", max_unacked_ms=500, linger_s=0)
    writer.start()
    assert writer.offer("k", b"long", ms=1120)  # never a deadlock on a record bigger than the cap
    assert not writer.offer("k", b"next", ms=20)
    sink.gate.set()
    assert await writer.drain(5) == 0
    await writer.close()
