"""Write events/api/*.json and events/callbacks/*.json: API Gateway v2 (HTTP API, payload 2.0)
events for every route, and Vobiz callbacks signed with the documented test credentials.

Test credentials (never real ones): auth id ``MA_TEST``, auth token ``test-auth-token-callstream``.
The same files drive ``sam local invoke -e`` and the tests. Run: ``make events``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "shared"), str(ROOT)]

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
    api = ROOT / "events" / "api"
    callbacks = ROOT / "events" / "callbacks"
    api.mkdir(parents=True, exist_ok=True)
    callbacks.mkdir(parents=True, exist_ok=True)
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
    for path, doc in files.items():
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
