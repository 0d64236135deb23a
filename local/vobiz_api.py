"""A stand-in for the Vobiz REST API (PROTOCOL.md §1a) on a local port: the stream endpoints.

Checks ``X-Auth-ID``/``X-Auth-Token``, validates bodies as Vobiz documents them, keeps the
streams it started, and can be told to misbehave (``fail_next``: a status and message, or a
delay longer than the client's timeout). ``on_start`` lets the Vobiz simulator connect to the
``service_url`` of each stream it starts. Used by the tests and by the embedded stack.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.http_server import LocalHttpServer

_STREAMS = re.compile(
    r"/api/v1/Account/(?P<account>[^/]+)/Call/(?P<call>[^/]+)/Stream/(?:(?P<stream>[^/]+)/)?"
)
CONTENT_TYPES = {"audio/x-l16;rate=8000", "audio/x-l16;rate=16000", "audio/x-mulaw;rate=8000"}


@dataclass
class Fault:
    """One scripted misbehaviour: answer ``status`` with ``body`` after ``delay_s``."""

    status: int = 500
    body: Any = field(default_factory=lambda: {"message": "internal error"})
    delay_s: float = 0.0


@dataclass
class ApiStream:
    """A stream the stand-in started."""

    stream_id: str
    call_uuid: str
    body: dict[str, Any]
    state: str = "streaming"


class VobizApi:
    """The REST stand-in. ``start()`` binds 127.0.0.1 on a free port; ``url`` is its base."""

    def __init__(self, auth_id: str, auth_token: str, port: int = 0) -> None:
        """Accept these credentials only."""
        self.auth_id = auth_id
        self.auth_token = auth_token
        self.streams: dict[str, ApiStream] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.faults: list[Fault] = []
        self.on_start: Callable[[ApiStream], None] | None = None
        self.on_stop: Callable[[ApiStream], None] | None = None
        self._lock = threading.Lock()
        self._server = LocalHttpServer(self._serve, port)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return self._server.url

    def start(self) -> VobizApi:
        """Serve in a daemon thread."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def _serve(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        status, body = self.handle(method, path, {k.lower(): v for k, v in headers.items()}, raw)
        data = b"" if body is None else json.dumps(body).encode()
        return status, {"Content-Type": "application/json"}, data

    def fail_next(self, *faults: Fault) -> None:
        """The next requests answer with these faults, in order."""
        with self._lock:
            self.faults.extend(faults)

    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        """Answer one request: (status, JSON body)."""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return 400, {"message": "body is not JSON"}
        with self._lock:
            self.requests.append((method, path, body))
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            time.sleep(fault.delay_s)
            return fault.status, fault.body
        if (
            headers.get("x-auth-id") != self.auth_id
            or headers.get("x-auth-token") != self.auth_token
        ):
            return 401, {"message": "authentication failed"}
        match = _STREAMS.fullmatch(path.split("?", 1)[0])
        if match is None or match["account"] != self.auth_id:
            return 404, {"message": "resource not found"}
        call, stream_id = match["call"], match["stream"]
        if method == "POST" and stream_id is None:
            return self._start(call, body)
        if method == "GET" and stream_id is None:
            mine = [s for s in self.streams.values() if s.call_uuid == call]
            return 200, {"objects": [{"stream_id": s.stream_id, "status": s.state} for s in mine]}
        stream = self.streams.get(stream_id or "")
        if method == "GET":
            if stream is None or stream.call_uuid != call:
                return 404, {"message": "stream not found"}
            return 200, {"stream_id": stream.stream_id, "status": stream.state, **stream.body}
        if method == "DELETE":
            targets = (
                [stream] if stream_id else [s for s in self.streams.values() if s.call_uuid == call]
            )
            if stream_id and (
                stream is None or stream.call_uuid != call or stream.state != "streaming"
            ):
                return 404, {"message": "stream not found"}
            for target in targets:
                if target is not None:
                    target.state = "stopped"
                    if self.on_stop is not None:
                        self.on_stop(target)
            return 204, None
        return 405, {"message": "method not allowed"}

    def _start(self, call: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"message": "body must be a JSON object"}
        url = body.get("service_url")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            return 400, {"message": "service_url must be a ws:// or wss:// URL"}
        if body.get("audio_track", "inbound") not in ("inbound", "outbound", "both"):
            return 400, {"message": "audio_track must be inbound, outbound or both"}
        if body.get("content_type", "audio/x-l16;rate=8000") not in CONTENT_TYPES:
            return 400, {"message": "unsupported content_type"}
        if not isinstance(body.get("bidirectional", False), bool):
            return 400, {"message": "bidirectional must be a boolean"}
        stream = ApiStream(stream_id=str(uuid.uuid4()), call_uuid=call, body=body)
        self.streams[stream.stream_id] = stream
        if self.on_start is not None:
            self.on_start(stream)
        return 201, {
            "api_id": str(uuid.uuid4()),
            "message": "audio streaming started",
            "stream_id": stream.stream_id,
        }
