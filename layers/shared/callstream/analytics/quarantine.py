"""Kinesis records that can never be processed: kept whole in S3, counted, and passed over.

A Kinesis consumer that reports such a record as failed holds up its shard: Lambda retries
from it ``MaximumRetryAttempts`` times, then gives up on it *and on every record after it in
the batch*, other calls' audio included
(https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html).
So a record that is not ours (:class:`~callstream.exceptions.RecordError`) is put aside at once
and the batch goes on; one that is merely early (:class:`~callstream.exceptions.NotReadyError`)
or whose service failed is still reported, and retried. :func:`callstream.edge.batch_function`
applies it to every record of a batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from callstream.exceptions import RecordError
from callstream.ports import Recordings

log = logging.getLogger("callstream.analytics.quarantine")
T = TypeVar("T")


def quarantine_key(stream_arn: str, sequence: str) -> str:
    """Where an unreadable record of ``stream_arn`` is kept."""
    return f"quarantine/{stream_arn.rsplit('/', 1)[-1]}/{sequence}.bin"


def or_put_aside(
    handle: Callable[[bytes], T],
    data: bytes,
    *,
    store: Recordings,
    stream_arn: str,
    sequence: str,
    counted: Callable[[], None],
) -> T | str:
    """``handle(data)``; a :class:`RecordError` keeps the record in ``store`` instead.

    Returns ``handle``'s result, or the key the record was kept at. Anything else ``handle``
    raises goes through (the batch reports it and Lambda retries it).
    """
    try:
        return handle(data)
    except RecordError as error:
        key = quarantine_key(stream_arn, sequence)
        store.put(key, data)
        counted()
        # one line per record, bounded by what arrives; the error names no payload bytes
        log.warning("unreadable record kept at %s: %s", key, error)
        return key
