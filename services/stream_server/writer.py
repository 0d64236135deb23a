"""Batched, ordered, back-pressured Kinesis writes for many streams at once.

One :class:`KinesisWriter` per Kinesis stream serves every session of the process:

* **Batching**: records of all sessions share ``PutRecords`` calls (≤ 500 records, ≤ 5 MB).
* **Order per stream**: a batch holds at most one record per partition key, and a key's next
  record is only sent once the one before it is in. A record that failed (throttling, partial
  failure, an exception) stays at the head of its key's queue and is retried alone with
  exponential backoff and full jitter, so a stream's records reach Kinesis in order.
* **Back-pressure**: :meth:`KinesisWriter.put` waits while its key already has
  ``buffer_records`` records waiting, or ``max_unacked_ms`` of audio not yet acknowledged by
  Kinesis (queued or in flight), so a slow sink slows only the sessions it is slow for (they stop
  reading their sockets), and what a crash loses stays bounded whatever Kinesis does.
  Nothing is ever dropped: records stay queued until
  delivered, and :meth:`KinesisWriter.drain` reports whatever a deadline left undelivered.
* **Never on the event loop**: boto3 runs in the writer's own small thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from callstream.exceptions import RecordError

log = logging.getLogger("callstream.writer")

MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
#: Records a stream may have waiting before back-pressure, concurrent PutRecords per stream, and
#: how long a batch waits to fill up.
BUFFER_RECORDS = 64
MAX_IN_FLIGHT = 4
LINGER_MS = 20

#: ``put_records(StreamName=..., Records=[{"Data": b, "PartitionKey": k}])`` of a boto3 client.
PutRecords = Callable[..., Mapping[str, Any]]


@dataclass
class WriterStats:
    """Counters and gauges of one writer, read by the metrics emitter."""

    records: int = 0
    bytes: int = 0
    batches: int = 0
    retries: int = 0
    failed_calls: int = 0
    backpressure_s: float = 0.0
    put_latency_ms: list[float] = field(default_factory=list)

    def take_latencies(self) -> list[float]:
        """Return and forget the put latencies collected since the last call."""
        out, self.put_latency_ms = self.put_latency_ms, []
        return out


@dataclass(slots=True)
class _Entry:
    key: str
    data: bytes
    ms: float = 0.0  # the audio it carries
    attempts: int = 0


class KinesisWriter:
    """Writes records to one Kinesis stream. See the module docstring."""

    def __init__(
        self,
        put_records: PutRecords,
        stream_name: str,
        *,
        buffer_records: int = BUFFER_RECORDS,
        max_unacked_ms: float | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        linger_s: float = LINGER_MS / 1000,
        backoff_base_s: float = 0.05,
        backoff_cap_s: float = 5.0,
    ) -> None:
        """Create a writer; call :meth:`start` inside the event loop before :meth:`put`.

        Args:
            put_records: a boto3 Kinesis client's ``put_records`` (called in a thread).
            stream_name: the Kinesis stream.
            buffer_records: records one key may have waiting before ``put`` blocks.
            max_unacked_ms: audio one key may have unacknowledged (queued or in flight)
                before ``put`` blocks; a first record is always taken. None: no cap.
            max_in_flight: concurrent ``PutRecords`` calls.
            linger_s: how long a batch may wait to fill before it is sent.
            backoff_base_s: first retry delay of a failed record (doubles per attempt).
            backoff_cap_s: longest retry delay.
        """
        self.stream_name = stream_name
        self.stats = WriterStats()
        self._put_records = put_records
        self._buffer = buffer_records
        self._max_unacked_ms = max_unacked_ms
        self._unacked_ms: dict[str, float] = {}
        self._max_in_flight = max_in_flight
        self._linger = linger_s
        self._backoff_base = backoff_base_s
        self._backoff_cap = backoff_cap_s
        self._queues: dict[str, deque[_Entry]] = {}
        self._ready: OrderedDict[str, None] = OrderedDict()  # keys whose head may be sent
        self._in_flight = 0
        self._pending = 0
        self._wakeup: asyncio.Event | None = None
        self._space: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix=f"kinesis-{stream_name}")

    @property
    def pending(self) -> int:
        """Records accepted and not yet in Kinesis."""
        return self._pending

    def start(self) -> None:
        """Start the batching task on the running loop."""
        self._wakeup = asyncio.Event()
        self._space = asyncio.Condition()
        self._task = asyncio.create_task(self._run(), name=f"writer-{self.stream_name}")

    @property
    def unacked_ms(self) -> float:
        """The most audio any one key has unacknowledged now (what a crash would lose)."""
        return max(self._unacked_ms.values(), default=0.0)

    def _full(self, key: str, ms: float) -> bool:
        queue = self._queues.get(key)
        if queue is None:
            return False
        unacked = self._unacked_ms.get(key, 0.0)
        cap = self._max_unacked_ms
        return len(queue) >= self._buffer or (
            cap is not None and unacked > 0 and unacked + ms > cap
        )

    def offer(self, key: str, data: bytes, ms: float = 0.0) -> bool:
        """Queue one record of ``ms`` of audio unless ``key`` is full (the synchronous path).

        Returns:
            True when queued; False when the caller must wait (``await put``) instead.
        """
        if self._full(key, ms):
            return False
        self._enqueue(key, data, ms)
        return True

    async def put(self, key: str, data: bytes, ms: float = 0.0) -> None:
        """Queue one record; wait first while ``key`` is full (back-pressure)."""
        assert self._space is not None, "start() first"
        if self._full(key, ms):
            began = time.monotonic()
            async with self._space:
                await self._space.wait_for(lambda: not self._full(key, ms))
            self.stats.backpressure_s += time.monotonic() - began
        self._enqueue(key, data, ms)

    def _enqueue(self, key: str, data: bytes, ms: float) -> None:
        queue = self._queues.get(key)
        if len(data) + len(key.encode()) > MAX_RECORD_BYTES:
            raise RecordError(f"record of {len(data)} bytes is over Kinesis's 1 MiB limit")
        assert self._wakeup is not None, "start() first"
        if queue is None:
            queue = self._queues[key] = deque()
            self._ready[key] = None
        queue.append(_Entry(key, data, ms))
        if ms:
            self._unacked_ms[key] = self._unacked_ms.get(key, 0.0) + ms
        self._pending += 1
        self._wakeup.set()

    async def drain(self, timeout_s: float) -> int:
        """Wait until every queued record is in Kinesis, or ``timeout_s`` seconds pass.

        Returns:
            The number of records still undelivered (0 on success); they are logged.
        """
        assert self._space is not None
        try:
            async with asyncio.timeout(timeout_s), self._space:
                await self._space.wait_for(lambda: self._pending == 0)
        except TimeoutError:
            log.error(
                "kinesis %s: %d records undelivered after %.1fs drain",
                self.stream_name,
                self._pending,
                timeout_s,
            )
        return self._pending

    async def close(self) -> None:
        """Stop the batching task and the thread pool (call :meth:`drain` first)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for timer in self._timers:
            timer.cancel()
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- internals ------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._linger and len(self._ready) < MAX_BATCH_RECORDS:
                await asyncio.sleep(self._linger)
            while self._ready and self._in_flight < self._max_in_flight:
                batch = self._take_batch()
                self._in_flight += 1
                task = asyncio.create_task(self._send(batch))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)

    def _take_batch(self) -> list[_Entry]:
        batch: list[_Entry] = []
        size = 0
        while self._ready and len(batch) < MAX_BATCH_RECORDS:
            key = next(iter(self._ready))
            head = self._queues[key][0]
            cost = len(head.data) + len(key.encode())
            if batch and size + cost > MAX_BATCH_BYTES:
                break
            del self._ready[key]
            batch.append(head)
            size += cost
        return batch

    async def _send(self, batch: Sequence[_Entry]) -> None:
        records = [{"Data": e.data, "PartitionKey": e.key} for e in batch]
        began = time.monotonic()
        try:
            response = await asyncio.get_running_loop().run_in_executor(
                self._pool, lambda: self._put_records(StreamName=self.stream_name, Records=records)
            )
            results: Sequence[Mapping[str, Any]] = response["Records"]
        except Exception as error:
            self.stats.failed_calls += 1
            log.warning("kinesis %s: PutRecords failed: %s", self.stream_name, error)
            results = [{"ErrorCode": type(error).__name__}] * len(batch)
        self.stats.put_latency_ms.append((time.monotonic() - began) * 1000)
        self.stats.batches += 1
        self._in_flight -= 1
        delivered = 0
        for entry, result in zip(batch, results, strict=True):
            if result.get("ErrorCode"):
                entry.attempts += 1
                self.stats.retries += 1
                self._retry_later(entry)
                continue
            queue = self._queues[entry.key]
            queue.popleft()
            if entry.ms:
                left = self._unacked_ms[entry.key] - entry.ms
                if left > 0.001:
                    self._unacked_ms[entry.key] = left
                else:
                    del self._unacked_ms[entry.key]
            delivered += 1
            self.stats.records += 1
            self.stats.bytes += len(entry.data)
            if queue:
                self._ready[entry.key] = None
            else:
                del self._queues[entry.key]
        self._pending -= delivered
        assert self._space is not None and self._wakeup is not None
        async with self._space:
            self._space.notify_all()
        self._wakeup.set()

    def _retry_later(self, entry: _Entry) -> None:
        delay = random.uniform(0, min(self._backoff_cap, self._backoff_base * 2**entry.attempts))  # noqa: S311 - jitter, not crypto
        loop = asyncio.get_running_loop()

        def ready_again() -> None:
            self._timers.discard(handle)
            self._ready[entry.key] = None
            assert self._wakeup is not None
            self._wakeup.set()

        handle = loop.call_later(delay, ready_again)
        self._timers.add(handle)
