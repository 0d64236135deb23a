"""GET/POST /vobiz/stream-status and /vobiz/hangup: Vobiz's signed callbacks, idempotent."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from callstream import streams
from callstream.http import install_error_handlers, json_response, signed_request

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
install_error_handlers(app)


@app.route("/vobiz/stream-status", method=["GET", "POST"])
def status() -> Response[str]:
    request = signed_request(app.current_event.raw_event)
    return json_response(200, streams.handle_callback(streams.services(), request))


@app.route("/vobiz/hangup", method=["GET", "POST"])
def hangup() -> Response[str]:
    request = signed_request(app.current_event.raw_event)
    return json_response(200, streams.handle_hangup(streams.services(), request))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
