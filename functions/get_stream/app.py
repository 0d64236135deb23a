"""GET /v1/streams/{stream_id}: one stream's state, format, counts and links."""

from aws_lambda_powertools.event_handler import Response

from callstream import wiring
from callstream.control import operations
from callstream.http import http_function, json_response

app, lambda_handler = http_function()


@app.get("/v1/streams/<stream_id>")
def get(stream_id: str) -> Response[str]:
    return json_response(200, operations.get_stream(wiring.control_services(), stream_id))
