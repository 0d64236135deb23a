"""HTTP client of the stream-server tasks' internal endpoint (``stream_server.internal_api``).

A task's address comes from the registry; the control Lambda posts commands to it and the
sweeper probes its health. Explicit timeouts on every call; a command is never retried (a
``play`` sent twice is heard twice), a health probe once.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3

from callstream.exceptions import UpstreamError, UpstreamTimeoutError

#: How long a command waits for the task's answer: past the longest wait a command may ask for
#: (a checkpoint's 25 s), inside the functions' 28 s timeout (template.yaml Globals).
READ_TIMEOUT_S = 26.0


class HttpTasks:
    """Talks to ``{task_address}/internal/…`` over a shared urllib3 pool."""

    def __init__(
        self,
        pool: urllib3.PoolManager | None = None,
        *,
        read_timeout_s: float = READ_TIMEOUT_S,
        probe_timeout_s: float = 2.0,
    ) -> None:
        """Use ``pool`` (tests inject one); commands wait ``read_timeout_s`` for the answer."""
        self._pool = pool or urllib3.PoolManager()
        self._read = read_timeout_s
        self._probe = probe_timeout_s

    def command(
        self, address: str, stream_id: str, action: str, body: bytes, credential: str
    ) -> tuple[int, dict[str, Any]]:
        """POST one command; returns the task's status and JSON answer (``{}`` if not JSON).

        Raises:
            UpstreamTimeoutError: the task did not answer in time.
            UpstreamError: the task could not be reached.
        """
        path = f"/internal/streams/{stream_id}/{action}"
        return self._request("POST", address, path, credential, body)

    def play_state(
        self, address: str, stream_id: str, play_id: str, credential: str
    ) -> tuple[int, dict[str, Any]]:
        """GET where a play the task started is (the same errors as :meth:`command`)."""
        path = f"/internal/streams/{stream_id}/plays/{play_id}"
        return self._request("GET", address, path, credential)

    def _request(
        self, method: str, address: str, path: str, credential: str, body: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        try:
            response = self._pool.request(
                method,
                address.rstrip("/") + path,
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "Authorization": "Bearer " + credential,
                },
                timeout=urllib3.Timeout(connect=2.0, read=self._read),
                retries=False,
            )
        except urllib3.exceptions.TimeoutError:
            raise UpstreamTimeoutError("the stream's task did not answer in time") from None
        except urllib3.exceptions.HTTPError as error:
            raise UpstreamError(f"cannot reach the stream's task: {type(error).__name__}") from None
        try:
            answer = json.loads(response.data or b"{}")
        except ValueError:
            answer = {}
        return response.status, answer if isinstance(answer, dict) else {}

    def alive(self, address: str) -> bool:
        """Whether the task at ``address`` answers its health probe (the sweeper's test)."""
        try:
            response = self._pool.request(
                "GET",
                f"{address.rstrip('/')}/internal/health",
                timeout=urllib3.Timeout(connect=self._probe, read=self._probe),
                retries=urllib3.Retry(total=1, backoff_factor=0.2),
            )
        except urllib3.exceptions.HTTPError:
            return False
        return response.status == 200
