"""Feeds the consumers like Lambda's event sources do: Kinesis batches and EventBridge rules.

* Kinesis: one thread per event source polls its stream and invokes the function with a real
  Kinesis event of up to ``BatchSize`` records. A partial batch response re-delivers from the
  first failed record, with backoff; after the source's retries the record goes to its
  dead-letter queue, as ``DestinationConfig.OnFailure`` does in AWS.
* EventBridge: a rule on the bus sends every ``callstream`` event to a local SQS queue; each is
  invoked on the functions whose rule pattern matches its detail-type, retried on failure, and
  dead-lettered after the attempts run out. Listeners see every event (the demo prints them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from local.kinesis_events import kinesis_event
from local.lambdas import invoke
from local.template import Source

Listener = Callable[[dict[str, Any]], None]


class Poller:
    """Runs the event sources of template.yaml against the local AWS."""

    def __init__(
        self,
        aws: Any,
        sources: list[Source],
        bus: str,
        dead_letters: dict[str, str],
        attempts: int = 5,
    ) -> None:
        """``dead_letters`` maps a function folder to its DLQ name."""
        self.aws = aws
        self.sources = sources
        self.bus = bus
        self.dead_letters = dead_letters
        self.attempts = attempts
        self.listeners: list[Listener] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> Poller:
        """Start a thread per Kinesis source and one for the bus."""
        for source in self.sources:
            if source.kind == "kinesis":
                self._spawn(self._kinesis, source)
        self._spawn(self._events)
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def idle(self) -> bool:
        """No invocation in progress right now."""
        return self._busy == 0

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _invoke(self, folder: str, event: dict[str, Any]) -> Any:
        with self._lock:
            self._busy += 1
        try:
            return invoke(folder, event)
        finally:
            with self._lock:
                self._busy -= 1

    # -- Kinesis --------------------------------------------------------------------------

    def _kinesis(self, source: Source) -> None:
        kinesis = self.aws.client("kinesis")
        shard = kinesis.list_shards(StreamName=source.stream)["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(
            StreamName=source.stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        pending: list[tuple[str, bytes]] = []
        attempts = 0
        while not self._stop.is_set():
            if len(pending) < source.batch_size:
                response = kinesis.get_records(
                    ShardIterator=iterator, Limit=source.batch_size - len(pending)
                )
                iterator = response["NextShardIterator"]
                pending += [(r["PartitionKey"], r["Data"]) for r in response["Records"]]
            if not pending:
                self._stop.wait(0.2)
                continue
            batch = pending[: source.batch_size]
            event = kinesis_event(batch, stream=source.stream or "")
            try:
                answer = self._invoke(source.function, event) or {}
                failed = [f["itemIdentifier"] for f in answer.get("batchItemFailures", [])]
            except Exception as error:  # the whole batch failed: retry it
                failed = [event["Records"][0]["kinesis"]["sequenceNumber"]]
                self.errors.append(f"{source.function}: {error}")
            if not failed:
                pending, attempts = pending[len(batch) :], 0
                continue
            numbers = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
            first = min(numbers.index(f) for f in failed if f in numbers)
            pending = pending[first:]
            attempts += 1
            if attempts > self.attempts:  # dead-letter the first failed record and move on
                self._dead_letter(
                    source.function, {"record": numbers[first], "stream": source.stream}
                )
                pending, attempts = pending[1:], 0
            else:
                self._stop.wait(min(2.0, 0.1 * 2**attempts))

    # -- EventBridge ----------------------------------------------------------------------

    def _events(self) -> None:
        sqs, events = self.aws.client("sqs"), self.aws.client("events")
        url = sqs.create_queue(QueueName="local-bus-tap", Attributes={"VisibilityTimeout": "1"})[
            "QueueUrl"
        ]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name="local-bus-tap",
            EventBusName=self.bus,
            EventPattern=json.dumps({"source": ["callstream"]}),
        )
        events.put_targets(
            Rule="local-bus-tap", EventBusName=self.bus, Targets=[{"Id": "tap", "Arn": arn}]
        )
        rules = [s for s in self.sources if s.kind == "rule"]
        done: dict[str, set[str]] = {}
        while not self._stop.is_set():
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                AttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            if not messages:
                self._stop.wait(0.1)
                continue
            for message in messages:
                event = json.loads(message["Body"])
                first_time = message["MessageId"] not in done
                finished = done.setdefault(message["MessageId"], set())
                if first_time:
                    for listener in self.listeners:
                        listener(event)
                ok = True
                for rule in rules:
                    if event["detail-type"] in rule.detail_types and rule.function not in finished:
                        try:
                            self._invoke(rule.function, event)
                            finished.add(rule.function)
                        except Exception as error:
                            ok = False
                            if (
                                int(message["Attributes"]["ApproximateReceiveCount"]) >= 60
                            ):  # ~1 min of retries
                                self._dead_letter(rule.function, event)
                                finished.add(rule.function)
                                ok = True
                            else:
                                self.errors.append(f"{rule.function}: {error}")
                if ok:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _dead_letter(self, function: str, payload: dict[str, Any]) -> None:
        queue = self.dead_letters.get(function)
        if queue:
            sqs = self.aws.client("sqs")
            url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(payload, default=str))
        self.errors.append(f"{function}: dead-lettered {str(payload)[:120]}")
