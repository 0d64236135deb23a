"""The Lambdas' event and batch edge, with fakes for the services: what Lambda gets back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from callstream.edge import batch_function, event_function
from callstream.exceptions import NotReadyError, RecordError
from local.kinesis_events import kinesis_event
from local.lambdas import LambdaContext


@dataclass
class Bucket:
    """Keeps what is put, as the recordings bucket would."""

    objects: dict[str, bytes] = field(default_factory=dict)

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[key] = body


@dataclass
class FakeServices:
    quarantine: Bucket = field(default_factory=Bucket)
    handled: list[bytes] = field(default_factory=list)


def _handle(svc: FakeServices, data: bytes) -> str:
    if data.startswith(b"junk"):
        raise RecordError("not a callstream record")
    if data.startswith(b"fail"):
        raise RuntimeError("the service failed")
    svc.handled.append(data)
    return "ok"


def _emf(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The metrics of the EMF lines printed so far."""
    found: dict[str, Any] = {}
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' in line:
            doc = json.loads(line)
            for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                found[metric["Name"]] = doc[metric["Name"]]
    return found


@pytest.fixture(autouse=True)
def _namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "callstream-test")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")


def test_a_batch_keeps_unreadable_records_and_reports_only_the_failed_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    svc = FakeServices()
    handler = batch_function(lambda: svc, _handle)
    event = kinesis_event([("a", b"one"), ("b", b"junk!"), ("c", b"fail"), ("d", b"two")])

    answer = handler(event, LambdaContext("store_recording"))

    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    assert failed == [event["Records"][2]["kinesis"]["sequenceNumber"]]
    assert svc.handled == [b"one", b"two"]
    [(key, body)] = svc.quarantine.objects.items()
    assert key == f"quarantine/AudioStream/{event['Records'][1]['kinesis']['sequenceNumber']}.bin"
    assert body == b"junk!"
    assert _emf(capsys)["QuarantinedRecords"] == [1.0]


def test_a_batch_with_no_time_left_defers_every_record_without_raising() -> None:
    svc = FakeServices()
    asked: list[float] = []

    def time_left(seconds: float) -> None:
        asked.append(seconds)
        raise NotReadyError("deferred")

    handler = batch_function(lambda: svc, _handle, time_left=time_left)
    event = kinesis_event([("a", b"one"), ("b", b"two")])

    answer = handler(event, LambdaContext("transcribe_utterance", timeout_ms=10_000))

    assert len(answer["batchItemFailures"]) == 2  # reported, so Lambda resumes at the first
    assert svc.handled == []
    assert len(asked) == 2 and all(0 < s <= 10 for s in asked)


def test_a_batch_that_fails_whole_without_a_deadline_raises_for_lambda_to_retry() -> None:
    handler = batch_function(FakeServices, _handle)
    with pytest.raises(Exception, match="All records failed"):
        handler(kinesis_event([("a", b"fail")]), LambdaContext("store_recording"))


def test_an_event_function_hands_the_detail_or_the_event_and_counts_the_result(
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = {"id": "e1", "detail-type": "Recording Ready", "detail": {"stream_id": "s1"}}
    seen: list[dict[str, Any]] = []

    def handle(svc: object, value: dict[str, Any]) -> dict[str, Any]:
        seen.append(value)
        return {"swept": ["s1", "s2"]}

    counted = event_function(
        object, handle, counts={"StreamsSwept": lambda result: len(result["swept"])}
    )
    assert counted(event, LambdaContext("sweep_streams")) == {"swept": ["s1", "s2"]}
    assert _emf(capsys)["StreamsSwept"] == [2.0]
    event_function(object, handle, whole_event=True)(event, LambdaContext("console_feed"))
    assert seen == [{"stream_id": "s1"}, event]


def test_records_a_later_one_makes_moot_are_skipped_and_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    svc = FakeServices()
    seen: list[list[bytes]] = []

    def moot(batch: list[bytes]) -> set[int]:  # "old" records are replaced by what follows
        seen.append(batch)
        return {i for i, data in enumerate(batch) if data.startswith(b"old")}

    handler = batch_function(lambda: svc, _handle, passed_over=moot)
    event = kinesis_event([("a", b"old one"), ("b", b"new one"), ("c", b"fail"), ("d", b"old")])

    answer = handler(event, LambdaContext("transcribe_utterance"))

    assert seen == [[b"old one", b"new one", b"fail", b"old"]], "the whole batch, in order"
    assert svc.handled == [b"new one"]
    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    assert failed == [event["Records"][2]["kinesis"]["sequenceNumber"]], "skipped is not failed"
    assert _emf(capsys)["SupersededRecords"] == [2.0]

    handler(kinesis_event([("e", b"old two"), ("f", b"new two")]), LambdaContext("t"))
    assert svc.handled == [b"new one", b"new two"], "each batch is judged on its own"
