"""POST /v1/calls/{call_uuid}/streams: start a stream on a live call (Vobiz REST)."""

from aws_lambda_powertools.event_handler import Response

from callstream import wiring
from callstream.control import api_models, operations
from callstream.http import http_function, json_response, public_base

app, lambda_handler = http_function()


@app.post("/v1/calls/<call_uuid>/streams")
def start(call_uuid: str) -> Response[str]:
    body = api_models.parse_json(app.current_event.body)
    request = api_models.parse_model(api_models.StartStreamRequest, body)
    key = app.current_event.headers.get("idempotency-key")
    base = public_base(app.current_event.raw_event)
    view = operations.start_stream_once(
        wiring.control_services(), call_uuid, request, key, base, app.lambda_context
    )
    return json_response(201, view, {"Location": f"/v1/streams/{view['stream_id']}"})
