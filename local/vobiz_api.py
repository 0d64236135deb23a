"""A stand-in for the Vobiz REST API (docs/protocol.md §1a) on a local port: the stream endpoints.

Checks ``X-Auth-ID``/``X-Auth-Token``, validates bodies as Vobiz documents them (a
bidirectional stream must use ``audio_track`` ``inbound``; ``extra_headers`` keys are
``[A-Za-z0-9]`` and at most 512 bytes in all), keeps the streams it started (``status``
``in-progress``, ``completed``), lists them with ``limit``/``offset`` paging, stops one or all,
answers 400 "no active stream" to a stop of a stream that has ended, and can be told to misbehave (``fail_next``: a status and message, or a
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
CONTENT_TYPES = {
    "audio/x-l16;rate=8000",
    "audio/x-l16;rate=16000",
    "audio/x-l16;rate=24000",
    "audio/x-mulaw;rate=8000",
}
_HEADER_KEY = re.compile(r"[A-Za-z0-9]+")


@dataclass
class Fault:
    """One scripted misbehaviour: answer ``status`` with ``body`` after ``delay_s``."""

    status: int = 500
    body: Any = field(default_factory=lambda: {"message": "internal error"})
    delay_s: float = 0.0
    #: Do the work, then answer only after ``delay_s`` (the caller times out, the stream exists).
    done_anyway: bool = False


@dataclass
class ApiStream:
    """A stream the stand-in started."""

    stream_id: str
    call_uuid: str
    body: dict[str, Any]
    state: str = "streaming"  # then "stopped"
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None

    def view(self) -> dict[str, Any]:
        """The stream object as Vobiz returns it."""
        return {
            "stream_id": self.stream_id,
            "call_uuid": self.call_uuid,
            "status": "in-progress" if self.state == "streaming" else "completed",
            "start_time": _iso(self.started_at),
            "end_time": _iso(self.ended_at) if self.ended_at else None,
            "audio_track": self.body.get("audio_track", "both"),
            "bidirectional": bool(self.body.get("bidirectional", False)),
            "content_type": self.body.get("content_type", "audio/x-l16;rate=8000"),
            "service_url": self.body.get("service_url"),
        }


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


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
        if fault is not None and not fault.done_anyway:
            time.sleep(fault.delay_s)
            return fault.status, fault.body
        if fault is not None:
            answer = self._handle(method, path, headers, body)
            time.sleep(fault.delay_s)
            return answer
        return self._handle(method, path, headers, body)

    def _handle(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
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
        mine = [s for s in self.streams.values() if s.call_uuid == call]
        if method == "GET" and stream_id is None:
            query = dict(q.split("=", 1) for q in path.partition("?")[2].split("&") if "=" in q)
            limit = min(int(query.get("limit", "20") or 20), 20)
            offset = int(query.get("offset", "0") or 0)
            page = mine[offset : offset + limit]
            return 200, {
                "meta": {
                    "limit": limit,
                    "offset": offset,
                    "total_count": len(mine),
                    "next": f"?limit={limit}&offset={offset + limit}"
                    if offset + limit < len(mine)
                    else None,
                },
                "objects": [s.view() for s in page],
            }
        stream = self.streams.get(stream_id or "")
        if method == "GET":
            if stream is None or stream.call_uuid != call:
                return 404, {"message": "stream not found"}
            return 200, stream.view()
        if method == "DELETE":
            if stream_id is None:  # stop all
                for target in mine:
                    self._stop(target)
                return 204, None
            if stream is None or stream.call_uuid != call:
                return 404, {"message": "stream not found"}
            if stream.state != "streaming":
                return 400, {"error": "no active stream"}
            self._stop(stream)
            return 204, None
        return 405, {"message": "method not allowed"}

    def _stop(self, stream: ApiStream) -> None:
        if stream.state == "streaming":
            stream.state = "stopped"
            stream.ended_at = time.time()
            if self.on_stop is not None:
                self.on_stop(stream)

    def _start(self, call: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"message": "body must be a JSON object"}
        url = body.get("service_url")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            return 400, {"message": "service_url must be a ws:// or wss:// URL"}
        if body.get("audio_track", "both") not in ("inbound", "outbound", "both"):
            return 400, {"message": "audio_track must be inbound, outbound or both"}
        if body.get("content_type", "audio/x-l16;rate=8000") not in CONTENT_TYPES:
            return 400, {"message": "unsupported content_type"}
        if not isinstance(body.get("bidirectional", False), bool):
            return 400, {"message": "bidirectional must be a boolean"}
        if body.get("bidirectional") and body.get("audio_track", "both") != "inbound":
            return 400, {"message": "bidirectional streams must use audio_track inbound"}
        headers = body.get("extra_headers")
        if headers is not None:
            pairs = [p.split("=", 1) for p in str(headers).split(",") if p]
            if len(str(headers).encode()) > 512 or any(
                len(p) != 2 or not _HEADER_KEY.fullmatch(p[0]) or not p[0].isascii() for p in pairs
            ):
                return 400, {"message": "extra_headers: keys [A-Za-z0-9], at most 512 bytes"}
        stream = ApiStream(stream_id=str(uuid.uuid4()), call_uuid=call, body=body)
        self.streams[stream.stream_id] = stream
        if self.on_start is not None:
            self.on_start(stream)
        return 202, {
            "api_id": str(uuid.uuid4()),
            "message": "audio streaming started",
            "stream_id": stream.stream_id,
        }
