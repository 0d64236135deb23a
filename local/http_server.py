"""A small threaded HTTP server for the embedded stack's stand-ins (gateway, Vobiz REST).

One place for the plumbing: bind 127.0.0.1 (port 0: a free one), serve in a daemon thread,
read the body, hand ``(method, path, headers, body)`` to a function, write its answer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: ``handle(method, path, headers, body) -> (status, response headers, response body)``.
Handle = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class LocalHttpServer:
    """Serves ``handle`` on 127.0.0.1 in a daemon thread."""

    def __init__(self, handle: Handle, port: int = 0) -> None:
        """Bind now; :meth:`start` serves."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(handle))
        self._httpd.daemon_threads = True

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(handle: Handle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, data = handle(
                self.command, self.path, dict(self.headers.items()), body
            )
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            # a client that gave up waiting (a test's timeout) has nobody left to answer
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
