"""The Vobiz REST client (PROTOCOL.md §1a): start, read, list and stop audio streams.

Built on urllib3 (already in boto3's closure, so the Lambda layer carries nothing more), with an
injectable pool for tests. Every call has explicit connect and read timeouts. Retries are
bounded, with exponential backoff: on 429 and connection failures for every method (the request
was not processed), and also on 5xx for the idempotent GET and DELETE (a POST that got a 5xx may
have started a stream: retrying it could start a second one). Vobiz's own status and message
reach the caller as an :class:`~callstream.exceptions.UpstreamError`, never a stack trace.
"""

from __future__ import annotations

import json
import time
from typing import Any

import urllib3

from callstream.credentials import VobizCredentials
from callstream.exceptions import UpstreamError, UpstreamTimeoutError

_RETRY_ALWAYS = frozenset({429})
_RETRY_IDEMPOTENT = frozenset({500, 502, 503, 504})


class VobizClient:
    """Calls ``{base_url}/api/v1/Account/{auth_id}/Call/{call_uuid}/Stream/…``."""

    def __init__(
        self,
        base_url: str,
        credentials: VobizCredentials,
        *,
        pool: urllib3.PoolManager | None = None,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_s: float = 0.2,
    ) -> None:
        """Create a client; ``pool`` is injectable (tests point it anywhere)."""
        self._base = base_url.rstrip("/")
        self._credentials = credentials
        self._pool = pool or urllib3.PoolManager()
        self._timeout = urllib3.Timeout(connect=min(2.0, timeout_s), read=timeout_s)
        self._attempts = attempts
        self._backoff = backoff_s

    def _url(self, call_uuid: str, stream_id: str | None = None) -> str:
        url = f"{self._base}/api/v1/Account/{self._credentials.auth_id}/Call/{call_uuid}/Stream/"
        return f"{url}{stream_id}/" if stream_id else url

    def start_stream(self, call_uuid: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a new stream; returns Vobiz's answer (with ``stream_id``).

        Raises:
            UpstreamError: Vobiz refused (its status and message), or answered without a
                ``stream_id``.
            UpstreamTimeoutError: Vobiz did not answer in time.
        """
        answer = self._call("POST", self._url(call_uuid), body)
        if not isinstance(answer.get("stream_id"), str):
            raise UpstreamError("Vobiz answered without a stream_id")
        return answer

    def get_stream(self, call_uuid: str, stream_id: str) -> dict[str, Any]:
        """GET one stream."""
        return self._call("GET", self._url(call_uuid, stream_id))

    def list_streams(self, call_uuid: str) -> dict[str, Any]:
        """GET a call's streams."""
        return self._call("GET", self._url(call_uuid))

    def stop_stream(self, call_uuid: str, stream_id: str) -> None:
        """DELETE one stream. A 404 means it is already gone: success (idempotent)."""
        try:
            self._call("DELETE", self._url(call_uuid, stream_id))
        except UpstreamError as error:
            if error.upstream_status != 404:
                raise

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {
            "X-Auth-ID": self._credentials.auth_id,
            "X-Auth-Token": self._credentials.auth_token,
            "Accept": "application/json",
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        idempotent = method in ("GET", "DELETE")
        for attempt in range(1, self._attempts + 1):
            last = attempt == self._attempts
            try:
                response = self._pool.request(
                    method, url, body=data, headers=headers, timeout=self._timeout, retries=False
                )
            except urllib3.exceptions.TimeoutError:
                if idempotent and not last:
                    self._sleep(attempt)
                    continue
                raise UpstreamTimeoutError(f"Vobiz did not answer {method} in time") from None
            except urllib3.exceptions.HTTPError as error:  # connection refused, reset, DNS
                if not last:
                    self._sleep(attempt)
                    continue
                raise UpstreamError(f"cannot reach Vobiz: {type(error).__name__}") from None
            status = response.status
            retry = status in _RETRY_ALWAYS or (idempotent and status in _RETRY_IDEMPOTENT)
            if retry and not last:
                self._sleep(attempt, response.headers.get("Retry-After"))
                continue
            return self._answer(method, status, response.data)
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, attempt: int, retry_after: str | None = None) -> None:
        delay = self._backoff * 2 ** (attempt - 1)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 5.0))
        time.sleep(delay)

    @staticmethod
    def _answer(method: str, status: int, data: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(data or b"{}")
        except ValueError:
            doc = None
        if 200 <= status < 300:
            if not isinstance(doc, dict):
                raise UpstreamError(f"Vobiz answered {method} with a body that is not JSON", status)
            return doc
        message = doc.get("message") or doc.get("error") if isinstance(doc, dict) else None
        text = str(message) if message else data[:200].decode("utf-8", "replace").strip()
        raise UpstreamError(f"Vobiz answered {status}: {text or 'no message'}", status)
