"""Where the AWS stand-in differs from AWS in a way the product would trip on: mended here.

moto's Kinesis shard numbers a record by reading the last number and adding one, and says in
its own source that this "is not safe for concurrency": two PutRecords at once (the stream
server's writer keeps several in flight, from a thread pool; moto's server answers each request
in a thread) can take the same number, and one record overwrites the other. Kinesis itself
numbers records atomically. :func:`atomic_kinesis_puts` puts one lock around it, so what the
tests and the demo read from moto is what Kinesis would have kept.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_lock = threading.Lock()


def atomic_kinesis_puts() -> None:
    """Make moto's shard put atomic (once per process; idempotent)."""
    from moto.kinesis.models import Shard

    put = Shard.put_record
    if getattr(put, "_callstream_atomic", False):
        return

    @functools.wraps(put)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            return put(self, *args, **kwargs)

    locked._callstream_atomic = True  # type: ignore[attr-defined]
    Shard.put_record = locked  # type: ignore[method-assign]
