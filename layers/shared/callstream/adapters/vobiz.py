"""The Vobiz REST client (docs/protocol.md §1a): start, read, list, stop one or all streams.

Listing follows Vobiz's ``limit``/``offset`` paging.

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

from callstream.exceptions import UpstreamError, UpstreamTimeoutError
from callstream.ports import VobizCredentials

_RETRY_ALWAYS = frozenset({429})
_RETRY_IDEMPOTENT = frozenset({500, 502, 503, 504})


class VobizClient:
    """Calls ``{base_url}/api/v1/Account/{auth_id}/Call/{call_uuid}/Stream/…``."""

    def __init__(
        self,
        base_url: str,
        credentials: VobizCredentials,
        *,
        timeout_s: float,
        pool: urllib3.PoolManager | None = None,
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
        """GET one stream (``status`` in-progress/completed/failed, start and end time)."""
        return self._call("GET", self._url(call_uuid, stream_id))

    def list_streams(self, call_uuid: str, page_size: int = 20) -> list[dict[str, Any]]:
        """Every stream of a call, live and stopped, following ``limit``/``offset`` paging."""
        streams: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self._call("GET", f"{self._url(call_uuid)}?limit={page_size}&offset={offset}")
            objects = page.get("objects") or []
            if not isinstance(objects, list):
                raise UpstreamError("Vobiz listed streams without an objects list")
            streams += [o for o in objects if isinstance(o, dict)]
            meta = page.get("meta") or {}
            total = meta.get("total_count") if isinstance(meta, dict) else None
            offset += len(objects)
            if not objects or (isinstance(total, int) and offset >= total) or not meta.get("next"):
                return streams

    def stop_stream(self, call_uuid: str, stream_id: str) -> None:
        """DELETE one stream (idempotent).

        A 404, or a 400 "no active stream", means it already ended: success.
        """
        try:
            self._call("DELETE", self._url(call_uuid, stream_id))
        except UpstreamError as error:
            if not _already_stopped(error):
                raise

    def stop_all(self, call_uuid: str) -> None:
        """DELETE every stream of a call (other apps' forks on the call too)."""
        try:
            self._call("DELETE", self._url(call_uuid))
        except UpstreamError as error:
            if not _already_stopped(error):
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
        if status == 204 or (200 <= status < 300 and not data):
            return {}
        if 200 <= status < 300:
            if not isinstance(doc, dict):
                raise UpstreamError(f"Vobiz answered {method} with a body that is not JSON", status)
            return doc
        message = doc.get("message") or doc.get("error") if isinstance(doc, dict) else None
        text = str(message) if message else data[:200].decode("utf-8", "replace").strip()
        raise UpstreamError(f"Vobiz answered {status}: {text or 'no message'}", status)


def _already_stopped(error: UpstreamError) -> bool:
    """Vobiz's ways of saying a stream is no longer running: 404, or 400 "no active stream"."""
    if error.upstream_status == 404:
        return True
    return error.upstream_status == 400 and "no active stream" in error.message.lower()
