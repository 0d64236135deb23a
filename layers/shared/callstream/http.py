"""The HTTP edge of the Lambdas: one resolver factory, and errors to JSON answers in one place.

Every HTTP function is made by :func:`http_function`: a Powertools resolver with the error
mapping installed, and its handler with the Logger, Tracer and Metrics around it
(:func:`callstream.edge.observed`; event and batch functions are made there). A
:class:`~callstream.exceptions.CallstreamError` becomes ``{"error": code, "message": ...}`` with
the status of :func:`~callstream.exceptions.http_status`; anything else becomes a 500 without
details (the stack trace goes to the log, never to the caller).
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from callstream.control import callbacks
from callstream.control.callbacks import SignedRequest
from callstream.edge import Handler, observed
from callstream.exceptions import AuthError, CallstreamError, http_status

log = logging.getLogger("callstream.http")


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[str]:
    """A JSON answer."""
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, default=str),
        headers=headers,
    )


def error_response(error: CallstreamError) -> Response[str]:
    """The JSON answer of a callstream error."""
    return json_response(http_status(error), {"error": error.code, "message": error.message})


def install_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Map callstream errors (and anything unexpected) to JSON answers on ``app``."""

    def _known(error: CallstreamError) -> Response[str]:
        if isinstance(error, AuthError):
            log.warning("refused: %s", error.message)
        elif http_status(error) >= 500:
            log.error("%s: %s", error.code, error.message)
        return error_response(error)

    def _unexpected(error: Exception) -> Response[str]:
        log.exception("unexpected error")
        return json_response(500, {"error": "internal_error", "message": "internal error"})

    def _no_route(error: Exception) -> Response[str]:
        event = app.current_event
        where = f"{event.request_context.http.method} {event.raw_path}"
        return json_response(404, {"error": "not_found", "message": f"no route {where[:200]}"})

    app.exception_handler(CallstreamError)(_known)
    # Powertools raises its NotFoundError for an unknown route; the catch-all below would
    # otherwise make it a 500 ("NoneType: None" in the log).
    app.not_found(_no_route)
    app.exception_handler(Exception)(_unexpected)


def http_function(*, correlate: bool = True) -> tuple[APIGatewayHttpResolver, Handler]:
    """One HTTP Lambda's edge: its resolver (add routes to it) and its handler.

    Args:
        correlate: take the correlation id from the API Gateway request id (operator routes);
            Vobiz's webhooks have no id of ours to correlate.
    """
    app = APIGatewayHttpResolver()
    install_error_handlers(app)
    path = correlation_paths.API_GATEWAY_HTTP if correlate else None

    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return app.resolve(event, context)

    return app, observed(lambda_handler, correlation_id_path=path)


def public_url(event: dict[str, Any]) -> str:
    """The URL Vobiz called, rebuilt from an API Gateway v2 event (for signatures).

    API Gateway gives the host (``requestContext.domainName``), the raw path and the raw query
    string; the scheme is https. A ``X-Forwarded-Proto`` header (a proxy in front, or the local
    gateway) overrides the scheme.
    """
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    context = event.get("requestContext") or {}
    host = headers.get("x-forwarded-host") or context.get("domainName") or headers.get("host", "")
    scheme = headers.get("x-forwarded-proto", "https")
    query = event.get("rawQueryString") or ""
    return f"{scheme}://{host}{event.get('rawPath', '/')}" + (f"?{query}" if query else "")


def public_base(event: dict[str, Any]) -> str:
    """``scheme://host`` the request came in on (the API's public base URL)."""
    return callbacks.origin(public_url(event))


def signed_request(event: dict[str, Any]) -> SignedRequest:
    """A Vobiz request from an API Gateway v2 event: method, public URL, params, signature."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    method = (event.get("requestContext") or {}).get("http", {}).get("method", "GET").upper()
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    params = callbacks.parse_params(
        method, headers.get("content-type", ""), body, event.get("rawQueryString") or ""
    )
    return SignedRequest(
        method=method,
        url=public_url(event),
        params=params,
        nonce=headers.get("x-vobiz-signature-v3-nonce", ""),
        signatures=headers.get("x-vobiz-signature-v3", ""),
        v2_nonce=headers.get("x-vobiz-signature-v2-nonce", ""),
        v2_signatures=headers.get("x-vobiz-signature-v2", ""),
    )
