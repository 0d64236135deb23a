"""The live console: its page (public), and what the page reads (signed-in users only).

GET /console (the page), /console/assets/{name}, /console/config (how to sign in): public,
they carry no call data. GET /console/api/...: Cognito-signed-in users (a JWT authorizer in
AWS; the local bearer token in the embedded stack). Talk-back goes through the control
function (it reaches the tasks); this one reads DynamoDB and S3 only.
"""

from pathlib import Path

from aws_lambda_powertools.event_handler import Response

from callstream import wiring
from callstream.console import views
from callstream.control.api_models import check_id
from callstream.exceptions import NotFoundError
from callstream.http import http_function
from callstream.http import json_response as _json

app, lambda_handler = http_function()


def json_response(status: int, body: dict) -> Response[str]:
    """A JSON answer with the console's security headers (it is never cached)."""
    return _json(status, body, {"Cache-Control": "no-store", **security_headers()})


STATIC = Path(__file__).parent / "static"


def csp() -> str:
    """The page's Content-Security-Policy.

    The page runs its own script and style only, talks to its own API and to Cognito (or the
    stand-in the settings name), plays recordings from S3 (pre-signed; the embedded stack's
    moto on the loopback), and no other origin may frame it: sign-in, Play and End stream are
    not to be clicked through a frame.
    """
    cfg = wiring.console_services().config
    signs_in = views.cognito_url(cfg.console_cognito_url, None) if cfg.console_cognito_url else ""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            " ".join(["connect-src 'self' https://*.amazonaws.com", signs_in.rstrip("/")]).strip(),
            "media-src 'self' https: http://127.0.0.1:* http://localhost:*",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers() -> dict[str, str]:
    """On the page, its assets and every answer of its API."""
    return {
        "Content-Security-Policy": csp(),
        "X-Frame-Options": "DENY",  # for browsers before frame-ancestors
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}


def _static(name: str, content_type: str) -> Response[str]:
    return Response(
        status_code=200,
        content_type=content_type,
        body=(STATIC / name).read_text(),
        headers={"Cache-Control": "no-cache", **security_headers()},
    )


@app.get("/console")
def page() -> Response[str]:
    return _static("index.html", "text/html; charset=utf-8")


@app.get("/console/assets/<name>")
def asset(name: str) -> Response[str]:
    if name not in ASSETS:
        raise NotFoundError(f"no asset {name[:60]!r}")
    return _static(name, ASSETS[name])


@app.get("/console/config")
def config() -> Response[str]:
    return json_response(200, views.page_config(wiring.console_services()))


@app.get("/console/api/calls")
def calls() -> Response[str]:
    query = app.current_event.query_string_parameters or {}
    svc = wiring.console_services()
    page = views.calls(
        svc,
        query.get("state"),
        query.get("q"),
        query.get("before"),
        query.get("since"),
        query.get("until"),
        query.get("sentiment"),
    )
    return json_response(200, page)


@app.get("/console/api/calls/<call_uuid>/events")
def events(call_uuid: str) -> Response[str]:
    after = (app.current_event.query_string_parameters or {}).get("after", "")
    svc = wiring.console_services()
    return json_response(200, views.events(svc, check_id(call_uuid, "call_uuid"), after[:80]))


@app.get("/console/api/calls/<call_uuid>/streams/<stream_id>/recording")
def recording(call_uuid: str, stream_id: str) -> Response[str]:
    svc = wiring.console_services()
    found = views.recording(svc, check_id(call_uuid, "call_uuid"), check_id(stream_id, "stream_id"))
    return json_response(200, found)


@app.get("/console/api/calls/<call_uuid>/streams/<stream_id>/transcript")
def transcript(call_uuid: str, stream_id: str) -> Response[str]:
    call_uuid, stream_id = check_id(call_uuid, "call_uuid"), check_id(stream_id, "stream_id")
    text = views.transcript(wiring.console_services(), call_uuid, stream_id)
    name = f"transcript-{call_uuid}-{stream_id}.txt"
    return Response(
        status_code=200,
        content_type="text/plain; charset=utf-8",
        body=text,
        headers={"Content-Disposition": f'attachment; filename="{name}"', **security_headers()},
    )
