"""What the console's page reads: the calls, a call's timeline, its recording and transcript."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from callstream import settings
from callstream.analytics.recording import recording_keys
from callstream.analytics.summary import summary_key
from callstream.analytics.transcripts import ROLES
from callstream.ports import ConsoleStore, Recordings, Transcripts

#: The most timeline items one read returns (the page asks again from the last cursor).
PAGE = 500
STATES = ("requested", "live", "ended")

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
    return {
        "auth": cfg.console_auth,
        "client_id": cfg.console_client_id or None,
        "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    }


def calls(
    svc: ConsoleServices, state: str | None = None, query: str | None = None
) -> dict[str, Any]:
    """The recent calls, newest activity first; filtered by state and by a call id substring."""
    cards = [dict(c, call_uuid=c["sk"]) for c in svc.store.cards()]
    if state in STATES:
        cards = [c for c in cards if c.get("state") == state]
    if query:
        needle = query.strip().lower()[:128]
        cards = [c for c in cards if needle in c["call_uuid"].lower()]
    cards.sort(key=lambda c: str(c.get("updated_at", "")), reverse=True)
    for card in cards:
        card.pop("pk", None), card.pop("sk", None), card.pop("ttl", None)
    return {"calls": cards}


def events(svc: ConsoleServices, call_uuid: str, after: str = "") -> dict[str, Any]:
    """A call's timeline after a cursor: each event with its detail, and the cursor reached."""
    items = svc.store.events(call_uuid, after, PAGE)
    out = [
        {
            "id": i.get("id"),
            "cursor": i["sk"],
            "type": i.get("type"),
            "stream_id": i.get("stream_id"),
            "detail": json.loads(i.get("detail") or "{}"),
        }
        for i in items
    ]
    return {"call_uuid": call_uuid, "events": out, "cursor": out[-1]["cursor"] if out else after}


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


def transcript(svc: ConsoleServices, stream_id: str) -> str:
    """The stream's transcript as text: one line per utterance, in the order they were said."""
    items = [i for i in svc.transcripts.for_stream(stream_id) if i.get("text") is not None]
    items.sort(key=lambda i: (float(i.get("start_ms", 0)), str(i.get("utterance", ""))))
    lines = []
    for item in items:
        at = float(item.get("start_ms", 0)) / 1000
        role = ROLES.get(str(item.get("track")), str(item.get("track")))
        mood = f" [{item['sentiment']}]" if item.get("sentiment") else ""
        lines.append(f"{int(at // 60):02d}:{at % 60:04.1f}  {role}{mood}: {item['text']}")
    return "\n".join(lines) + ("\n" if lines else "")
