"""Stop streams through Vobiz REST (idempotent), and reconcile one with Vobiz.

DELETE /v1/streams/{stream_id}, DELETE /v1/calls/{call_uuid}/streams (stop-all),
POST /v1/streams/{stream_id}/reconcile.
"""

from aws_lambda_powertools.event_handler import Response

from callstream import wiring
from callstream.control import operations
from callstream.http import http_function, json_response

app, lambda_handler = http_function()


@app.delete("/v1/streams/<stream_id>")
def stop(stream_id: str) -> Response[str]:
    return json_response(200, operations.stop_stream(wiring.control_services(), stream_id))


@app.delete("/v1/calls/<call_uuid>/streams")
def stop_all(call_uuid: str) -> Response[str]:
    return json_response(200, operations.stop_call_streams(wiring.control_services(), call_uuid))


@app.post("/v1/streams/<stream_id>/reconcile")
def reconcile(stream_id: str) -> Response[str]:
    return json_response(200, operations.reconcile_stream(wiring.control_services(), stream_id))
