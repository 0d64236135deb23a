"""Domain operations of the control plane: one function per route, called by thin handlers.

They take typed requests, use the injected :class:`Services` (registry, Vobiz, EventBridge,
once-store, token key) and return plain dicts for the HTTP answer. AWS and Vobiz are reached
through the adapters in ``Services`` (:func:`services` builds them once per process from
settings); the one hop made here directly is the HTTP call to a task's control endpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

import urllib3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator

from callstream import callbacks, credentials, settings
from callstream.adapters.clients import client
from callstream.adapters.dynamodb import DynamoOnceStore, DynamoRegistry
from callstream.adapters.events import EventPublisher
from callstream.adapters.vobiz import VobizClient
from callstream.callbacks import SignedRequest
from callstream.clock import now_iso
from callstream.exceptions import (
    ConfigError,
    ConflictError,
    NotFoundError,
    RequestError,
    SignatureError,
    UnprocessableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from callstream.ports import OnceStore, Registry
from callstream.protocol import ID_PATTERN
from callstream.registry import StreamItem
from callstream.tokens import TokenClaims, control_auth, new_jti, sign_token, ws_path

log = logging.getLogger("callstream.streams")

ContentType = Literal[
    "audio/x-mulaw;rate=8000",
    "audio/x-l16;rate=8000",
    "audio/x-l16;rate=16000",
    "audio/x-l16;rate=24000",
]
FORMATS: dict[str, tuple[str, int]] = {
    "audio/x-mulaw;rate=8000": ("mulaw", 8000),
    "audio/x-l16;rate=8000": ("l16", 8000),
    "audio/x-l16;rate=16000": ("l16", 16000),
    "audio/x-l16;rate=24000": ("l16", 24000),
}
#: Vobiz's limit on ``extra_headers``: keys ASCII letters and digits, 512 bytes in all.
EXTRA_HEADERS_MAX_BYTES = 512


@dataclass(eq=False)  # hashable by identity: idempotency wrappers are cached per Services
class Services:
    """Everything the operations talk to (built by :func:`services`, or by tests).

    The Vobiz client and the token key read Secrets Manager, so they are built on first use:
    read-only routes never need (nor are granted) the secrets.
    """

    registry: Registry
    once: OnceStore
    events: EventPublisher
    config: settings.ApiSettings
    http: urllib3.PoolManager
    idempotency_client: Any = None

    @cached_property
    def vobiz(self) -> VobizClient:
        """The Vobiz REST client (reads the Vobiz credentials)."""
        return VobizClient(
            self.config.vobiz_api_url,
            credentials.vobiz_credentials(),
            pool=self.http,
            timeout_s=self.config.vobiz_timeout_s,
        )

    @cached_property
    def token_key(self) -> bytes:
        """The key that signs tokens and control credentials."""
        return credentials.token_key()

    @cached_property
    def idempotent_start(self) -> tuple[Callable[..., dict[str, Any]], IdempotencyConfig]:
        """start_stream behind Powertools idempotency, and its config."""
        return _idempotent_start(self)


@cache
def services() -> Services:
    """The process's services, from settings and cached clients (warm starts reuse them)."""
    cfg = settings.load(settings.ApiSettings)
    dynamodb = client("dynamodb")
    return Services(
        registry=DynamoRegistry(dynamodb, cfg.registry_table),
        once=DynamoOnceStore(dynamodb, cfg.nonce_table),
        events=EventPublisher(client("events"), cfg.event_bus),
        config=cfg,
        http=urllib3.PoolManager(),
        idempotency_client=dynamodb,
    )


def check_id(value: str, what: str) -> str:
    """Validate an id from a path or body.

    Raises:
        RequestError: not 1-128 of ``[A-Za-z0-9_.:-]`` starting with a letter or digit.
    """
    if not ID_PATTERN.fullmatch(value):
        raise RequestError(f"{what} is not a valid id")
    return value


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any) -> M:
    """Validate a request body against ``model``.

    Raises:
        RequestError: naming every field that is wrong.
    """
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
        )
        raise RequestError(f"invalid request: {problems}") from None


# -------------------------------------------------------------------------------- start / stop


class StartStreamRequest(BaseModel):
    """Body of ``POST /v1/calls/{call_uuid}/streams``."""

    model_config = ConfigDict(extra="forbid")

    audio_track: Literal["inbound", "outbound", "both"] = "inbound"
    content_type: ContentType = "audio/x-mulaw;rate=8000"
    bidirectional: bool = False
    agent: Literal["none", "echo", "prompt"] = "none"
    status_callback_url: HttpUrl | None = None
    status_callback_method: Literal["GET", "POST"] = "POST"
    extra_headers: dict[str, str] = Field(default_factory=dict, max_length=20)
    stream_timeout: int | None = Field(None, ge=1, le=86_400)

    @field_validator("extra_headers")
    @classmethod
    def _safe_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not (key.isascii() and key.isalnum()) or len(key) > 64:
                raise ValueError(f"header name {key[:70]!r} must be 1-64 of [A-Za-z0-9]")
            if any(c in item for c in ",=\r\n") or len(item) > 256:
                raise ValueError(f"header {key} value must be ≤ 256 chars without , = or newlines")
        if len(_header_string(value).encode()) > EXTRA_HEADERS_MAX_BYTES:
            raise ValueError(f"extra_headers must be at most {EXTRA_HEADERS_MAX_BYTES} bytes")
        return value


def _header_string(headers: dict[str, str]) -> str:
    """``extra_headers`` as Vobiz takes them: ``k=v`` pairs joined with commas."""
    return ",".join(f"{k}={v}" for k, v in headers.items())


def _service_url(
    svc: Services, call_uuid: str, agent: str, bidirectional: bool, content_type: str
) -> str:
    claims = TokenClaims(
        jti=new_jti(),
        call_uuid=call_uuid,
        exp=int(time.time()) + svc.config.token_ttl_s,
        agent=agent,
        bidirectional=bidirectional,
        content_type=content_type,
    )
    return svc.config.ws_base_url.rstrip("/") + ws_path(sign_token(claims, svc.token_key))


def _callback_url(svc: Services, public_base: str) -> str:
    """Where Vobiz posts stream status: the configured public URL, else the request's own.

    The template cannot give the API's own URL to its functions: that reference closes a
    dependency cycle between the API and its functions.
    """
    return (svc.config.public_base_url or public_base).rstrip("/") + "/vobiz/stream-status"


def start_stream(
    svc: Services,
    call_uuid: str,
    request: StartStreamRequest,
    public_base: str,
    attempt: str | None = None,
) -> dict[str, Any]:
    """Start a stream on a live call through Vobiz and register it as ``requested``.

    With ``attempt`` (a key of the once-store, per Idempotency-Key and call), the stream's
    service URL is remembered before Vobiz is called. A retry after Vobiz did not answer in
    time first looks for a stream Vobiz made with that URL (listing the call's streams) and
    adopts it; otherwise it starts the stream again with the same URL. One key, one stream.

    Raises:
        RequestError: a bad call uuid.
        UnprocessableError: a bidirectional stream of a track other than ``inbound`` (Vobiz
            allows talk-back on the inbound track only).
        UpstreamError: Vobiz refused (its status and message), or timed out.
    """
    check_id(call_uuid, "call_uuid")
    if request.bidirectional and request.audio_track != "inbound":
        raise UnprocessableError(
            f"bidirectional streams must use audio_track inbound, not {request.audio_track} "
            "(Vobiz refuses both/outbound with bidirectional)"
        )
    service_url = svc.once.recall(attempt) if attempt else None
    adopted = None
    if service_url is not None:  # a retry: did Vobiz make the stream the last time?
        adopted = next(
            (s for s in svc.vobiz.list_streams(call_uuid) if s.get("service_url") == service_url),
            None,
        )
    else:
        service_url = _service_url(
            svc, call_uuid, request.agent, request.bidirectional, request.content_type
        )
        if attempt:
            svc.once.remember(attempt, service_url, svc.config.token_ttl_s)
    body: dict[str, Any] = {
        "service_url": service_url,
        "bidirectional": request.bidirectional,
        "audio_track": request.audio_track,
        "content_type": request.content_type,
        "status_callback_url": str(request.status_callback_url or _callback_url(svc, public_base)),
        "status_callback_method": request.status_callback_method,
    }
    if request.extra_headers:
        body["extra_headers"] = _header_string(request.extra_headers)
    if request.stream_timeout is not None:
        body["stream_timeout"] = request.stream_timeout
    answer = adopted or svc.vobiz.start_stream(call_uuid, body)
    stream_id = check_id(str(answer["stream_id"]), "Vobiz's stream_id")
    codec, rate = FORMATS[request.content_type]
    at = now_iso()
    svc.registry.create_requested(
        stream_id,
        call_uuid,
        audio_track=request.audio_track,
        content_type=request.content_type,
        codec=codec,
        sample_rate=rate,
        bidirectional=request.bidirectional,
        agent=request.agent,
        extra_headers=request.extra_headers or None,
        at=at,
    )
    view = {
        "stream_id": stream_id,
        "call_uuid": call_uuid,
        "state": "requested",
        "service_url": service_url,
        "audio_track": request.audio_track,
        "content_type": request.content_type,
        "codec": codec,
        "sample_rate": rate,
        "bidirectional": request.bidirectional,
        "agent": request.agent,
        "created_at": at,
    }
    svc.events.publish("Stream Requested", {k: v for k, v in view.items() if k != "service_url"})
    return view


def _idempotent_start(svc: Services) -> tuple[Callable[..., dict[str, Any]], IdempotencyConfig]:
    """start_stream behind Powertools idempotency, keyed on (Idempotency-Key, call uuid).

    Built once per :class:`Services` (:attr:`Services.idempotent_start`).
    """
    persistence = DynamoDBPersistenceLayer(
        table_name=svc.config.idempotency_table, boto3_client=svc.idempotency_client
    )
    config = IdempotencyConfig(
        event_key_jmespath="[key, call_uuid]",
        payload_validation_jmespath="request",
        expires_after_seconds=24 * 3600,
    )

    def run(payload: dict[str, Any]) -> dict[str, Any]:
        request = StartStreamRequest.model_validate(payload["request"])
        attempt = f"start#{payload['key']}#{payload['call_uuid']}"
        return start_stream(svc, payload["call_uuid"], request, payload["public_base"], attempt)

    wrapped: Callable[..., dict[str, Any]] = idempotent_function(
        data_keyword_argument="payload", persistence_store=persistence, config=config
    )(run)
    return wrapped, config


def start_stream_once(
    svc: Services,
    call_uuid: str,
    request: StartStreamRequest,
    idempotency_key: str | None,
    public_base: str,
    lambda_context: Any = None,
) -> dict[str, Any]:
    """:func:`start_stream`; with an ``Idempotency-Key``, retries return the same stream.

    Raises:
        RequestError: a key that is not 1-128 printable characters.
        ConflictError: the key was used for a different request body, or is still in progress.
    """
    if not idempotency_key:
        return start_stream(svc, call_uuid, request, public_base)
    if len(idempotency_key) > 128 or not idempotency_key.isprintable():
        raise RequestError("Idempotency-Key must be 1-128 printable characters")
    payload = {
        "key": idempotency_key,
        "call_uuid": check_id(call_uuid, "call_uuid"),
        "request": request.model_dump(mode="json"),
        "public_base": public_base,  # not part of the key: the same API, however reached
    }
    run, config = svc.idempotent_start
    if lambda_context is not None:  # lets Powertools expire a stuck in-progress record
        config.register_lambda_context(lambda_context)
    try:
        return run(payload=payload)
    except IdempotencyValidationError:
        raise ConflictError("Idempotency-Key was already used with a different body") from None
    except IdempotencyAlreadyInProgressError:
        raise ConflictError("a request with this Idempotency-Key is in progress") from None


def parse_json(body: str | None) -> Any:
    """A request body as JSON (empty → None).

    Raises:
        RequestError: not valid JSON, or nested too deeply to parse.
    """
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError as error:
        raise RequestError(f"body is not valid JSON: {error}") from None
    except RecursionError:  # [[[[…]]]] thousands deep: the parser's limit, not a server fault
        raise RequestError("body is JSON nested too deeply") from None


def _item(svc: Services, stream_id: str) -> StreamItem:
    item = svc.registry.get(check_id(stream_id, "stream_id"))
    if item is None:
        raise NotFoundError(f"stream {stream_id} not found")
    return item


def stream_view(svc: Services, item: StreamItem) -> dict[str, Any]:
    """What the API shows of a stream: the registry item plus links."""
    view = item.to_dict()
    view.pop("ttl", None)
    view.pop("state_rank", None)
    bucket = svc.config.recordings_bucket
    view["links"] = {
        "self": f"/v1/streams/{item.stream_id}",
        "recording": f"s3://{bucket}/{item.recording_key}"
        if bucket and item.recording_key
        else None,
        "transcript": f"s3://{bucket}/{item.transcript_key}"
        if bucket and item.transcript_key
        else None,
    }
    return view


def get_stream(svc: Services, stream_id: str) -> dict[str, Any]:
    """One stream.

    Raises:
        NotFoundError: no such stream.
    """
    return stream_view(svc, _item(svc, stream_id))


def list_streams(svc: Services, call_uuid: str) -> dict[str, Any]:
    """A call's streams, oldest first."""
    items = svc.registry.list_for_call(check_id(call_uuid, "call_uuid"))
    return {"call_uuid": call_uuid, "streams": [stream_view(svc, i) for i in items]}


def stop_stream(svc: Services, stream_id: str) -> dict[str, Any]:
    """Ask Vobiz to stop a stream. Idempotent: an ended stream is returned as it is.

    Raises:
        NotFoundError: no such stream.
        UpstreamError: Vobiz refused (a 404 from Vobiz counts as already stopped).
    """
    item = _item(svc, stream_id)
    if item.state in ("stopped", "failed"):
        return {**stream_view(svc, item), "stop_requested": False}
    svc.vobiz.stop_stream(item.call_uuid, item.vobiz_stream_id or item.stream_id)
    return {**stream_view(svc, item), "stop_requested": True}


def stop_call_streams(svc: Services, call_uuid: str) -> dict[str, Any]:
    """Ask Vobiz to stop every stream of a call (its stop-all), then list them.

    Raises:
        UpstreamError: Vobiz refused (a call with nothing running counts as stopped).
    """
    svc.vobiz.stop_all(check_id(call_uuid, "call_uuid"))
    return {**list_streams(svc, call_uuid), "stop_requested": True}


#: Vobiz's stream status → our state.
_VOBIZ_STATES: dict[str, Literal["started", "stopped", "failed"]] = {
    "in-progress": "started",
    "completed": "stopped",
    "failed": "failed",
}


def reconcile_stream(svc: Services, stream_id: str) -> dict[str, Any]:
    """Read the stream's status from Vobiz and bring the registry in line with it.

    A stream Vobiz reports ``completed`` or ``failed`` that the registry still has live (a lost
    socket close, a task that died) ends here, with Vobiz's times; nothing moves backwards.

    Raises:
        NotFoundError: no such stream here.
        UpstreamError: Vobiz refused or is unreachable.
    """
    item = _item(svc, stream_id)
    remote = svc.vobiz.get_stream(item.call_uuid, item.vobiz_stream_id or item.stream_id)
    status = str(remote.get("status", "")).lower()
    state = _VOBIZ_STATES.get(status)
    changed = False
    if state is not None and state != "started":
        changed = svc.registry.advance(
            item.stream_id,
            item.call_uuid,
            state,
            generation=item.generation or 1,
            end_reason=f"vobiz: {status}",
            vobiz_start_time=remote.get("start_time"),
            vobiz_end_time=remote.get("end_time"),
            at=now_iso(),
        )
    view = stream_view(svc, _item(svc, stream_id))
    return {
        **view,
        "vobiz": {k: remote.get(k) for k in ("status", "start_time", "end_time")},
        "reconciled": changed,
    }


# ------------------------------------------------------------------------------------ control

Action = Literal["play", "checkpoint", "clear", "end"]


class PlayRequest(BaseModel):
    """Body of ``POST /v1/streams/{id}/play``: PCM16 LE mono, base64."""

    model_config = ConfigDict(extra="forbid")
    audio_b64: str = Field(min_length=4, max_length=8 * 1024 * 1024)
    sample_rate: Literal[8000, 16000, 24000] = 8000


class CheckpointRequest(BaseModel):
    """Body of ``POST /v1/streams/{id}/checkpoint``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")
    timeout_s: float = Field(20, gt=0, le=25)


class ClearRequest(BaseModel):
    """Body of ``POST /v1/streams/{id}/clear`` (empty)."""

    model_config = ConfigDict(extra="forbid")


class EndRequest(BaseModel):
    """Body of ``POST /v1/streams/{id}/end``: ``stop``, after an optional goodbye."""

    model_config = ConfigDict(extra="forbid")
    goodbye_b64: str | None = Field(None, min_length=4, max_length=8 * 1024 * 1024)
    sample_rate: Literal[8000, 16000, 24000] = 8000
    timeout_s: float = Field(10, gt=0, le=20)


CONTROL_MODELS: dict[str, type[BaseModel]] = {
    "play": PlayRequest,
    "checkpoint": CheckpointRequest,
    "clear": ClearRequest,
    "end": EndRequest,
}


def control_stream(svc: Services, stream_id: str, action: str, body: Any) -> dict[str, Any]:
    """Send play / checkpoint / clear / end to the task that holds the stream's socket.

    Raises:
        RequestError: unknown action or a bad body.
        NotFoundError: no such stream.
        ConflictError: the stream is not live, or not bidirectional.
        UpstreamError: the task failed or could not be reached.
    """
    model = CONTROL_MODELS.get(action)
    if model is None:
        raise RequestError(f"unknown action {action[:40]!r}: play, checkpoint, clear or end")
    request = parse_model(model, body)
    item = _item(svc, stream_id)
    if not item.live:
        raise ConflictError(f"stream {stream_id} is not live (state {item.state})")
    if not item.task_address:  # Vobiz's StartStream callback can come before the task's word
        raise ConflictError(f"stream {stream_id} is starting: no task holds its socket yet")
    if not item.bidirectional:
        raise ConflictError(f"stream {stream_id} is not bidirectional")
    url = f"{item.task_address.rstrip('/')}/internal/streams/{item.stream_id}/{action}"
    try:
        response = svc.http.request(
            "POST",
            url,
            body=request.model_dump_json().encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": "Bearer " + control_auth(item.stream_id, svc.token_key),
            },
            timeout=urllib3.Timeout(connect=2.0, read=svc.config.control_timeout_s),
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
    if response.status == 404:
        raise ConflictError(f"stream {stream_id} is no longer live on its task")
    if response.status == 409:
        raise ConflictError(str(answer.get("message", "conflict")))
    if response.status in (400, 422):  # the task refused the command itself: the caller's fault
        raise RequestError(f"{action}: {str(answer.get('message', 'refused'))[:300]}")
    if response.status >= 300:
        raise UpstreamError(
            f"the stream's task answered {response.status}: {answer.get('message')}"
        )
    return {"stream_id": stream_id, "action": action, **answer}


# ---------------------------------------------------------------------------- Vobiz-facing


def verify(svc: Services, request: SignedRequest) -> str | None:
    """Check Vobiz's signature (V3, else V2) and claim the nonce; returns the claimed key.

    The URL-only V3 form (it does not cover a POST's body) counts only when the operator opted
    in (``CALLSTREAM_ACCEPT_URL_ONLY_SIGNATURES``); an unsigned request only when the operator
    opted out of signatures altogether (``CALLSTREAM_ALLOW_UNSIGNED_CALLBACKS``, logged each
    time). Use :func:`verified` so the nonce is given back when handling fails.

    Raises:
        SignatureError: missing, wrong, or replayed.
    """
    cfg = svc.config
    if not request.signed:
        if cfg.allow_unsigned_callbacks:
            log.warning("accepting an unsigned Vobiz request (CALLSTREAM_ALLOW_UNSIGNED_CALLBACKS)")
            return None
        raise SignatureError("missing X-Vobiz-Signature-V3 (or -V2) or its nonce")
    auth_token = credentials.vobiz_credentials().auth_token
    if not callbacks.verify_request(request, auth_token, url_only=cfg.accept_url_only_signatures):
        raise SignatureError("the Vobiz signature does not verify")
    key = f"nonce#{request.nonce_key}"
    if not svc.once.claim(key, cfg.nonce_ttl_s):
        raise SignatureError("replayed nonce")
    return key


@contextmanager
def verified(svc: Services, request: SignedRequest) -> Iterator[None]:
    """Verify a Vobiz request; if handling it then fails, give its nonce back.

    A nonce is spent only by a request that was handled: Vobiz's retry of a request that failed
    on our side succeeds, while a replay of a handled one is still refused.
    """
    key = verify(svc, request)
    try:
        yield
    except BaseException:
        if key is not None:
            svc.once.release(key)
        raise


def _publish_once(svc: Services, key: str, detail_type: str, detail: dict[str, Any]) -> bool:
    """Publish an event unless ``key`` was published before; a failed publish frees the key."""
    if not svc.once.claim(key, svc.config.nonce_ttl_s):
        return False
    try:
        svc.events.publish(detail_type, detail)
    except BaseException:
        svc.once.release(key)
        raise
    return True


def handle_callback(svc: Services, request: SignedRequest) -> dict[str, Any]:
    """Verify and apply one status callback; publish it on the bus (once per distinct event).

    A redelivery (the same event, name and ``Timestamp``, in any encoding) is the same event; a
    second ``ClearedAudio`` or the same checkpoint played again (another ``Timestamp``) is
    another. A callback never changes the
    call a known stream belongs to; ``StopStream`` ends nothing (Vobiz sends it reliably only
    for stops we asked for): the socket close and the ``Hangup`` webhook end streams.

    Raises:
        SignatureError: the signature does not verify or the nonce was seen.
        RequestError: Event or StreamID missing or invalid.
    """
    with verified(svc, request):
        callback = callbacks.parse_callback(request.params)
        step = callbacks.transition(callback)
        fields: dict[str, Any] = {**step.fields, "last_callback": callback.event}
        if callback.extra_headers:
            fields["extra_headers"] = callback.extra_headers
        changed = svc.registry.apply_callback(
            callback.stream_id, callback.call_uuid, step.state, at=now_iso(), **fields
        )
        identity = json.dumps(  # a redelivery repeats these; another event differs in one
            [callback.event, callback.name, callback.timestamp], separators=(",", ":")
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
        _publish_once(
            svc,
            f"cb#{callback.stream_id}#{digest}",
            step.detail_type,
            {
                "stream_id": callback.stream_id,
                "call_uuid": callback.call_uuid,
                "event": callback.event,
                "name": callback.name,
                "timestamp": callback.timestamp,
                "extra_headers": callback.extra_headers,
            },
        )
    return {"stream_id": callback.stream_id, "event": callback.event, "state_changed": changed}


def handle_hangup(svc: Services, request: SignedRequest) -> dict[str, Any]:
    """Vobiz's ``hangup_url`` webhook: the authoritative end of a call.

    Every stream of the call that is not over ends (reason ``hangup``, with ``HangupCause`` and
    ``Duration`` recorded) and "Call Ended" is published once; redeliveries change nothing.

    Raises:
        SignatureError: the signature does not verify or the nonce was seen.
        RequestError: no CallUUID, or an event other than Hangup.
    """
    with verified(svc, request):
        params = {k.lower(): callbacks.first_value(v) for k, v in request.params.items()}
        event = params.get("event", "Hangup")
        if event.lower() != "hangup":
            raise RequestError(f"hangup URL: Event {event[:40]!r} is not Hangup")
        call_uuid = check_id(params.get("calluuid", ""), "CallUUID")
        cause = params.get("hangupcause", "")[:128] or None
        duration = params.get("duration")
        seconds = int(duration) if duration and duration.isdigit() else None
        at = now_iso()
        ended = [
            item.stream_id
            for item in svc.registry.list_for_call(call_uuid)
            if svc.registry.end_by_hangup(
                item.stream_id, call_uuid, hangup_cause=cause, call_duration_s=seconds, at=at
            )
        ]
        _publish_once(
            svc,
            f"hangup#{call_uuid}",
            "Call Ended",
            {
                "call_uuid": call_uuid,
                "hangup_cause": cause,
                "duration_s": seconds,
                "streams_ended": ended,
            },
        )
    return {"call_uuid": call_uuid, "streams_ended": ended}


def answer_call(svc: Services, request: SignedRequest) -> str:
    """The ``<Response><Stream …>`` XML that streams a call from the moment of answer.

    The answer URL's own query may choose ``agent``, ``bidirectional``, ``content_type``,
    ``audio_track``, ``max_retries`` and the continuation (``redirect_url`` or ``dial``); they
    are part of the signed URL. Settings give the defaults. Vobiz's rules (PROTOCOL.md §1b):

    * bidirectional: ``audioTrack="inbound"`` and ``keepCallAlive="true"`` (the stream holds the
      call until the app sends ``stop``);
    * unidirectional: no keepCallAlive (it needs bidirectional), and the rest of the call flow
      follows the ``<Stream>`` (a ``<Redirect>`` to the operator's application, or a
      ``<Dial>``): a ``<Stream>`` with nothing after it hangs the call up at once, so without a
      continuation the answer is refused with a precise error rather than sent.

    Raises:
        SignatureError: the signature does not verify or the nonce was seen.
        RequestError: no CallUUID, or a bad option.
        ConfigError: a unidirectional answer with no continuation configured.
    """
    with verified(svc, request):
        params = {k.lower(): callbacks.first_value(v) for k, v in request.params.items()}
        query = {k.lower(): v[0] for k, v in parse_query(request.url).items()}
        call_uuid = check_id(params.get("calluuid") or query.get("calluuid") or "", "CallUUID")
        cfg = svc.config
        options = parse_model(
            AnswerOptions,
            {
                "agent": query.get("agent", cfg.answer_agent),
                "bidirectional": query.get("bidirectional", str(cfg.answer_bidirectional)).lower()
                == "true",
                "content_type": query.get("content_type", cfg.answer_content_type),
                "audio_track": query.get("audio_track", "inbound"),
                "max_retries": query.get("max_retries", cfg.answer_max_retries),
                "redirect_url": query.get("redirect_url", cfg.answer_redirect_url) or None,
                "dial": query.get("dial", cfg.answer_dial) or None,
            },
        )
        if options.bidirectional and options.audio_track != "inbound":
            raise RequestError(
                f"audio_track {options.audio_track} with bidirectional: Vobiz would hang up "
                "(End Of XML Instructions); bidirectional streams are inbound only"
            )
        after = _continuation(options)
        if not options.bidirectional and not after:
            raise ConfigError(
                "a unidirectional answer needs the rest of the call flow after <Stream> (Vobiz "
                "hangs up a call whose XML ends there): set CALLSTREAM_ANSWER_REDIRECT_URL or "
                "CALLSTREAM_ANSWER_DIAL, or redirect_url/dial in the answer URL's query"
            )
        url = _service_url(
            svc, call_uuid, options.agent, options.bidirectional, options.content_type
        )
        attributes = {
            "bidirectional": "true" if options.bidirectional else "false",
            "audioTrack": options.audio_track,
            "contentType": options.content_type,
            "maxRetries": str(options.max_retries),
            "statusCallbackUrl": _callback_url(svc, callbacks.origin(request.url)),
            "statusCallbackMethod": "POST",
        }
        if options.bidirectional:
            attributes["keepCallAlive"] = "true"
        attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in attributes.items())
        lines = [f"<Stream {attrs}>{escape(url)}</Stream>", *after]
    body = "\n  ".join(lines)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Response>\n  {body}\n</Response>\n'


def _continuation(options: AnswerOptions) -> list[str]:
    """The call flow after a unidirectional ``<Stream>``: a Redirect or a Dial."""
    if options.redirect_url:
        return [f"<Redirect>{escape(str(options.redirect_url))}</Redirect>"]
    if options.dial:
        return [f"<Dial><Number>{escape(options.dial)}</Number></Dial>"]
    return []


class AnswerOptions(BaseModel):
    """Options of the answer URL's query string."""

    agent: Literal["none", "echo", "prompt"]
    bidirectional: bool
    content_type: ContentType
    audio_track: Literal["inbound", "outbound", "both"]
    max_retries: int = Field(ge=0, le=10)
    redirect_url: HttpUrl | None = None
    dial: str | None = Field(None, pattern=r"^(\+?[0-9]{3,20}|sip:[A-Za-z0-9@._:;=\-]{3,200})$")


def parse_query(url: str) -> dict[str, list[str]]:
    """The query parameters of a URL."""
    return parse_qs(urlsplit(url).query, keep_blank_values=True)
