"""GET|POST /vobiz/answer: Vobiz's answer URL; returns <Stream> XML (streaming from answer)."""

from aws_lambda_powertools.event_handler import Response

from callstream import wiring
from callstream.control import webhooks
from callstream.http import http_function, signed_request

app, lambda_handler = http_function(correlate=False)


@app.route("/vobiz/answer", method=["GET", "POST"])
def answer() -> Response[str]:
    request = signed_request(app.current_event.raw_event)
    xml = webhooks.answer_call(wiring.control_services(), request)
    return Response(status_code=200, content_type="application/xml", body=xml)
