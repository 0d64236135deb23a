"""Every few minutes: end the live streams whose stream-server task no longer answers."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from callstream import wiring
from callstream.analytics import sweeper

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    swept = sweeper.sweep(wiring.sweeper_services())
    metrics.add_metric(name="StreamsSwept", unit=MetricUnit.Count, value=len(swept))
    if swept:
        logger.warning("swept streams of dead tasks", extra={"stream_ids": swept})
    return {"swept": swept}
