"""Vobiz status callbacks (docs/protocol.md §3): signatures, parsing and the state they move. Pure.

:func:`verify_signature` checks ``X-Vobiz-Signature-V3`` the way Vobiz's SDK builds it, and
also the URL-only form Vobiz's reference agent reports. :func:`parse_callback` reads the three
encodings (POST form, POST JSON, GET query) into a :class:`StreamCallback`, leniently: unknown
events are kept, never dropped. :func:`transition` says what a callback does to the registry
and which EventBridge event it becomes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

from callstream.exceptions import RequestError
from callstream.registry import State
from callstream.vocabulary import ID_PATTERN

Params = Mapping[str, str | list[str]]


def _values(value: str | list[str]) -> list[str]:
    return sorted(value) if isinstance(value, list) else [value]


def _query_string(params: Params) -> str:
    """``k=v`` pairs sorted by key (one per value of a list, values sorted), ``&``-joined."""
    return "&".join(f"{k}={v}" for k in sorted(params) for v in _values(params[k]))


def _body_string(params: Params) -> str:
    """``kv`` pairs sorted by key, concatenated with nothing between (the SDK's POST form)."""
    return "".join(f"{k}{v}" for k in sorted(params) for v in _values(params[k]))


def origin(url: str) -> str:
    """``scheme://host`` of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def signed_string(method: str, url: str, params: Params) -> str:
    """The string Vobiz's SDK signs (before ``"." + nonce``), for GET and POST."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    own: dict[str, list[str]] = dict(parse_qs(parts.query, keep_blank_values=True))
    if method.upper() == "GET":
        merged: dict[str, str | list[str]] = {**own, **params}
        query = _query_string(merged)
        return f"{base}?{query}" if query else base
    query = _query_string(own)
    if not params:
        return f"{base}?{query}" if query else base
    return f"{base}?{query}{'.' if query else ''}{_body_string(params)}"


def _sign(auth_token: str, message: str, nonce: str) -> str:
    digest = hmac.new(auth_token.encode(), f"{message}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _matches(signatures: str, expected: set[str]) -> bool:
    offered = [s.strip() for s in signatures.split(",") if s.strip()]
    return any(hmac.compare_digest(s, e) for s in offered for e in expected)


def verify_signature(
    method: str,
    url: str,
    params: Mapping[str, str | list[str]],
    nonce: str,
    signatures: str,
    auth_token: str,
    *,
    url_only: bool = False,
) -> bool:
    """Whether a Vobiz V3 signature is valid for this request.

    Args:
        method: ``GET`` or ``POST``.
        url: the public URL exactly as Vobiz called it, with its query string.
        params: the body parameters (POST), or the query parameters (GET).
        nonce: ``X-Vobiz-Signature-V3-Nonce``.
        signatures: ``X-Vobiz-Signature-V3``: one or more base64 signatures, comma-separated.
        auth_token: the account's auth token (the HMAC key).
        url_only: also accept the URL-only form (URL + "." + nonce). For a POST it does not
            cover the body: a holder of one signed request could send any parameters. Off
            unless an operator opts in.

    Returns:
        True when any of the signatures matches the SDK's construction (or, opted in, the
        URL-only form).
    """
    if not nonce or not signatures:
        return False
    expected = {_sign(auth_token, signed_string(method, url, params), nonce)}
    if url_only or method.upper() == "GET":  # for a GET the URL carries every parameter
        expected.add(_sign(auth_token, url, nonce))
    return _matches(signatures, expected)


def verify_signature_v2(url: str, nonce: str, signatures: str, auth_token: str) -> bool:
    """Whether ``X-Vobiz-Signature-V2`` (base64 HMAC-SHA256 of URL + nonce) is valid."""
    if not nonce or not signatures:
        return False
    digest = hmac.new(auth_token.encode(), f"{url}{nonce}".encode(), hashlib.sha256).digest()
    return _matches(signatures, {base64.b64encode(digest).decode()})


@dataclass(frozen=True)
class SignedRequest:
    """A Vobiz request as the handler received it, with what the signature needs."""

    method: str
    url: str
    params: dict[str, str | list[str]]
    nonce: str
    signatures: str
    v2_nonce: str = ""
    v2_signatures: str = ""

    @property
    def signed(self) -> bool:
        """Whether the request carries a V3 or a V2 signature with its nonce."""
        return bool((self.nonce and self.signatures) or (self.v2_nonce and self.v2_signatures))

    @property
    def nonce_key(self) -> str:
        """The nonce that a replay would reuse (V3's, else V2's)."""
        return self.nonce if self.nonce and self.signatures else f"v2#{self.v2_nonce}"


def verify_request(request: SignedRequest, auth_token: str, *, url_only: bool = False) -> bool:
    """Whether the request's V3 signature (or, without one, its V2 signature) is valid."""
    if request.nonce and request.signatures:
        return verify_signature(
            request.method,
            request.url,
            request.params,
            request.nonce,
            request.signatures,
            auth_token,
            url_only=url_only,
        )
    return verify_signature_v2(request.url, request.v2_nonce, request.v2_signatures, auth_token)


# --------------------------------------------------------------------------- parsing and state

DetailType = Literal[
    "Stream Started", "Stream Stopped", "Stream Failed", "Played Stream", "Cleared Audio",
    "Stream Callback",
]  # fmt: skip


@dataclass(frozen=True)
class StreamCallback:
    """One status callback, normalised.

    Attributes:
        event: the ``Event`` parameter as sent (``StartStream``, ``StopStream``, …, or other).
        stream_id: ``StreamID``.
        call_uuid: ``CallUUID`` (may be absent).
        name: ``Name`` (the checkpoint of a ``PlayedStream``).
        timestamp: ``Timestamp`` as sent.
        extra_headers: ``X-VH-<key>`` parameters, keyed without the prefix.
        params: every parameter, first value each (kept for the event's detail).
    """

    event: str
    stream_id: str
    call_uuid: str | None
    name: str | None = None
    timestamp: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def first_value(value: str | list[str]) -> str:
    """A parameter's value, or the first of a repeated parameter's values."""
    return value[0] if isinstance(value, list) else value


#: What a caller or callee may be: a number (``+`` and digits) or a SIP address.
NUMBER = re.compile(r"[A-Za-z0-9+*#@.:_\-]{1,64}")


def number(value: str | None) -> str | None:
    """A ``From``/``To`` as the console shows it, or None when it is not one (never echoed)."""
    return value if value and NUMBER.fullmatch(value) else None


def _flatten(parsed: dict[str, list[str]]) -> dict[str, str | list[str]]:
    return {k: v if len(v) > 1 else v[0] for k, v in parsed.items()}


def _json_value(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def parse_params(
    method: str, content_type: str, body: str, query: str
) -> dict[str, str | list[str]]:
    """The callback's parameters: the query for GET; the form or JSON body for POST.

    Raises:
        RequestError: a POST body that is neither a form nor a JSON object.
    """
    if method.upper() == "GET":
        return _flatten(parse_qs(query, keep_blank_values=True))
    if "json" in content_type.lower():
        try:
            doc = json.loads(body or "{}")
        except ValueError as error:
            raise RequestError(f"callback body is not JSON: {error}") from None
        except RecursionError:
            raise RequestError("callback body is JSON nested too deeply") from None
        if not isinstance(doc, dict):
            raise RequestError("callback JSON body must be an object")
        return {str(k): _json_value(v) for k, v in doc.items() if v is not None}
    return _flatten(parse_qs(body, keep_blank_values=True))


def parse_callback(params: Params) -> StreamCallback:
    """Read a callback's parameters (keys case-insensitively).

    Raises:
        RequestError: ``Event`` or ``StreamID`` is missing, or an id is not a valid id.
    """
    flat = {k: first_value(v) for k, v in params.items()}
    lower = {k.lower(): v for k, v in flat.items()}
    event = lower.get("event", "").strip()
    stream_id = (lower.get("streamid") or lower.get("stream_id") or "").strip()
    call_uuid = (lower.get("calluuid") or lower.get("call_uuid") or "").strip() or None
    if not event:
        raise RequestError("callback: parameter Event is missing")
    if not stream_id:
        raise RequestError("callback: parameter StreamID is missing")
    for label, value in (("StreamID", stream_id), ("CallUUID", call_uuid)):
        if value is not None and not ID_PATTERN.fullmatch(value):
            raise RequestError(f"callback: {label} is not a valid id")
    extra = {k[5:]: v for k, v in flat.items() if k.lower().startswith("x-vh-")}
    return StreamCallback(
        event=event,
        stream_id=stream_id,
        call_uuid=call_uuid,
        name=lower.get("name"),
        timestamp=lower.get("timestamp"),
        extra_headers=extra,
        params=flat,
    )


@dataclass(frozen=True)
class Transition:
    """What a callback does: the state to move to (if any), fields to record, the event."""

    state: State | None
    fields: dict[str, str]
    detail_type: DetailType


def transition(callback: StreamCallback) -> Transition:
    """Map a callback to its registry change and EventBridge detail type.

    ``StopStream`` is recorded and published but ends nothing: Vobiz sends it reliably only for
    stops the app asked for (docs/protocol.md §3); the socket close and the Hangup webhook end
    streams.
    ``DroppedStream`` and other failure events move the stream to ``failed``.
    """
    event = callback.event
    if event == "StartStream":
        return Transition("started", {}, "Stream Started")
    if event == "StopStream":
        return Transition(None, {"vobiz_stopped_at": callback.timestamp or ""}, "Stream Stopped")
    if event == "PlayedStream":
        return Transition(None, {"last_checkpoint": callback.name or ""}, "Played Stream")
    if event == "ClearedAudio":
        return Transition(None, {"last_cleared_at": callback.timestamp or ""}, "Cleared Audio")
    if any(word in event.lower() for word in ("fail", "error", "timeout", "drop")):
        return Transition("failed", {"end_reason": event}, "Stream Failed")
    return Transition(None, {"last_event": event}, "Stream Callback")
