"""The task's internal control endpoint: play, checkpoint and clear on a live stream.

``POST /internal/streams/{stream_id}/{play|checkpoint|clear|end}`` with a JSON body, and
``GET /internal/streams/{stream_id}/plays/{play_id}`` (where a play is), with
``Authorization: Bearer <control token of the stream>``; the control API Lambda calls it on the
task that holds the socket (its address is in the registry). It listens on its own port, never
exposed through the ALB. Control traffic is rare, so the standard library's threaded HTTP server
is enough: each request runs its command on the event loop and waits for the result.

Bodies are the commands of the control contract (:mod:`callstream.control.commands`), parsed
with the same models, defaults and error bodies as the control Lambda that sends them. Answers:
200 with a JSON result (a play: at once, queued), 400 bad body, 403 bad token, 404 no such live
stream here (``no_such_play``: the stream is here, the play is not), 409 not bidirectional.
``GET /internal/health`` answers 200 while the task runs: the sweeper's liveness probe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from callstream.control import commands
from callstream.exceptions import (
    AuthError,
    CallstreamError,
    NotFoundError,
    RequestError,
    http_status,
)
from callstream.vocabulary import ID_PATTERN
from stream_server.talkback import Talkback

log = logging.getLogger("callstream.control")

_PATH = re.compile(r"/internal/streams/(?P<stream>[^/]+)/(?P<action>play|checkpoint|clear|end)")
_PLAY = re.compile(r"/internal/streams/(?P<stream>[^/]+)/plays/(?P<play>[^/]+)")
MAX_BODY = commands.MAX_AUDIO_B64 + 4096  # the largest command and its JSON around it

#: Finds the live talk-back controller of a stream on this task, or None.
Lookup = Callable[[str], Talkback | None]
#: Checks the bearer token of a stream; raises AuthError if it does not verify.
Authorize = Callable[[str, str], None]


def _length_problem(
    length: str | None, transfer_encoding: str | None
) -> tuple[int, dict[str, Any]] | None:
    """Why a body's framing is refused (411, 400, 413), or None."""
    if transfer_encoding is not None or length is None:
        return 411, {"error": "length_required", "message": "a Content-Length is required"}
    if not length.isdigit():
        return 400, {"error": "bad_request", "message": "Content-Length is not a length"}
    if int(length) > MAX_BODY:
        return 413, {"error": "too_large", "message": f"body over {MAX_BODY} bytes"}
    return None


class InternalApi:
    """Runs the control endpoint in a thread, dispatching commands to the event loop."""

    def __init__(
        self,
        host: str,
        port: int,
        lookup: Lookup,
        authorize: Authorize,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Bind the port (0 picks a free one); call :meth:`start` to serve."""
        self._lookup = lookup
        self._authorize = authorize
        self._loop = loop
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="control", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def admit(self, path: str, authorization: str) -> tuple[int, dict[str, Any]] | None:
        """Check the route and the credential, before any of the body is read.

        Returns:
            None when the request may go on; else the (status, JSON body) to refuse it with.
        """
        match = _PATH.fullmatch(path) or _PLAY.fullmatch(path)
        try:
            if match is None:
                raise NotFoundError(f"no route {path[:200]!r}")
            stream_id = match["stream"]
            if not ID_PATTERN.fullmatch(stream_id):
                raise RequestError(f"invalid stream id {stream_id[:80]!r}")
            self._authorize(stream_id, authorization)
        except CallstreamError as error:
            if isinstance(error, AuthError):
                log.warning("control request refused: %s", error.message)
            return http_status(error), commands.error_body(error)
        return None

    def handle(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        """Handle a request :meth:`admit` let in (in a server thread): (status, JSON body)."""
        match = _PATH.fullmatch(path)
        assert match is not None  # admitted
        stream_id, action = match["stream"], match["action"]
        try:
            try:
                body = json.loads(raw or b"{}")
            except RecursionError:
                raise RequestError("body is JSON nested too deeply") from None
            except ValueError as error:
                raise RequestError(f"body is not JSON: {error}") from None
            command = commands.parse_command(action, body)  # the control Lambda's own models
            talk = self._lookup(stream_id)
            if talk is None:
                raise NotFoundError(f"stream {stream_id} is not live on this task")
            return HTTPStatus.OK, self._call(commands.run(talk, command))
        except CallstreamError as error:
            if isinstance(error, AuthError):
                log.warning("control request refused: %s", error.message)
            return http_status(error), commands.error_body(error)

    def play_state(self, path: str) -> tuple[int, dict[str, Any]]:
        """Where a play is (a request :meth:`admit` let in): (status, JSON body)."""
        match = _PLAY.fullmatch(path)
        assert match is not None  # admitted
        try:
            play_id = commands.check_play_id(match["play"])
            talk = self._lookup(match["stream"])
            if talk is None:
                raise NotFoundError(f"stream {match['stream']} is not live on this task")
        except CallstreamError as error:
            return http_status(error), commands.error_body(error)

        async def look() -> dict[str, Any]:  # on the loop: a Talkback is not thread-safe
            return talk.play_state(play_id)

        try:
            return HTTPStatus.OK, self._call(look())
        except NotFoundError as error:
            return HTTPStatus.NOT_FOUND, {"error": "no_such_play", "message": error.message}

    def _call(self, command: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
        return asyncio.run_coroutine_threadsafe(command, self._loop).result(timeout=600)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/internal/health":  # the sweeper's probe: this task is alive
                    self._reply(200, {"ok": True})
                    return
                refused = server.admit(self.path, self.headers.get("Authorization", ""))
                if refused is not None or not _PLAY.fullmatch(self.path):
                    self._reply(*(refused or (404, {"error": "not_found", "message": "no route"})))
                    return
                self._reply(*server.play_state(self.path))

            def do_POST(self) -> None:
                # The credential first, the length next, the body last: nothing a peer sends is
                # read before it is authenticated, and never more than MAX_BODY.
                authorization = self.headers.get("Authorization", "")
                refused = server.admit(self.path, authorization) or _length_problem(
                    self.headers.get("Content-Length"), self.headers.get("Transfer-Encoding")
                )
                if refused is not None:
                    self.close_connection = True  # the unread body must not become a request
                    self._reply(*refused)
                    return
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                status, body = server.handle(self.path, raw)
                self._reply(status, body)

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("control %s", format % args)

        return Handler
