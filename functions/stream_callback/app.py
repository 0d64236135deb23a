"""GET/POST /vobiz/stream-status and /vobiz/hangup: Vobiz's signed callbacks, idempotent."""

from aws_lambda_powertools.event_handler import Response

from callstream import wiring
from callstream.control import webhooks
from callstream.http import http_function, json_response, signed_request

app, lambda_handler = http_function(correlate=False)


@app.route("/vobiz/stream-status", method=["GET", "POST"])
def status() -> Response[str]:
    request = signed_request(app.current_event.raw_event)
    return json_response(200, webhooks.handle_callback(wiring.control_services(), request))


@app.route("/vobiz/hangup", method=["GET", "POST"])
def hangup() -> Response[str]:
    request = signed_request(app.current_event.raw_event)
    return json_response(200, webhooks.handle_hangup(wiring.control_services(), request))
