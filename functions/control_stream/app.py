"""Talk back through the stream's task: play, checkpoint, clear, end; where a play is.

POST /v1/streams/{stream_id}/{play|checkpoint|clear|end} (a play is answered at once, 202);
GET /v1/streams/{stream_id}/plays/{play_id}.

The console's talk-back (POST /console/api/streams/{stream_id}/{action}, GET
/console/api/streams/{stream_id}/plays/{play_id}, for signed-in console users) is the same
operation behind another authorizer.
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
    return json_response(202 if action == "play" else 200, answer)


@app.get("/v1/streams/<stream_id>/plays/<play_id>")
@app.get("/console/api/streams/<stream_id>/plays/<play_id>")
def play(stream_id: str, play_id: str) -> Response[str]:
    return json_response(200, operations.play_state(wiring.control_services(), stream_id, play_id))
