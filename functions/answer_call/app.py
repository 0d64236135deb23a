"""GET/POST /vobiz/answer: <Response><Stream> XML that streams the call from its answer."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from callstream import streams
from callstream.http import install_error_handlers, signed_request

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
install_error_handlers(app)


@app.route("/vobiz/answer", method=["GET", "POST"])
def answer() -> Response[str]:
    xml = streams.answer_call(streams.services(), signed_request(app.current_event.raw_event))
    return Response(status_code=200, content_type="application/xml", body=xml)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
