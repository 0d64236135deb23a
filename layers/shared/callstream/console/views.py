"""What the console's page reads: the calls, a call's timeline, its recording and transcript."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from callstream import settings
from callstream.analytics.recording import recording_keys
from callstream.analytics.summary import summary_key
from callstream.analytics.transcripts import ROLES
from callstream.console import search
from callstream.console.feed import seq_of
from callstream.exceptions import NotFoundError, RequestError
from callstream.ports import ConsoleStore, Recordings, Transcripts

#: The most timeline items one read looks at (the page asks again from the cursor reached).
PAGE = 1000
#: The most event bytes one answer carries: far under Lambda's 6 MB response (an event on the
#: bus is up to 256 KB, so an answer holds at least a few).
PAGE_BYTES = 1_000_000
#: How long a missing number is waited for before the cursor moves past it (its writer died).
GAP_S = 2.0

#: Calls a page of the list holds.
CALLS_PAGE = 100
#: A calls page token: the ``first_seen`` and the id of the last call of the page before.
PAGE_TOKEN = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"  # first_seen
    r"\|[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"  # the call id
)

#: Lifetime of a recording's pre-signed URL on the console.
RECORDING_URL_S = 300


@dataclass(eq=False)
class ConsoleServices:
    """What the console's API reads."""

    store: ConsoleStore
    recordings: Recordings
    transcripts: Transcripts
    config: settings.ConsoleSettings


def page_config(svc: ConsoleServices) -> dict[str, Any]:
    """What the page needs before anyone signs in: how to sign in."""
    cfg = svc.config
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return {
        "auth": cfg.console_auth,
        "client_id": cfg.console_client_id or None,
        "region": region,
        "cognito_url": cognito_url(cfg.console_cognito_url, region),
    }


def cognito_url(configured: str, region: str | None) -> str:
    """Where the page's InitiateAuth calls go (sign-in, and the refresh of its ID token)."""
    if configured:
        return configured.rstrip("/") + "/"
    return f"https://cognito-idp.{region or 'us-east-1'}.amazonaws.com/"


def calls(
    svc: ConsoleServices,
    state: str | None = None,
    query: str | None = None,
    before: str | None = None,
    since: str | None = None,
    until: str | None = None,
    sentiment: str | None = None,
) -> dict[str, Any]:
    """A page of the calls list, newest call first, filtered (:func:`search.parse`).

    ``next`` is the token of the page after it (ask with ``before``), None at the end. A
    search (words, numbers, the caller's sentiment) looks through ``search.SEARCH_CALLS``
    calls a request: a page may hold fewer calls than it could and still have a ``next``.

    Raises:
        RequestError: ``before`` is not a token this gave, or is outside the range asked
            for; a filter the list does not know (:func:`search.parse`).
    """
    wanted = search.parse(state, query, since, until, sentiment)
    if before:
        if not PAGE_TOKEN.fullmatch(before):
            raise RequestError("before is not a calls page token")
        first_seen = before.partition("|")[0]
        if (wanted.since and first_seen < wanted.since) or (
            wanted.until and first_seen > wanted.until
        ):
            raise RequestError("before is a token of another range (since/until)")
    cards, after = svc.store.recent_cards(CALLS_PAGE, before or None, wanted, search.SEARCH_CALLS)
    out = []
    for card in cards:
        shown = {k: v for k, v in card.items() if k not in CARD_INTERNAL}
        out.append(shown | {"call_uuid": card["sk"], "caller_overall": search.overall(card)})
    return {"calls": out, "next": after}


#: What the calls list does not show of a card.
CARD_INTERNAL = frozenset(
    {"pk", "sk", "ttl", "shelf", "search_key", "words", "caller_score", "caller_lines"}
)


#: What the call's page shows of its card.
CARD_SHOWN = (
    "first_seen",
    "state",
    "from_number",
    "to_number",
    "direction",
    "duration_s",
    "ended_at",
    "updated_at",
    "bidirectional",
)


def events(
    svc: ConsoleServices, call_uuid: str, after: str = "", now: float | None = None
) -> dict[str, Any]:
    """A call's timeline after a cursor: each event with its detail, and the cursor reached.

    The cursor moves over numbers with none missing before them: a number taken and not yet
    written (a writer racing) holds it, at most ``GAP_S`` after the next one was written, so a
    late item is read on the next poll. What lies past a held cursor is returned too (the page
    keys on each event and shows it once). An answer stops at ``PAGE_BYTES`` of events;
    ``more`` says there is more to read now. The first read (no cursor) also carries the
    call's card (when it began, who calls whom).

    Raises:
        NotFoundError: the first read of a call the console never heard of (the page says so,
            and looks again: a call's first event may be on its way).
    """
    now = time.time() if now is None else now
    out: list[dict[str, Any]] = []
    size, reached, held = 0, after, False
    items = svc.store.events(call_uuid, after, PAGE)
    card = svc.store.card(call_uuid) if not after else None
    if not after and not items and card is None:
        raise NotFoundError(f"no call {call_uuid} in the console (yet)")
    more = len(items) == PAGE  # the page may read on at once
    for item in items:
        detail = item.get("detail") or "{}"
        size += len(detail) + 256  # the rest of the event's JSON
        if out and size > PAGE_BYTES:
            more = True
            break
        out.append(
            {
                "id": item.get("id"),
                "cursor": item["sk"],
                "type": item.get("type"),
                "stream_id": item.get("stream_id"),
                "detail": json.loads(detail),
            }
        )
        if held:
            continue
        seq, last = seq_of(item["sk"]), seq_of(reached)
        late = now - float(item.get("written_at") or 0) >= GAP_S
        if seq is None or last is None or seq == last + 1 or late:
            reached = item["sk"]
        else:
            held = True
    answer = {"call_uuid": call_uuid, "events": out, "cursor": reached, "more": more}
    if card is not None:
        answer["card"] = {k: v for k, v in card.items() if k in CARD_SHOWN}
    return answer


def recording(svc: ConsoleServices, call_uuid: str, stream_id: str) -> dict[str, Any]:
    """A short-lived URL of the stream's recording, and its summary (None until they exist)."""
    wav, _sidecar = recording_keys(call_uuid, stream_id)
    summary = svc.recordings.find(summary_key(call_uuid, stream_id))
    found = svc.recordings.find(_sidecar) is not None
    return {
        "stream_id": stream_id,
        "url": svc.recordings.presign(wav, RECORDING_URL_S) if found else None,
        "expires_s": RECORDING_URL_S,
        "summary": json.loads(summary) if summary is not None else None,
    }


def transcript(svc: ConsoleServices, call_uuid: str, stream_id: str) -> str:
    """The stream's transcript as text: one line per utterance, in the order they were said.

    Raises:
        NotFoundError: the stream's lines are another call's (a stream id is not a call's
            secret: the lookup is scoped to the call asked for).
    """
    items = svc.transcripts.for_stream(stream_id)
    if items and not any(i.get("call_uuid") == call_uuid for i in items):
        raise NotFoundError(f"no stream {stream_id} on call {call_uuid}")
    items = [i for i in items if i.get("call_uuid") == call_uuid and i.get("text") is not None]
    items.sort(key=lambda i: (float(i.get("start_ms", 0)), str(i.get("utterance", ""))))
    lines = []
    for item in items:
        at = float(item.get("start_ms", 0)) / 1000
        role = ROLES.get(str(item.get("track")), str(item.get("track")))
        mood = f" [{item['sentiment']}]" if item.get("sentiment") else ""
        lines.append(f"{int(at // 60):02d}:{at % 60:04.1f}  {role}{mood}: {item['text']}")
    return "\n".join(lines) + ("\n" if lines else "")
