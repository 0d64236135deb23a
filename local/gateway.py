"""A local HTTP gateway: the HttpApi routes of template.yaml → the real handlers.

Each request becomes an API Gateway v2 (payload 2.0) event, exactly the shape Lambda receives
behind an HttpApi, and goes to the function that serves the route. IAM-authorised routes take
``Authorization: Bearer <token>`` instead of SigV4 (the printed local token); Vobiz routes are
public, as in AWS, and verify their own signatures.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.http_server import LocalHttpServer
from local.lambdas import invoke
from local.template import Route


def api_event(
    method: str,
    raw_path: str,
    headers: dict[str, str],
    body: bytes,
    route: Route,
    params: dict[str, str],
    host: str,
) -> dict[str, Any]:
    """An API Gateway v2 event for one request."""
    parts = urlsplit(raw_path)
    text = body.decode("utf-8", "replace") if body else None
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{route.method} {route.path}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": {k.lower(): v for k, v in headers.items()} | {"x-forwarded-proto": "http"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{route.method} {route.path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if parts.query:
        event["queryStringParameters"] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if params:
        event["pathParameters"] = params
    if text is not None:
        event["body"] = text
    return event


class Gateway:
    """Serves the routes on 127.0.0.1 (port 0: a free one)."""

    def __init__(self, routes: list[Route], token: str, port: int = 0) -> None:
        """``token`` stands in for IAM on the operator routes."""
        self.routes = routes
        self.token = token
        self._server = LocalHttpServer(self.handle, port)

    @property
    def url(self) -> str:
        """Base URL of the gateway."""
        return self._server.url

    def start(self) -> Gateway:
        """Serve in a daemon thread."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Route one request; returns status, headers, body."""
        clean = urlsplit(path).path
        for route in self.routes:
            params = route.match(method, clean)
            if params is None:
                continue
            if route.iam and not hmac.compare_digest(
                headers.get("Authorization", ""), f"Bearer {self.token}"
            ):
                return 403, {"Content-Type": "application/json"}, b'{"message":"Forbidden"}'
            host = headers.get("Host", self.url.split("//", 1)[1])
            answer = invoke(
                route.function, api_event(method, path, headers, body, route, params, host)
            )
            data = answer.get("body") or ""
            raw = base64.b64decode(data) if answer.get("isBase64Encoded") else data.encode()
            return int(answer["statusCode"]), dict(answer.get("headers") or {}), raw
        return (
            404,
            {"Content-Type": "application/json"},
            json.dumps({"message": "Not Found"}).encode(),
        )
