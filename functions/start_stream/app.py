"""POST /v1/calls/{call_uuid}/streams: start a stream on a live call (Vobiz REST)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from callstream import streams
from callstream.http import install_error_handlers, json_response, public_base

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
install_error_handlers(app)


@app.post("/v1/calls/<call_uuid>/streams")
def start(call_uuid: str) -> Response[str]:
    request = streams.parse_model(
        streams.StartStreamRequest, streams.parse_json(app.current_event.body)
    )
    key = app.current_event.headers.get("idempotency-key")
    base = public_base(app.current_event.raw_event)
    view = streams.start_stream_once(
        streams.services(), call_uuid, request, key, base, app.lambda_context
    )
    return json_response(201, view, {"Location": f"/v1/streams/{view['stream_id']}"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
