"""POST /v1/streams/{stream_id}/{play|checkpoint|clear|end}: talk back through its task.

The console's talk-back (POST /console/api/streams/{stream_id}/{action}, for signed-in console
users) is the same operation behind another authorizer.
"""

from aws_lambda_powertools.event_handler import Response

from callstream import wiring
from callstream.control import api_models, operations
from callstream.http import http_function, json_response

app, lambda_handler = http_function()


@app.post("/v1/streams/<stream_id>/<action>")
@app.post("/console/api/streams/<stream_id>/<action>")
def command(stream_id: str, action: str) -> Response[str]:
    body = api_models.parse_json(app.current_event.body)
    answer = operations.send_command(wiring.control_services(), stream_id, action, body)
    return json_response(200, answer)
