"""Finding calls: what a calls-list request asks for, and whether one call's card answers it.

DynamoDB has no text index. The calls index (``recent``) gives the calls newest first, within
a start-time range (its sort key) and of a state (projected); words said, numbers and the
caller's sentiment are on the card, so a search reads the cards behind the index and keeps
those that match (:meth:`CallsFilter.matches`), looking through at most
:data:`SEARCH_CALLS` calls a request (the answer's ``next`` goes on from there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from callstream.clock import iso
from callstream.exceptions import RequestError

STATES = ("requested", "live", "ended")
SENTIMENTS = ("positive", "neutral", "negative")

#: The calls a filtered request looks through (cards read in pages of 100).
SEARCH_CALLS = 2000
#: Words of a search, and their length: the rest is ignored.
QUERY_WORDS = 8
QUERY_CHARS = 128

#: Words kept on a card: a line gives its first ``LINE_WORDS`` of at most ``WORD_CHARS``
#: characters, and a card holds at most ``CARD_WORDS`` (a call's vocabulary, far under
#: DynamoDB's 400 KB item limit whatever is said).
LINE_WORDS = 64
WORD_CHARS = 32
CARD_WORDS = 4000

#: The caller's overall sentiment: the mean of (positive - negative) over the caller's lines,
#: cut where the console's call page cuts it.
OVERALL_CUT = 0.2

_WORD = re.compile(r"[0-9a-z']+")
_PHONE = re.compile(r"\+?[\d\s().-]{3,}")


def words_of(text: str) -> set[str]:
    """The words of a transcript line as the card keeps them (lower case, no punctuation)."""
    found = (w.strip("'") for w in _WORD.findall(text.lower()))
    return {w for w in list(found)[:LINE_WORDS] if w and len(w) <= WORD_CHARS}


def overall(card: dict[str, Any]) -> str | None:
    """The caller's overall sentiment on a card (None before a caller line is scored)."""
    lines = card.get("caller_lines") or 0
    if not lines:
        return None
    mean = float(card.get("caller_score") or 0) / float(lines)
    return "positive" if mean > OVERALL_CUT else "negative" if mean < -OVERALL_CUT else "neutral"


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


@dataclass(frozen=True)
class CallsFilter:
    """What a calls-list request asks for; every part given must hold."""

    state: str | None = None
    #: The calls begun in this range (``first_seen``, ISO 8601 UTC, inclusive).
    since: str | None = None
    until: str | None = None
    #: The caller's overall sentiment (:func:`overall`).
    sentiment: str | None = None
    #: Each must be in the call id, in a number (by its digits), or begin a word said.
    terms: tuple[str, ...] = field(default=())

    @property
    def reads_cards(self) -> bool:
        """Whether the index alone cannot answer it (a search, or the caller's sentiment)."""
        return bool(self.terms or self.sentiment)

    def matches(self, card: dict[str, Any]) -> bool:
        """Whether a call's card (with its id as ``sk``) answers the card-side parts."""
        if self.sentiment and overall(card) != self.sentiment:
            return False
        if not self.terms:
            return True
        said = card.get("words") or set()
        numbers = [_digits(str(card.get(k) or "")) for k in ("from_number", "to_number")]
        call = str(card.get("sk", "")).lower()
        for term in self.terms:
            digits = _digits(term) if _PHONE.fullmatch(term) else ""
            if term in call or (digits and any(digits in n for n in numbers if n)):
                continue
            if term in said or any(w.startswith(term) for w in said):
                continue
            return False
        return True


def _bound(name: str, value: str, end: bool) -> str:
    """A date (``2026-12-07``: the whole UTC day) or an ISO 8601 time, as ``first_seen`` is."""
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
            at = day + timedelta(days=1, milliseconds=-1) if end else day
        else:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if at.tzinfo is None:
                raise ValueError("no time zone")
    except ValueError as error:
        raise RequestError(
            f"{name} must be a date (2026-12-07) or an ISO 8601 time with its zone"
            f" (2026-12-07T09:00:00Z): {error}"
        ) from None
    return iso(at.timestamp())


def parse(
    state: str | None = None,
    query: str | None = None,
    since: str | None = None,
    until: str | None = None,
    sentiment: str | None = None,
) -> CallsFilter:
    """A calls-list request's query string as a filter.

    Raises:
        RequestError: a state, sentiment or time the list does not know, or a range that
            ends before it begins.
    """
    if state and state not in STATES:
        raise RequestError(f"state must be one of {', '.join(STATES)}")
    mood = sentiment.lower() if sentiment else None
    if mood and mood not in SENTIMENTS:
        raise RequestError(f"sentiment must be one of {', '.join(SENTIMENTS)}")
    start = _bound("since", since, end=False) if since else None
    end = _bound("until", until, end=True) if until else None
    if start and end and end < start:
        raise RequestError("until is before since")
    text = (query or "").strip().lower()[:QUERY_CHARS]
    # a number is one term whatever its spaces (+91 98765 43210); words are terms each
    terms = [text] if _PHONE.fullmatch(text) else text.split()
    cleaned = (t.strip("'\".,;:!?") for t in terms[:QUERY_WORDS])
    return CallsFilter(
        state=state or None,
        since=start,
        until=end,
        sentiment=mood,
        terms=tuple(t for t in dict.fromkeys(cleaned) if t),
    )
