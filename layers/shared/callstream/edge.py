"""The Lambdas' edge for events and record batches: Powertools stays here, the domain takes values.

Every non-HTTP function is one line over a domain function (HTTP ones: :mod:`callstream.http`):

* :func:`event_function` for EventBridge and scheduled invocations: ``handle(services(), detail)``.
* :func:`batch_function` for Kinesis batches: ``handle(services(), data)`` per record, with
  partial batch responses, and a record that can never be processed put aside
  (:mod:`callstream.analytics.quarantine`) instead of holding up its shard
  (:func:`located_batch_function`: ``handle(services(), data, at)``, where the record is).

:func:`observed` puts the Logger, Tracer and Metrics around a handler: all of them use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from callstream.analytics import quarantine
from callstream.ports import Quarantining, RecordAt

S = TypeVar("S")
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


Q = TypeVar("Q", bound=Quarantining)


def observed(handler: Handler, *, correlation_id_path: str | None = None) -> Handler:
    """``handler`` with Powertools' Logger (Lambda context), Tracer and Metrics around it."""
    logger, tracer, metrics = Logger(), Tracer(), Metrics()
    return logger.inject_lambda_context(correlation_id_path=correlation_id_path)(
        tracer.capture_lambda_handler(metrics.log_metrics(handler))
    )


def count(name: str, value: float = 1) -> None:
    """Add to this invocation's metric ``name`` (flushed by :func:`observed`)."""
    Metrics().add_metric(name=name, unit=MetricUnit.Count, value=value)


def event_function(
    services: Callable[[], S],
    handle: Callable[[S, dict[str, Any]], dict[str, Any]],
    *,
    whole_event: bool = False,
    counts: Mapping[str, Callable[[dict[str, Any]], float]] | None = None,
) -> Handler:
    """A handler for EventBridge (or scheduled) events: ``handle(services(), event["detail"])``.

    Args:
        services: the composition root's factory (cached there).
        handle: the domain function.
        whole_event: hand ``handle`` the whole event (``id``, ``detail-type``, ``time``…).
        counts: metrics to add from ``handle``'s result, by name.
    """

    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        result = handle(services(), event if whole_event else (event.get("detail") or {}))
        for name, of in (counts or {}).items():
            count(name, of(result))
        return result

    return observed(lambda_handler)


def batch_function(
    services: Callable[[], Q],
    handle: Callable[[Q, bytes], object],
    *,
    time_left: Callable[[float], None] | None = None,
    passed_over: Callable[[list[bytes]], set[int]] | None = None,
) -> Handler:
    """A handler for Kinesis batches: ``handle(services(), data)`` for each record.

    As :func:`located_batch_function`, for a domain that needs only the record's bytes.
    """
    return located_batch_function(
        services,
        lambda svc, data, _at: handle(svc, data),
        time_left=time_left,
        passed_over=passed_over,
    )


def located_batch_function(
    services: Callable[[], Q],
    handle: Callable[[Q, bytes, RecordAt], object],
    *,
    time_left: Callable[[float], None] | None = None,
    passed_over: Callable[[list[bytes]], set[int]] | None = None,
) -> Handler:
    """A handler for Kinesis batches: ``handle(services(), data, at)`` for each record.

    ``at`` is where the record is on its stream (shard, sequence number), to read it again.
    A record ``handle`` raises :class:`~callstream.exceptions.RecordError` for is kept in the
    services' ``quarantine`` and counted (``QuarantinedRecords``); any other error reports the
    record as a batch item failure, and Lambda resumes the shard at it.

    Args:
        services: the composition root's factory (cached there).
        handle: the domain function for one record's bytes and place.
        time_left: called with the invocation's seconds left before each record; it raises
            :class:`~callstream.exceptions.NotReadyError` to defer the record (and what follows
            it) to the next invocation. Deferrals are reported even when every record is
            deferred: an error would make Lambda bisect the batch instead of resuming at the
            first deferred record.
        passed_over: given the batch's records, the positions of those a later record of the
            same batch makes moot; they are skipped (and counted, ``SupersededRecords``).
    """
    processor = BatchProcessor(
        event_type=EventType.KinesisDataStreams,
        raise_on_entire_batch_failure=time_left is None,
    )

    skipped: set[str] = set()  # this batch's sequence numbers passed over

    def record_handler(record: KinesisStreamRecord, lambda_context: LambdaContext) -> object:
        if record.kinesis.sequence_number in skipped:
            return None
        if time_left is not None:
            time_left(lambda_context.get_remaining_time_in_millis() / 1000)
        svc = services()
        # Lambda's eventID is "<shard id>:<sequence number>"
        at = RecordAt(record.event_id.split(":", 1)[0], record.kinesis.sequence_number)
        return quarantine.or_put_aside(
            lambda data: handle(svc, data, at),
            record.kinesis.data_as_bytes(),
            store=svc.quarantine,
            stream_arn=record.event_source_arn,
            sequence=record.kinesis.sequence_number,
            counted=lambda: count("QuarantinedRecords"),
        )

    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        skipped.clear()
        if passed_over is not None:
            batch = [KinesisStreamRecord(r) for r in event.get("Records", [])]
            moot = passed_over([r.kinesis.data_as_bytes() for r in batch])
            skipped.update(batch[i].kinesis.sequence_number for i in moot)
            if skipped:
                count("SupersededRecords", len(skipped))
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        return dict(response)

    return observed(lambda_handler)
