"""UtteranceStream consumer: each utterance → text (Transcribe or offline) → DynamoDB + event."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from callstream import wiring
from callstream.analytics import quarantine, transcripts

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# Records deferred for want of time are reported, not raised, even when all of them are: an
# error would make Lambda bisect the batch instead of resuming at the first deferred record.
processor = BatchProcessor(
    event_type=EventType.KinesisDataStreams, raise_on_entire_batch_failure=False
)


def record_handler(record: KinesisStreamRecord, lambda_context: LambdaContext) -> Any:
    transcripts.check_time_left(lambda_context.get_remaining_time_in_millis() / 1000)
    svc = wiring.transcript_services()
    return quarantine.kinesis_record(
        record, lambda data: transcripts.handle(svc, data), svc.quarantine, metrics
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
