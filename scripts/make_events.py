"""Write a sample event for every function under events/: what Lambda hands each one in AWS.

* ``api/``, ``callbacks/``: API Gateway v2 (HTTP API, payload 2.0) events for every route, and
  Vobiz callbacks signed with the documented test credentials (auth id ``MA_TEST``, auth token
  ``test-auth-token-callstream``; never real ones).
* ``kinesis/``: AudioStream and UtteranceStream events, a tape's first seconds through the real
  audio core and record encoder.
* ``eventbridge/``: each bus event as the real consumers publish it, run on the embedded stack.
* ``schedule/``: the sweeper's scheduled event.

The same files drive ``make invoke`` (no Docker), ``sam local invoke -e`` and the tests.
Run: ``make events`` (``--api`` for the first two folders only: no stack).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "shared"), str(ROOT / "services"), str(ROOT)]

from local.vobiz_wire import sign_v3  # noqa: E402 - Vobiz's signature, not the product's

AUTH_ID = "MA_TEST"
AUTH_TOKEN = "test-auth-token-callstream"
DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"
CALL = "3f1c8a2e-5b7d-4e3a-9c1f-0a2b3c4d5e6f"
STREAM = "9d8c7b6a-1234-4abc-8def-0123456789ab"


def event(
    method: str,
    path: str,
    route: str,
    *,
    body: str | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
    path_params: dict[str, str] | None = None,
    iam: bool = True,
    jwt: bool = False,
) -> dict:
    all_headers = {
        "host": DOMAIN,
        "user-agent": "callstream-tests",
        "x-forwarded-proto": "https",
        **(headers or {}),
    }
    context = {
        "accountId": "123456789012",
        "apiId": "abc123",
        "domainName": DOMAIN,
        "domainPrefix": "abc123",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "callstream-tests",
        },
        "requestId": "req-" + hashlib.sha1(f"{method}{path}{body}".encode()).hexdigest()[:12],
        "routeKey": route,
        "stage": "$default",
        "time": "24/Nov/2026:12:00:00 +0000",
        "timeEpoch": 1795522800000,
    }
    if iam:
        context["authorizer"] = {
            "iam": {
                "accessKey": "AKIA...",
                "accountId": "123456789012",
                "callerId": "AIDA...",
                "userArn": "arn:aws:iam::123456789012:user/operator",
            }
        }
    if jwt:  # the console's Cognito JWT authorizer, as API Gateway passes its claims on
        context["authorizer"] = {
            "jwt": {
                "claims": {
                    "sub": "5f1e2d3c-0000-4000-8000-00000000c0de",
                    "cognito:username": "operator",
                    "token_use": "id",
                    "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE",
                },
                "scopes": None,
            }
        }
    doc = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if query:
        doc["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if path_params:
        doc["pathParameters"] = path_params
    if body is not None:
        doc["body"] = body
    return doc


def sign(method: str, url: str, params: dict, nonce: str) -> str:
    return sign_v3(AUTH_TOKEN, method, url, params, nonce)


def vobiz(
    method: str,
    path: str,
    route: str,
    params: dict,
    nonce: str,
    *,
    encoding: str = "form",
    query: str = "",
    forge: bool = False,
) -> dict:
    url = f"https://{DOMAIN}{path}" + (f"?{query}" if query else "")
    signed_params = (
        {**dict(p.split("=", 1) for p in query.split("&") if p)} if method == "GET" else params
    )
    signature = sign(method, url, signed_params if method == "POST" else {}, nonce)
    if forge:
        signature = base64.b64encode(b"\x00" * 32).decode()
    headers = {"x-vobiz-signature-v3": signature, "x-vobiz-signature-v3-nonce": nonce}
    body = None
    if method == "POST":
        if encoding == "json":
            headers["content-type"] = "application/json"
            body = json.dumps(params)
        else:
            headers["content-type"] = "application/x-www-form-urlencoded"
            body = urlencode(params)
    return event(method, path, route, body=body, query=query, headers=headers, iam=False)


def main() -> None:
    files = api_events()
    if "--api" not in sys.argv[1:]:
        files.update(pipeline_events())
    for path, doc in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(path.relative_to(ROOT))


def api_events() -> dict[Path, dict]:
    """The HTTP API's routes and Vobiz's callbacks."""
    api = ROOT / "events" / "api"
    callbacks = ROOT / "events" / "callbacks"
    start = {
        "audio_track": "both",
        "content_type": "audio/x-mulaw;rate=8000",
        "bidirectional": False,
        "agent": "none",
        "extra_headers": {"tenant": "acme"},
    }
    files = {
        api / "start_stream.json": event(
            "POST",
            f"/v1/calls/{CALL}/streams",
            "POST /v1/calls/{call_uuid}/streams",
            body=json.dumps(start),
            path_params={"call_uuid": CALL},
            headers={"content-type": "application/json", "idempotency-key": "retry-42"},
        ),
        api / "start_stream_bad_body.json": event(
            "POST",
            f"/v1/calls/{CALL}/streams",
            "POST /v1/calls/{call_uuid}/streams",
            body=json.dumps({"audio_track": "sideways", "content_type": "audio/opus"}),
            path_params={"call_uuid": CALL},
            headers={"content-type": "application/json"},
        ),
        api / "start_stream_not_json.json": event(
            "POST",
            f"/v1/calls/{CALL}/streams",
            "POST /v1/calls/{call_uuid}/streams",
            body="{not json",
            path_params={"call_uuid": CALL},
        ),
        api / "list_streams.json": event(
            "GET",
            f"/v1/calls/{CALL}/streams",
            "GET /v1/calls/{call_uuid}/streams",
            path_params={"call_uuid": CALL},
        ),
        api / "get_stream.json": event(
            "GET",
            f"/v1/streams/{STREAM}",
            "GET /v1/streams/{stream_id}",
            path_params={"stream_id": STREAM},
        ),
        api / "get_stream_unknown.json": event(
            "GET",
            "/v1/streams/no-such-stream",
            "GET /v1/streams/{stream_id}",
            path_params={"stream_id": "no-such-stream"},
        ),
        api / "get_stream_bad_id.json": event(
            "GET",
            "/v1/streams/..%2F..%2Fetc%2Fpasswd",
            "GET /v1/streams/{stream_id}",
            path_params={"stream_id": "../../etc/passwd"},
        ),
        api / "stop_stream.json": event(
            "DELETE",
            f"/v1/streams/{STREAM}",
            "DELETE /v1/streams/{stream_id}",
            path_params={"stream_id": STREAM},
        ),
        api / "control_stream_play.json": event(
            "POST",
            f"/v1/streams/{STREAM}/play",
            "POST /v1/streams/{stream_id}/play",
            body=json.dumps(
                {"audio_b64": base64.b64encode(bytes(3200)).decode(), "sample_rate": 8000}
            ),
            path_params={"stream_id": STREAM},
            headers={"content-type": "application/json"},
        ),
        api / "control_stream_checkpoint.json": event(
            "POST",
            f"/v1/streams/{STREAM}/checkpoint",
            "POST /v1/streams/{stream_id}/checkpoint",
            body=json.dumps({"name": "turn-1", "timeout_s": 5}),
            path_params={"stream_id": STREAM},
            headers={"content-type": "application/json"},
        ),
        api / "control_stream_clear.json": event(
            "POST",
            f"/v1/streams/{STREAM}/clear",
            "POST /v1/streams/{stream_id}/clear",
            body="{}",
            path_params={"stream_id": STREAM},
            headers={"content-type": "application/json"},
        ),
        callbacks / "answer_get.json": vobiz(
            "GET",
            "/vobiz/answer",
            "GET /vobiz/answer",
            {},
            "nonce-answer-get",
            query=f"CallUUID={CALL}&Direction=inbound&From=15550001111&To=15550002222&agent=prompt&bidirectional=true",
        ),
        callbacks / "answer_post.json": vobiz(
            "POST",
            "/vobiz/answer",
            "POST /vobiz/answer",
            {"CallUUID": CALL, "Direction": "inbound", "From": "15550001111", "To": "15550002222"},
            "nonce-answer-post",
        ),
        callbacks / "start_form.json": vobiz(
            "POST",
            "/vobiz/stream-status",
            "POST /vobiz/stream-status",
            {
                "Event": "StartStream",
                "StreamID": STREAM,
                "CallUUID": CALL,
                "Timestamp": "2026-11-24 12:00:00",
                "X-VH-tenant": "acme",
            },
            "nonce-start-form",
        ),
        callbacks / "start_json.json": vobiz(
            "POST",
            "/vobiz/stream-status",
            "POST /vobiz/stream-status",
            {
                "Event": "StartStream",
                "StreamID": STREAM,
                "CallUUID": CALL,
                "Timestamp": "2026-11-24 12:00:00",
            },
            "nonce-start-json",
            encoding="json",
        ),
        callbacks / "played_form.json": vobiz(
            "POST",
            "/vobiz/stream-status",
            "POST /vobiz/stream-status",
            {"Event": "PlayedStream", "StreamID": STREAM, "CallUUID": CALL, "Name": "turn-1"},
            "nonce-played-form",
        ),
        callbacks / "stop_get.json": vobiz(
            "GET",
            "/vobiz/stream-status",
            "GET /vobiz/stream-status",
            {},
            "nonce-stop-get",
            query=f"CallUUID={CALL}&Event=StopStream&StreamID={STREAM}&Timestamp=2026-11-24+12%3A05%3A00",
        ),
        callbacks / "hangup_form.json": vobiz(
            "POST",
            "/vobiz/hangup",
            "POST /vobiz/hangup",
            {
                "Event": "Hangup",
                "CallUUID": CALL,
                "From": "15550001111",
                "To": "15550002222",
                "CallStatus": "completed",
                "HangupCause": "NORMAL_CLEARING",
                "Duration": "312",
            },
            "nonce-hangup-form",
        ),
        callbacks / "start_form_replayed.json": vobiz(
            "POST",
            "/vobiz/stream-status",
            "POST /vobiz/stream-status",
            {
                "Event": "StartStream",
                "StreamID": STREAM,
                "CallUUID": CALL,
                "Timestamp": "2026-11-24 12:00:00",
                "X-VH-tenant": "acme",
            },
            "nonce-start-form",
        ),
        callbacks / "start_form_forged.json": vobiz(
            "POST",
            "/vobiz/stream-status",
            "POST /vobiz/stream-status",
            {"Event": "StartStream", "StreamID": STREAM, "CallUUID": CALL},
            "nonce-forged",
            forge=True,
        ),
    }
    unsigned = vobiz(
        "POST",
        "/vobiz/stream-status",
        "POST /vobiz/stream-status",
        {"Event": "StopStream", "StreamID": STREAM, "CallUUID": CALL},
        "nonce-unsigned",
    )
    del unsigned["headers"]["x-vobiz-signature-v3"]
    files[callbacks / "stop_form_unsigned.json"] = unsigned
    return files | console_events(api)


def console_events(api: Path) -> dict[Path, dict]:
    """The console's routes (its page is public, its API behind the Cognito authorizer) and the
    stream operations the other files leave out."""
    call, stream = {"call_uuid": CALL}, {"call_uuid": CALL, "stream_id": STREAM}
    return {
        api / "console_page.json": event("GET", "/console", "GET /console", iam=False),
        api / "console_asset.json": event(
            "GET",
            "/console/assets/console.js",
            "GET /console/assets/{name}",
            path_params={"name": "console.js"},
            iam=False,
        ),
        api / "console_config.json": event(
            "GET", "/console/config", "GET /console/config", iam=False
        ),
        api / "console_calls.json": event(
            "GET",
            "/console/api/calls",
            "GET /console/api/calls",
            query="state=live",
            iam=False,
            jwt=True,
        ),
        api / "console_events.json": event(
            "GET",
            f"/console/api/calls/{CALL}/events",
            "GET /console/api/calls/{call_uuid}/events",
            path_params=call,
            iam=False,
            jwt=True,
        ),
        api / "console_recording.json": event(
            "GET",
            f"/console/api/calls/{CALL}/streams/{STREAM}/recording",
            "GET /console/api/calls/{call_uuid}/streams/{stream_id}/recording",
            path_params=stream,
            iam=False,
            jwt=True,
        ),
        api / "console_transcript.json": event(
            "GET",
            f"/console/api/calls/{CALL}/streams/{STREAM}/transcript",
            "GET /console/api/calls/{call_uuid}/streams/{stream_id}/transcript",
            path_params=stream,
            iam=False,
            jwt=True,
        ),
        api / "console_clear.json": event(
            "POST",
            f"/console/api/streams/{STREAM}/clear",
            "POST /console/api/streams/{stream_id}/{action}",
            body="{}",
            path_params={"stream_id": STREAM, "action": "clear"},
            headers={"content-type": "application/json"},
            iam=False,
            jwt=True,
        ),
        api / "control_stream_play_state.json": event(
            "GET",
            f"/v1/streams/{STREAM}/plays/p1",
            "GET /v1/streams/{stream_id}/plays/{play_id}",
            path_params={"stream_id": STREAM, "play_id": "p1"},
        ),
        api / "console_play_state.json": event(
            "GET",
            f"/console/api/streams/{STREAM}/plays/p1",
            "GET /console/api/streams/{stream_id}/plays/{play_id}",
            path_params={"stream_id": STREAM, "play_id": "p1"},
            iam=False,
            jwt=True,
        ),
        api / "control_stream_end.json": event(
            "POST",
            f"/v1/streams/{STREAM}/end",
            "POST /v1/streams/{stream_id}/end",
            body="{}",
            path_params={"stream_id": STREAM},
            headers={"content-type": "application/json"},
        ),
        api / "stop_all_streams.json": event(
            "DELETE",
            f"/v1/calls/{CALL}/streams",
            "DELETE /v1/calls/{call_uuid}/streams",
            path_params=call,
        ),
        api / "reconcile_stream.json": event(
            "POST",
            f"/v1/streams/{STREAM}/reconcile",
            "POST /v1/streams/{stream_id}/reconcile",
            path_params={"stream_id": STREAM},
        ),
    }


# -- the pipeline's own events: Kinesis records, bus events, the schedule ----------------------

#: The tape the Kinesis samples are cut from, and where: its first utterance (the agent's
#: greeting, 0.5-6.39 s) and the silence that ends it, before the caller's first word at 7.09 s
#: (mu-law 8 kHz, two tracks: 100 lines a second).
TAPE = ROOT / "events" / "tapes" / "support_call_mulaw_8k.jsonl"
TAPE_LINES = 1 + 700
#: A fixed envelope for the bus events (EventBridge numbers and times each delivery).
BUS_TIME = "2026-11-24T12:00:08Z"


def tape_records() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """The tape's first lines through the real audio core: (AudioStream, UtteranceStream)."""
    from callstream.audio.assembler import Assembler
    from callstream.audio.protocol import parse_message
    from callstream.audio.vad import Segmenter
    from callstream.vocabulary import AudioLimits

    cfg = AudioLimits()
    asm = Assembler(limits=cfg, segmenter_factory=lambda r, t: Segmenter(r, t, cfg))
    audio: list[tuple[str, bytes]] = []
    utterances: list[tuple[str, bytes]] = []

    def take() -> None:
        for found in asm.events_ready():
            write = getattr(found, "write", None)
            if write is not None:
                to = audio if write.stream == "audio" else utterances
                to.append((found.record.stream_id, write.data))

    for line in TAPE.read_text().splitlines()[:TAPE_LINES]:
        doc = json.loads(line)
        if doc["event"] == "start":
            doc["start"].update(streamId=STREAM, callId=CALL)
        else:
            doc["streamId"] = STREAM
        asm.receive(parse_message(json.dumps(doc)))
        take()
    asm.close("socket closed")  # Vobiz sends no stop: the socket close ends the stream
    take()
    return audio, utterances


def pipeline_events() -> dict[Path, dict]:
    """Kinesis events from the real record encoders; bus events as the real consumers publish
    them on the embedded stack (moto's EventBridge, the envelope Lambda gets); the schedule's."""
    from local.kinesis_events import kinesis_event
    from local.lambdas import invoke
    from local.stack import Stack

    kinesis, bus = ROOT / "events" / "kinesis", ROOT / "events" / "eventbridge"
    audio, utterances = tape_records()
    if len(utterances) != 1:
        raise SystemExit(f"the tape's cut holds {len(utterances)} utterances, not 1: move it")
    files = {
        kinesis / "audio_stream.json": kinesis_event(audio),
        kinesis / "utterance_stream.json": kinesis_event(utterances, stream="UtteranceStream"),
    }
    seen: dict[str, dict] = {}
    with Stack(speed=50) as stack:
        assert stack.poller is not None
        stack.poller.listeners.append(lambda e: seen.setdefault(e["detail-type"], e))
        for folder, event in (
            ("store_recording", files[kinesis / "audio_stream.json"]),
            ("transcribe_utterance", files[kinesis / "utterance_stream.json"]),
        ):
            answer = invoke(folder, event)
            if answer != {"batchItemFailures": []}:
                raise SystemExit(f"{folder} refused its sample: {answer}")
        deadline = time.monotonic() + 60
        while "Call Completed" not in seen or not stack.poller.idle():
            if time.monotonic() > deadline:
                raise SystemExit(f"no Call Completed in 60 s; the bus carried {sorted(seen)}")
            time.sleep(0.1)
    for kind, event in seen.items():
        slug = kind.lower().replace(" ", "_")
        files[bus / f"{slug}.json"] = {  # EventBridge's envelope, in its documented order
            "version": "0",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"callstream/{kind}")),
            "detail-type": kind,
            "source": event["source"],
            "account": "123456789012",
            "time": BUS_TIME,
            "region": "us-east-1",
            "resources": event.get("resources", []),
            "detail": event["detail"],
        }
    files[ROOT / "events" / "schedule" / "sweep_streams.json"] = {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "callstream/schedule")),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": BUS_TIME,
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/callstream-SweepStreams"],
        "detail": {},
    }
    return files


if __name__ == "__main__":
    main()
