"""A blocking stream read in a thread of its own, its pieces handed to the event loop.

A model's reply (boto3's event stream, an HTTP body) and a voice's audio (Polly's body) arrive
over hundreds of milliseconds through reads that block. Each runs in a thread of its own, not in
the loop's default executor: that executor has only ``cpu_count + 4`` workers (six for two
CPUs), shared with the stream server's lease renewals and bookkeeping, and a few dozen callers
being answered at once would hold all of them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from callstream.exceptions import ModelError

T = TypeVar("T")


async def threaded(
    produce: Callable[[Callable[[T], None], threading.Event], None],
    timeout_s: float,
    what: str,
) -> AsyncIterator[T]:
    """Run ``produce(put, stop)`` in a thread and yield what it puts, as it does.

    ``stop`` is set once nobody listens (the stream was closed: a barge-in, a timeout); the
    producer checks it between reads, and a piece put after it is dropped.

    Raises:
        ModelError: the producer failed (its own ModelError as it is), or put nothing for
            ``timeout_s`` (``what`` names it in the message).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[T | BaseException | None] = asyncio.Queue()
    stop = threading.Event()

    def put(item: T | BaseException | None) -> None:
        if stop.is_set():
            return  # the stream is over (a barge-in, a timeout): nobody is listening
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop closed meanwhile (the process is ending)
            stop.set()

    def run() -> None:
        try:
            produce(put, stop)
            put(None)
        except BaseException as error:  # handed to the loop, raised there
            put(error)

    worker = threading.Thread(target=run, name=f"{what.removeprefix('the ')}-stream", daemon=True)
    worker.start()
    try:
        async for item in handed_over(queue, timeout_s, what):
            yield item
    finally:
        stop.set()  # the thread stops at its next piece


async def handed_over(
    queue: asyncio.Queue[T | BaseException | None], timeout_s: float, what: str
) -> AsyncIterator[T]:
    """What a producer puts in ``queue``, up to its ``None``; its error raised here, in order.

    Raises:
        ModelError: the producer failed (its own ModelError as it is), or put nothing for
            ``timeout_s``.
    """
    while True:
        try:  # not asyncio.wait_for: on 3.11 it can swallow a cancel that meets a put
            async with asyncio.timeout(timeout_s):
                item = await queue.get()
        except TimeoutError:
            raise ModelError(f"{what} sent nothing for {timeout_s:g} s") from None
        if item is None:
            return
        if isinstance(item, ModelError):
            raise item
        if isinstance(item, BaseException):
            raise ModelError(f"{what} failed: {item}") from item
        yield item
