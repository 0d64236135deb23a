"""The control plane's operations: one function per operator route, called by thin handlers.

Each takes the injected :class:`~callstream.control.services.ControlServices` and a typed request,
and returns the plain dict of the HTTP answer. Vobiz, AWS and the tasks are reached only
through the ports in ``ControlServices``.
"""

from __future__ import annotations

from typing import Any, Literal

from callstream.clock import now_iso
from callstream.control import commands
from callstream.control.api_models import StartStreamRequest, check_id, header_string
from callstream.control.services import ControlServices
from callstream.control.tokens import control_auth
from callstream.exceptions import (
    ConflictError,
    NotFoundError,
    RequestError,
    UnprocessableError,
)
from callstream.registry import StreamItem
from callstream.vocabulary import CONTENT_TYPES


def start_stream(
    svc: ControlServices,
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
        service_url = svc.service_url(call_uuid, request)
        if attempt:
            svc.once.remember(attempt, service_url, svc.config.token_ttl_s)
    body: dict[str, Any] = {
        "service_url": service_url,
        "bidirectional": request.bidirectional,
        "audio_track": request.audio_track,
        "content_type": request.content_type,
        "status_callback_url": str(request.status_callback_url or svc.callback_url(public_base)),
        "status_callback_method": request.status_callback_method,
    }
    if request.extra_headers:
        body["extra_headers"] = header_string(request.extra_headers)
    if request.stream_timeout is not None:
        body["stream_timeout"] = request.stream_timeout
    answer = adopted or svc.vobiz.start_stream(call_uuid, body)
    stream_id = check_id(str(answer["stream_id"]), "Vobiz's stream_id")
    codec, rate = CONTENT_TYPES[request.content_type]
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
        "language": request.language,
        "created_at": at,
    }
    svc.events.publish("Stream Requested", {k: v for k, v in view.items() if k != "service_url"})
    return view


def start_stream_once(
    svc: ControlServices,
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

    def run(payload: dict[str, Any]) -> dict[str, Any]:
        request = StartStreamRequest.model_validate(payload["request"])
        attempt = f"start#{payload['key']}#{payload['call_uuid']}"
        return start_stream(svc, payload["call_uuid"], request, payload["public_base"], attempt)

    return svc.starts.run(run, payload, lambda_context)


def _item(svc: ControlServices, stream_id: str) -> StreamItem:
    item = svc.registry.get(check_id(stream_id, "stream_id"))
    if item is None:
        raise NotFoundError(f"stream {stream_id} not found")
    return item


def stream_view(svc: ControlServices, item: StreamItem) -> dict[str, Any]:
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


def get_stream(svc: ControlServices, stream_id: str) -> dict[str, Any]:
    """One stream.

    Raises:
        NotFoundError: no such stream.
    """
    return stream_view(svc, _item(svc, stream_id))


def list_streams(svc: ControlServices, call_uuid: str) -> dict[str, Any]:
    """A call's streams, oldest first."""
    items = svc.registry.list_for_call(check_id(call_uuid, "call_uuid"))
    return {"call_uuid": call_uuid, "streams": [stream_view(svc, i) for i in items]}


def stop_stream(svc: ControlServices, stream_id: str) -> dict[str, Any]:
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


def stop_call_streams(svc: ControlServices, call_uuid: str) -> dict[str, Any]:
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


def reconcile_stream(svc: ControlServices, stream_id: str) -> dict[str, Any]:
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


def send_command(svc: ControlServices, stream_id: str, action: str, body: Any) -> dict[str, Any]:
    """Send play / checkpoint / clear / end to the task that holds the stream's socket.

    A play is answered as soon as the task has queued it (``play_id``, ``state``): follow it
    with :func:`play_state`.

    Raises:
        RequestError: unknown action or a bad body.
        NotFoundError: no such stream.
        ConflictError: the stream is not live, or not bidirectional.
        UpstreamError: the task failed or could not be reached.
    """
    command = commands.parse_command(action, body)
    item, address = _talking(svc, stream_id)
    status, answer = svc.tasks.command(
        address,
        item.stream_id,
        action,
        command.model_dump_json().encode(),
        control_auth(item.stream_id, svc.token_key),
    )
    commands.raise_for_answer(status, answer, stream_id, action)
    return {"stream_id": stream_id, "action": action, **answer}


def play_state(svc: ControlServices, stream_id: str, play_id: str) -> dict[str, Any]:
    """Where a play is: ``queued``, ``playing``, ``played``, ``cleared``, ``sent``, ``ended``.

    Raises:
        RequestError: not a play id.
        NotFoundError: no such stream, or no such play on it (a task keeps a stream's newest).
        ConflictError: the stream is no longer live (its plays are in its timeline).
        UpstreamError: the task failed or could not be reached.
    """
    commands.check_play_id(play_id)
    item, address = _talking(svc, stream_id)
    status, answer = svc.tasks.play_state(
        address, item.stream_id, play_id, control_auth(item.stream_id, svc.token_key)
    )
    if status == 404 and answer.get("error") == "no_such_play":
        raise NotFoundError(str(answer.get("message", f"no play {play_id}"))[:300])
    commands.raise_for_answer(status, answer, stream_id, "play")
    return {"stream_id": stream_id, **answer}


def _talking(svc: ControlServices, stream_id: str) -> tuple[StreamItem, str]:
    """The registry item of a live, bidirectional stream, and the address of its task.

    Raises:
        NotFoundError: no such stream.
        ConflictError: not live, no task yet, or not bidirectional.
    """
    item = _item(svc, stream_id)
    if not item.live:
        raise ConflictError(f"stream {stream_id} is not live (state {item.state})")
    if not item.task_address:  # Vobiz's StartStream callback can come before the task's word
        raise ConflictError(f"stream {stream_id} is starting: no task holds its socket yet")
    if not item.bidirectional:
        raise ConflictError(f"stream {stream_id} is not bidirectional")
    return item, item.task_address
