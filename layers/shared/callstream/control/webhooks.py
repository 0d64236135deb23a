"""Vobiz-facing routes: the signed status callbacks, the hang-up webhook, the answer URL.

Every request is verified (:func:`verified`: V3, else V2, then its nonce is claimed) before
anything is read from it, and handled idempotently: a redelivery changes nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from callstream.clock import now_iso
from callstream.control import answer as xml
from callstream.control import callbacks
from callstream.control.api_models import AnswerOptions, check_id, parse_query
from callstream.control.callbacks import SignedRequest
from callstream.control.services import ControlServices
from callstream.exceptions import RequestError, SignatureError
from callstream.settings import ApiSettings

log = logging.getLogger("callstream.webhooks")
DIRECTIONS = ("inbound", "outbound")
#: How long a callback's nonce is remembered (a replay inside it is refused).
NONCE_TTL_S = 86_400
#: ``maxRetries`` of the answer's ``<Stream>``: how often Vobiz reconnects a dropped socket.
ANSWER_MAX_RETRIES = 3


def verify(svc: ControlServices, request: SignedRequest) -> str | None:
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
    auth_token = svc.credentials().auth_token
    if not callbacks.verify_request(request, auth_token, url_only=cfg.accept_url_only_signatures):
        raise SignatureError("the Vobiz signature does not verify")
    key = f"nonce#{request.nonce_key}"
    if not svc.once.claim(key, NONCE_TTL_S):
        raise SignatureError("replayed nonce")
    return key


@contextmanager
def verified(svc: ControlServices, request: SignedRequest) -> Iterator[None]:
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


def _publish_once(svc: ControlServices, key: str, detail_type: str, detail: dict[str, Any]) -> bool:
    """Publish an event unless ``key`` was published before; a failed publish frees the key."""
    if not svc.once.claim(key, NONCE_TTL_S):
        return False
    try:
        svc.events.publish(detail_type, detail)
    except BaseException:
        svc.once.release(key)
        raise
    return True


def handle_callback(svc: ControlServices, request: SignedRequest) -> dict[str, Any]:
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


def handle_hangup(svc: ControlServices, request: SignedRequest) -> dict[str, Any]:
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
                "from": callbacks.number(params.get("from")),
                "to": callbacks.number(params.get("to")),
            },
        )
    return {"call_uuid": call_uuid, "streams_ended": ended}


def answer_call(svc: ControlServices, request: SignedRequest) -> str:
    """The ``<Response><Stream …>`` XML that streams a call from the moment of answer.

    The answer URL's own query may choose ``agent``, ``bidirectional``, ``content_type``,
    ``audio_track``, ``max_retries``, ``language``, the continuation (``redirect_url`` or
    ``dial``) and the assistant's ``prompt``, ``voice`` and ``model``; they are part of the
    signed URL. Settings give the defaults (template
    parameters, checked when the stack deploys). Vobiz's rules (docs/protocol.md §1b):

    * bidirectional: ``audioTrack="inbound"`` and ``keepCallAlive="true"`` (the stream holds the
      call until the app sends ``stop``); the default, so a fresh deployment answers a call;
    * unidirectional: no keepCallAlive (it needs bidirectional), and the rest of the call flow
      follows the ``<Stream>`` (a ``<Redirect>`` to the operator's application, or a
      ``<Dial>``): a ``<Stream>`` with nothing after it hangs the call up at once.

    A caller is never answered with a failure for a configuration mistake: an option Vobiz
    would refuse (or that is not valid) is replaced by the closest valid one, each with a
    logged warning (:func:`answer_options`).

    Raises:
        SignatureError: the signature does not verify or the nonce was seen.
        RequestError: no CallUUID.
    """
    with verified(svc, request):
        params = {k.lower(): callbacks.first_value(v) for k, v in request.params.items()}
        query = {k.lower(): v[0] for k, v in parse_query(request.url).items()}
        call_uuid = check_id(params.get("calluuid") or query.get("calluuid") or "", "CallUUID")
        options, changes = answer_options(query, svc.config)
        for change in changes:
            log.warning("answer for call %s: %s", call_uuid, change)
        after = xml.continuation(options.redirect_url, options.dial)
        url = svc.service_url(call_uuid, options)
        attributes = {
            "bidirectional": "true" if options.bidirectional else "false",
            "audioTrack": options.audio_track,
            "contentType": options.content_type,
            "maxRetries": str(options.max_retries),
            "statusCallbackUrl": svc.callback_url(callbacks.origin(request.url)),
            "statusCallbackMethod": "POST",
        }
        if options.bidirectional:
            attributes["keepCallAlive"] = "true"
        _announce(svc, call_uuid, params, options)
    return xml.response(xml.stream(url, attributes), *after)


def _announce(
    svc: ControlServices, call_uuid: str, params: dict[str, str], options: AnswerOptions
) -> None:
    """Publish "Call Answered" (who calls whom, for the console); it never fails the answer."""
    direction = params.get("direction")
    try:
        svc.events.publish(
            "Call Answered",
            {
                "call_uuid": call_uuid,
                "from": callbacks.number(params.get("from")),
                "to": callbacks.number(params.get("to")),
                "direction": direction if direction in DIRECTIONS else None,
                "agent": options.agent,
                "bidirectional": options.bidirectional,
            },
        )
    except Exception:  # the caller is answered whatever the bus says
        log.exception("answer for call %s: Call Answered not published", call_uuid)


#: What a call is answered with when nothing else is valid: a stream that keeps the call up.
_SAFE_ANSWER = AnswerOptions(
    agent="none",
    bidirectional=True,
    content_type="audio/x-mulaw;rate=8000",
    audio_track="inbound",
    max_retries=3,
)


def answer_options(query: dict[str, str], cfg: ApiSettings) -> tuple[AnswerOptions, list[str]]:
    """The answer's options: the query's over the settings, made into a stream Vobiz accepts.

    Returns:
        The options, and one sentence per option that was changed to get there.
    """
    settings = {  # checked when the stack deploys (template parameters); checked again here
        "agent": cfg.answer_agent,
        "bidirectional": str(cfg.answer_bidirectional),
        "content_type": cfg.answer_content_type,
        "max_retries": str(ANSWER_MAX_RETRIES),
        "redirect_url": cfg.answer_redirect_url or "",
        "dial": cfg.answer_dial or "",
    }
    values = _SAFE_ANSWER.model_dump()
    changes: list[str] = []
    for origin, given in (("setting", settings), ("query", query)):
        for name in AnswerOptions.model_fields:
            if name not in given:
                continue
            raw = given[name]
            candidate = {**values, name: raw.lower() == "true" if name == "bidirectional" else raw}
            if name in ("redirect_url", "dial") and not raw:
                candidate[name] = None
            try:
                values = AnswerOptions.model_validate(candidate).model_dump()
            except ValidationError as error:
                reason = error.errors()[0]["msg"]
                changes.append(
                    f"{origin} {name}={raw[:80]!r} is not valid ({reason}): kept {values[name]!r}"
                )
    options = AnswerOptions.model_validate(values)
    after = xml.continuation(options.redirect_url, options.dial)
    if not options.bidirectional and not after:
        changes.append(
            "a unidirectional stream with nothing after it would hang the call up (End Of XML "
            "Instructions) and no redirect_url or dial is set: answered bidirectional, which "
            "keeps the call up"
        )
        options = options.model_copy(update={"bidirectional": True})
    if options.bidirectional and options.audio_track != "inbound":
        changes.append(
            f"audio_track {options.audio_track} with bidirectional would hang the call up "
            "(Vobiz streams a bidirectional call's inbound track only): answered inbound"
        )
        options = options.model_copy(update={"audio_track": "inbound"})
    return options, changes
