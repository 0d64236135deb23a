"""The console's feed: every event on the bus, kept per call for the page to read by cursor.

An EventBridge rule sends every ``callstream`` event here. Each becomes one item of its call's
timeline under the next number of the call's counter (:func:`cursor`), and updates the call's
card in the calls list. The page asks for "everything after my cursor"; the API moves a cursor
only over numbers with nothing missing before them (:func:`callstream.console.views.events`),
so every item is read once whatever the burst, and one written a moment late (a writer that
took its number first and wrote second) is still read. A redelivered event (EventBridge is at
least once) gets a number of its own; the page keys on the event and shows it once.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from callstream.clock import iso
from callstream.console.search import CARD_WORDS, words_of
from callstream.ports import ConsoleStore
from callstream.vocabulary import UNKNOWN_CALL


@dataclass(eq=False)
class FeedServices:
    """What the feed talks to."""

    store: ConsoleStore


#: Events that change nothing on a call's card: not written there (every card shares a key).
NOT_ON_THE_CARD = frozenset({"Transcript Partial"})


def cursor(seq: int) -> str:
    """A timeline cursor: the item's number in its call, sortable as text."""
    return f"s#{seq:012d}"


def seq_of(at: str) -> int | None:
    """A cursor's number (0 for the start); None for a cursor of the older, timed kind."""
    if not at:
        return 0
    prefix, _, number = at.partition("#")
    return int(number) if prefix == "s" and number.isdigit() else None


def card_fields(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """What an event says about its call, for the call's card."""
    if detail_type == "Stream Requested":
        return {
            "state": "requested",
            "codec": detail.get("codec"),
            "sample_rate": detail.get("sample_rate"),
            "tracks": detail.get("audio_track"),
            "agent": detail.get("agent"),
            "bidirectional": detail.get("bidirectional"),
        }
    if detail_type == "Session Event":
        data = detail.get("data") or {}
        name = detail.get("name")
        if name == "start":
            return {
                "state": "live",
                "codec": data.get("codec"),
                "sample_rate": data.get("sample_rate"),
                "tracks": "+".join(data.get("tracks") or []) or None,
                "generation": data.get("generation", 1),
            }
        if name in ("stop", "close"):
            return {"state": "ended", "ended_at": detail.get("received_at")}
        return {}
    if detail_type == "Stream Started":
        return {"state": "live"}
    if detail_type == "Sentiment Scored" and detail.get("role") == "caller":
        return {
            "caller_sentiment": detail.get("sentiment"),  # the latest line's
            "caller_negative": detail.get("caller_rolling_negative"),
        }
    if detail_type == "Sentiment Alert":
        return {"alert": True}
    if detail_type == "Call Ended":
        return {
            "state": "ended",
            "hangup_cause": detail.get("hangup_cause"),
            "from_number": detail.get("from"),
            "to_number": detail.get("to"),
        }
    if detail_type == "Call Answered":
        return {
            "from_number": detail.get("from"),
            "to_number": detail.get("to"),
            "direction": detail.get("direction"),
        }
    if detail_type == "Recording Ready":
        return {"duration_s": detail.get("duration_s"), "recording": True}
    if detail_type == "Call Completed":
        return {"completed": True, "utterances": detail.get("utterances")}
    return {}


def record(svc: FeedServices, event: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Keep one bus event on its call's timeline and update the call's card."""
    now = time.time() if now is None else now
    detail = event.get("detail") or {}
    detail_type = str(event.get("detail-type", ""))
    call_uuid = str(detail.get("call_uuid") or UNKNOWN_CALL)
    event_id = str(event.get("id", ""))
    at = cursor(svc.store.next_seq(call_uuid))
    svc.store.put_event(
        call_uuid,
        at,
        {
            "id": event_id,
            "type": detail_type,
            "stream_id": detail.get("stream_id"),
            "detail": json.dumps(detail, default=str),
            "published_at": detail.get("published_at"),
            "written_at": now,
        },
    )
    if detail_type in NOT_ON_THE_CARD:
        return {"call_uuid": call_uuid, "cursor": at}
    fields = {k: v for k, v in card_fields(detail_type, detail).items() if v is not None}
    if detail.get("stream_id"):
        fields["stream_id"] = detail["stream_id"]
    svc.store.update_card(
        call_uuid,
        {**fields, "updated_at": iso(now), "last_event": detail_type},
        # the calls list's index (``recent``): every card on its shelf, by when it was first seen
        {"first_seen": iso(now), "shelf": "calls"},
        card_counts(detail_type, detail),
    )
    if detail_type == "Utterance Transcribed" and detail.get("kind", "final") == "final":
        svc.store.add_words(call_uuid, words_of(str(detail.get("text") or "")), CARD_WORDS)
    return {"call_uuid": call_uuid, "cursor": at}


def card_counts(detail_type: str, detail: dict[str, Any]) -> dict[str, float] | None:
    """What an event adds to its card's counters: the caller's sentiment, line by line.

    Their sum makes the overall sentiment the list shows and filters by (``search.overall``).
    """
    if detail_type != "Sentiment Scored" or detail.get("role") != "caller":
        return None
    scores = detail.get("scores")
    if not isinstance(scores, dict):
        return None
    try:
        score = float(scores.get("Positive") or 0) - float(scores.get("Negative") or 0)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(score):
        return None
    return {"caller_score": max(-1.0, min(1.0, score)), "caller_lines": 1}
