"""Stop streams through Vobiz REST (idempotent), and reconcile one with Vobiz.

DELETE /v1/streams/{stream_id}, DELETE /v1/calls/{call_uuid}/streams (stop-all),
POST /v1/streams/{stream_id}/reconcile.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from callstream import streams
from callstream.http import install_error_handlers, json_response

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
install_error_handlers(app)


@app.delete("/v1/streams/<stream_id>")
def stop(stream_id: str) -> Response[str]:
    return json_response(200, streams.stop_stream(streams.services(), stream_id))


@app.delete("/v1/calls/<call_uuid>/streams")
def stop_all(call_uuid: str) -> Response[str]:
    return json_response(200, streams.stop_call_streams(streams.services(), call_uuid))


@app.post("/v1/streams/<stream_id>/reconcile")
def reconcile(stream_id: str) -> Response[str]:
    return json_response(200, streams.reconcile_stream(streams.services(), stream_id))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
