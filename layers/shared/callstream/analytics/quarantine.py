"""Kinesis records that can never be processed: kept whole in S3, counted, and passed over.

A Kinesis consumer that reports such a record as failed holds up its shard: Lambda retries
from it ``MaximumRetryAttempts`` times, then gives up on it *and on every record after it in
the batch*, other calls' audio included
(https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html).
So a record that is not ours (:class:`~callstream.exceptions.RecordError`) is put aside at once
and the batch goes on; one that is merely early (:class:`~callstream.exceptions.NotReadyError`)
or whose service failed is still reported, and retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from callstream.exceptions import RecordError

log = logging.getLogger("callstream.analytics.quarantine")
T = TypeVar("T")


class Store(Protocol):
    """Where quarantined records go (``callstream.adapters.s3_recordings.RecordingStore``)."""

    def put(self, key: str, body: bytes, content_type: str = ...) -> None:
        """Store ``body`` at ``key``."""


def quarantine_key(stream_arn: str, sequence: str) -> str:
    """Where an unreadable record of ``stream_arn`` is kept."""
    return f"quarantine/{stream_arn.rsplit('/', 1)[-1]}/{sequence}.bin"


def or_put_aside(
    handle: Callable[[bytes], T],
    data: bytes,
    *,
    store: Store,
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


def kinesis_record(
    record: KinesisStreamRecord, handle: Callable[[bytes], T], store: Store, metrics: Metrics
) -> T | str:
    """:func:`or_put_aside` for a record of a Lambda Kinesis batch (``QuarantinedRecords``)."""
    return or_put_aside(
        handle,
        record.kinesis.data_as_bytes(),
        store=store,
        stream_arn=record.event_source_arn,
        sequence=record.kinesis.sequence_number,
        counted=lambda: metrics.add_metric("QuarantinedRecords", MetricUnit.Count, 1),
    )
