"""An HTTP proxy in front of moto that throttles Kinesis as Kinesis does: per record.

A share of the records of each ``PutRecords`` is answered with
``ProvisionedThroughputExceededException`` (and never reaches moto); the others are forwarded
and their real results put back in place. Everything else passes through untouched. The
process under test only sees an ``AWS_ENDPOINT_URL``: its own code and boto3 take the real path.
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

THROTTLED = {
    "ErrorCode": "ProvisionedThroughputExceededException",
    "ErrorMessage": "Rate exceeded for shard shardId-000000000000 in stream AudioStream.",
}


class ThrottlingProxy:
    """Start with :meth:`start`; :attr:`url` is the endpoint to give the process."""

    def __init__(self, upstream: str, share: float, seed: int = 7) -> None:
        """Throttle ``share`` (0..1) of the records put through it to ``upstream`` (moto)."""
        self.upstream = upstream
        self.share = share
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.throttled = 0
        self.forwarded = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._pass(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("X-Amz-Target", "").endswith(".PutRecords"):
                    self._put_records(body)
                else:
                    self._pass(body)

            def _put_records(self, body: bytes) -> None:
                request = json.loads(body)
                with proxy.lock:
                    fails = [proxy.random.random() < proxy.share for _ in request["Records"]]
                    proxy.throttled += sum(fails)
                    proxy.forwarded += len(fails) - sum(fails)
                kept = [r for r, f in zip(request["Records"], fails, strict=True) if not f]
                results: list[dict[str, str]] = []
                if kept:
                    status, _, answer = proxy.forward(
                        "POST",
                        self.path,
                        dict(self.headers),
                        json.dumps({**request, "Records": kept}).encode(),
                    )
                    if status != 200:
                        self._reply(status, answer)
                        return
                    results = json.loads(answer)["Records"]
                merged, it = [], iter(results)
                for failed in fails:
                    merged.append(dict(THROTTLED) if failed else next(it))
                errors = sum("ErrorCode" in r for r in merged)
                self._reply(
                    200, json.dumps({"FailedRecordCount": errors, "Records": merged}).encode()
                )

            def _pass(self, body: bytes | None) -> None:
                status, headers, answer = proxy.forward(
                    self.command, self.path, dict(self.headers), body
                )
                self._reply(status, answer, headers.get("Content-Type"))

            def _reply(self, status: int, body: bytes, kind: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        """Send a request on to moto; its status, headers and body."""
        headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(
            self.upstream + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def start(self) -> ThrottlingProxy:
        """Serve in a thread."""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
