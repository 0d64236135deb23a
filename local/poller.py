"""Feeds the consumers as Lambda does, with Lambda's own failure semantics, from the template.

* Kinesis (an event source mapping): one thread per mapping polls its stream (through its
  enhanced fan-out consumer, when it has one: more often) and invokes the function with a
  real Kinesis event of up to ``BatchSize`` records. A partial batch response
  resumes from the first failed record; a raised error splits the batch in two when
  ``BisectBatchOnFunctionError`` is on (a split does not count as a retry). After
  ``MaximumRetryAttempts`` retries the batch is given up on: its description goes to the
  mapping's ``OnFailure`` queue and the shard moves on.
  (https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html)
* EventBridge (a rule → a function, invoked asynchronously): a tap on the bus hands each
  ``callstream`` event to every function whose rule matches its detail-type. A function that
  raises is retried as Lambda retries an asynchronous invocation — ``MaximumRetryAttempts`` of
  its ``EventInvokeConfig`` (default 2), about 1 and then 2 minutes later — and then the
  invocation record goes to its ``OnFailure`` destination.
  (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html)
  Each function has its own queue and worker: the targets of one event run side by side, as in
  AWS, so a slow consumer never delays another's events (the console's feed behind the summary).
  The delays are divided by ``time_scale`` (the stack's speed): the count is Lambda's, the
  clock is the demo's.

Listeners see every bus event once (the demo prints them).
"""

from __future__ import annotations

import heapq
import itertools
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from moto.events.models import EventPattern

from callstream.clock import now_iso
from local.kinesis_events import kinesis_event
from local.lambdas import invoke
from local.template import AsyncConfig, Source

Listener = Callable[[dict[str, Any]], None]
#: Lambda's waits before the retries of an asynchronous invocation (about 1, then 2 minutes).
ASYNC_RETRY_DELAYS_S = (60.0, 120.0)
ARN = "arn:aws:lambda:us-east-1:000000000000:function:{}"
#: An empty shard is read again after this. A standard iterator is polled (Lambda: about once a
#: second; here faster, for the tests); an enhanced fan-out consumer has records pushed, ~70 ms
#: after they were put (the Kinesis developer guide's propagation delay; moto has no push).
POLL_WAIT_S = 0.2
PUSHED_WAIT_S = 0.05


class Poller:
    """Runs the event sources of the transformed template against the local AWS."""

    def __init__(
        self,
        aws: Any,
        sources: list[Source],
        bus: str,
        async_configs: dict[str, AsyncConfig],
        names: dict[str, str],
        time_scale: float = 1.0,
    ) -> None:
        """``names`` maps the template's logical ids to the local resources' names."""
        self.aws = aws
        self.sources = sources
        self.bus = bus
        self.async_configs = async_configs
        self.names = names
        self.time_scale = time_scale
        self.listeners: list[Listener] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        self._retries: list[tuple[float, int, str, dict[str, Any], int]] = []
        self._order = itertools.count()
        self._queues: dict[str, queue.Queue[dict[str, Any]]] = {}

    def start(self) -> Poller:
        """Start a thread per Kinesis source, one for the bus and one for async retries."""
        for source in self.sources:
            if source.kind == "kinesis":
                self._spawn(self._kinesis, source)
        self._spawn(self._events, self._tap())  # the tap first: no event goes unseen
        self._spawn(self._retry_async)
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

    def _send(self, queue: str | None, body: dict[str, Any], what: str) -> None:
        """Put a failure record on ``queue`` (a logical id); note it in :attr:`errors`."""
        if queue:
            sqs = self.aws.client("sqs")
            url = sqs.get_queue_url(QueueName=self.names.get(queue, queue))["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body, default=str))
        self.errors.append(f"{what} → {queue or 'dropped (no destination)'}")

    # -- Kinesis --------------------------------------------------------------------------

    def _kinesis(self, source: Source) -> None:
        kinesis = self.aws.client("kinesis")
        name = self.names.get(source.stream or "", source.stream or "")
        shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        pending: list[tuple[str, bytes, str]] = []
        size, retries = source.batch_size, 0
        while not self._stop.is_set():
            if len(pending) < source.batch_size:
                response = kinesis.get_records(
                    ShardIterator=iterator, Limit=source.batch_size - len(pending)
                )
                iterator = response["NextShardIterator"]
                pending += [
                    (r["PartitionKey"], r["Data"], r["SequenceNumber"]) for r in response["Records"]
                ]
            if not pending:
                self._stop.wait(PUSHED_WAIT_S if source.fan_out else POLL_WAIT_S)
                continue
            batch = pending[:size]
            event = kinesis_event(batch, stream=name, shard=shard)
            numbers = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
            try:
                answer = self._invoke(source.function, event) or {}
            except Exception as error:
                self.errors.append(f"{source.function}: {type(error).__name__}: {error}")
                if source.bisect and len(batch) > 1:
                    size = max(1, len(batch) // 2)  # a split is not a retry
                    continue
                first = 0
            else:
                failed = [f["itemIdentifier"] for f in answer.get("batchItemFailures", [])]
                if not failed:
                    pending, size, retries = pending[len(batch) :], source.batch_size, 0
                    continue
                first = min(numbers.index(f) for f in failed if f in numbers)
                pending = pending[first:]  # resume from the first failure
                batch, numbers = batch[first:], numbers[first:]
            retries += 1
            if source.max_retries < 0 or retries <= source.max_retries:
                self._stop.wait(min(2.0, 0.1 * 2**retries))
                continue
            self._send(
                source.on_failure,
                {
                    "requestContext": {
                        "requestId": str(uuid.uuid4()),
                        "functionArn": ARN.format(source.function),
                        "condition": "RetryAttemptsExhausted",
                        "approximateInvokeCount": retries,
                    },
                    "version": "1.0",
                    "timestamp": now_iso(),
                    "KinesisBatchInfo": {
                        "shardId": shard,
                        "startSequenceNumber": numbers[0],
                        "endSequenceNumber": numbers[-1],
                        "batchSize": len(batch),
                        "streamArn": f"arn:aws:kinesis:us-east-1:000000000000:stream/{name}",
                    },
                },
                f"{source.function}: gave up on {len(batch)} record(s) of {name}",
            )
            pending, size, retries = pending[len(batch) :], source.batch_size, 0

    # -- EventBridge → asynchronous invocations --------------------------------------------

    def _tap(self) -> str:
        """A rule sending every ``callstream`` event on the bus to a queue; its URL."""
        sqs, events = self.aws.client("sqs"), self.aws.client("events")
        url: str = sqs.create_queue(QueueName="local-bus-tap")["QueueUrl"]
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
        return url

    def _events(self, url: str) -> None:
        sqs = self.aws.client("sqs")
        # moto's matcher: the rule's whole pattern (detail fields too), as EventBridge reads it
        rules = [(s, EventPattern.load(s.pattern)) for s in self.sources if s.kind == "rule"]
        while not self._stop.is_set():
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                self._stop.wait(0.1)
                continue
            for message in messages:
                event = json.loads(message["Body"])
                for listener in self.listeners:
                    listener(event)
                for rule, pattern in rules:
                    if pattern.matches_event(event):
                        self._deliver(rule.function, event)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _deliver(self, function: str, event: dict[str, Any]) -> None:
        """Hand an event to the function's own worker (in order for that function)."""
        with self._lock:
            self._busy += 1  # idle() is false until the worker has run it
            inbox = self._queues.get(function)
            if inbox is None:
                inbox = self._queues[function] = queue.Queue()
                self._spawn(self._work, function, inbox)
        inbox.put(event)

    def _work(self, function: str, inbox: queue.Queue[dict[str, Any]]) -> None:
        while not self._stop.is_set():
            try:
                event = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._attempt(function, event, 0)
            finally:
                with self._lock:
                    self._busy -= 1

    def _attempt(self, function: str, event: dict[str, Any], retries: int) -> None:
        """One asynchronous invocation; on an error, a retry is scheduled or it is given up."""
        try:
            self._invoke(function, event)
        except Exception as error:
            config = self.async_configs.get(function, AsyncConfig())
            self.errors.append(f"{function}: {type(error).__name__}: {error}")
            if retries < config.max_retries:
                delay = ASYNC_RETRY_DELAYS_S[min(retries, len(ASYNC_RETRY_DELAYS_S) - 1)]
                due = time.monotonic() + delay / self.time_scale
                with self._lock:
                    heapq.heappush(
                        self._retries, (due, next(self._order), function, event, retries + 1)
                    )
                return
            self._send(
                config.on_failure,
                {
                    "version": "1.0",
                    "timestamp": now_iso(),
                    "requestContext": {
                        "requestId": str(uuid.uuid4()),
                        "functionArn": ARN.format(function) + ":$LATEST",
                        "condition": "RetriesExhausted",
                        "approximateInvokeCount": retries + 1,
                    },
                    "requestPayload": event,
                    "responseContext": {
                        "statusCode": 200,
                        "executedVersion": "$LATEST",
                        "functionError": "Unhandled",
                    },
                    "responsePayload": {
                        "errorMessage": str(error),
                        "errorType": type(error).__name__,
                    },
                },
                f"{function}: gave up on {event.get('detail-type')} after {retries + 1} tries",
            )

    def _retry_async(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                due = self._retries[0] if self._retries else None
                if due is not None and due[0] <= time.monotonic():
                    heapq.heappop(self._retries)
                else:
                    due = None
            if due is None:
                self._stop.wait(0.05)
                continue
            _, _, function, event, retries = due
            self._attempt(function, event, retries)
