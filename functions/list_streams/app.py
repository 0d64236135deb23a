"""GET /v1/calls/{call_uuid}/streams: a call's streams, from the registry."""

from aws_lambda_powertools.event_handler import Response

from callstream import wiring
from callstream.control import operations
from callstream.http import http_function, json_response

app, lambda_handler = http_function()


@app.get("/v1/calls/<call_uuid>/streams")
def list_for_call(call_uuid: str) -> Response[str]:
    return json_response(200, operations.list_streams(wiring.control_services(), call_uuid))
