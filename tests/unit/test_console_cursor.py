"""The console timeline's cursor at scale and under racing writers, on the real feed and view
code. The store is the ConsoleStore port kept in memory as the DynamoDB adapter keeps it (items
sorted by sort key, "after" exclusive, a limit); tests/functional/test_console.py runs the same
protocol through the real handlers and moto."""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from typing import Any

import pytest

from callstream.console import feed, views

CALL = "c-burst"


class MemoryStore:
    """The console table's timeline, in memory."""

    def __init__(self) -> None:
        self.keys: dict[str, list[str]] = defaultdict(list)
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.counters: dict[str, int] = defaultdict(int)

    def next_seq(self, call_uuid: str) -> int:
        self.counters[call_uuid] += 1
        return self.counters[call_uuid]

    def put_event(self, call_uuid: str, cursor: str, fields: dict[str, Any]) -> None:
        if (call_uuid, cursor) not in self.items:
            bisect.insort(self.keys[call_uuid], cursor)
        self.items[(call_uuid, cursor)] = {**fields, "sk": cursor}

    def update_card(
        self, call_uuid: str, fields: dict, first: dict | None = None, add: dict | None = None
    ) -> None:
        return None

    def add_words(self, call_uuid: str, words: set[str], most: int) -> bool:
        return True

    def recent_cards(
        self, limit: int, before: str | None, wanted: Any, budget: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        return [], None

    def card(self, call_uuid: str) -> dict[str, Any] | None:
        return {"first_seen": "2026-12-07T12:00:00Z"} if self.keys[call_uuid] else None

    def events(self, call_uuid: str, after: str, limit: int) -> list[dict[str, Any]]:
        keys = self.keys[call_uuid]
        start = bisect.bisect_right(keys, after)
        return [self.items[(call_uuid, k)] for k in keys[start : start + limit]]


def services(store: MemoryStore) -> views.ConsoleServices:
    return views.ConsoleServices(store=store, recordings=None, transcripts=None, config=None)  # type: ignore[arg-type]


def event(i: int, size: int = 0) -> dict[str, Any]:
    detail = {"call_uuid": CALL, "name": "dtmf", "seq": i, "data": {"digit": "x" * size}}
    return {"id": f"e-{i}", "detail-type": "Session Event", "detail": detail}


def read_to_the_end(svc: views.ConsoleServices, now: float) -> tuple[list[str], int]:
    """The page's protocol: after its cursor, on while ``more``; ids as first shown."""
    cursor, shown, seen, largest = "", [], set(), 0
    while True:
        answer = views.events(svc, CALL, cursor, now=now)
        largest = max(largest, len(json.dumps(answer)))
        for e in answer["events"]:
            if e["id"] not in seen:
                seen.add(e["id"])
                shown.append(e["id"])
        moved, cursor = answer["cursor"] != cursor, answer["cursor"]
        if not answer["more"] and not moved:
            return shown, largest


def test_a_burst_of_100_000_events_is_read_to_its_end_each_once_in_order() -> None:
    store = MemoryStore()
    svc = feed.FeedServices(store=store)
    for i in range(100_000):  # all written within the same instant
        feed.record(svc, event(i), now=1000.0)
    shown, largest = read_to_the_end(services(store), now=1000.0)
    assert shown == [f"e-{i}" for i in range(100_000)]
    assert largest < views.PAGE_BYTES


def test_answers_stay_under_the_byte_limit_when_events_are_large() -> None:
    store = MemoryStore()
    svc = feed.FeedServices(store=store)
    for i in range(70):
        feed.record(svc, event(i, size=40_000), now=1000.0)
    shown, largest = read_to_the_end(services(store), now=1000.0)
    assert len(shown) == 70 and largest <= views.PAGE_BYTES + 64_000


def test_a_number_taken_and_written_late_is_waited_for_and_read_once() -> None:
    """Two writers race: the second takes number 3 and writes it after number 4 is read."""
    store = MemoryStore()
    svc = feed.FeedServices(store=store)
    read = services(store)
    for i in (1, 2):
        feed.record(svc, event(i), now=1000.0)
    late = store.next_seq(CALL)  # number 3: taken, its item not written yet
    feed.record(svc, event(4), now=1000.0)
    first = views.events(read, CALL, "", now=1000.5)
    assert [e["id"] for e in first["events"]] == ["e-1", "e-2", "e-4"]
    assert first["cursor"] == feed.cursor(2), "held before the missing number"
    store.put_event(CALL, feed.cursor(late), {"id": "e-3", "detail": "{}", "written_at": 1000.6})
    second = views.events(read, CALL, first["cursor"], now=1000.7)
    assert [e["id"] for e in second["events"]] == ["e-3", "e-4"] and second[
        "cursor"
    ] == feed.cursor(4)


def test_a_number_never_written_holds_the_cursor_for_at_most_the_gap_wait() -> None:
    """A writer died between taking its number and writing (EventBridge retries the event with
    a new number): the cursor moves past the hole once the next item is ``GAP_S`` old."""
    store = MemoryStore()
    svc = feed.FeedServices(store=store)
    read = services(store)
    feed.record(svc, event(1), now=1000.0)
    store.next_seq(CALL)  # number 2, never written
    feed.record(svc, event(3), now=1000.0)
    assert views.events(read, CALL, "", now=1001.0)["cursor"] == feed.cursor(1)
    later = views.events(read, CALL, feed.cursor(1), now=1000.0 + views.GAP_S)
    assert later["cursor"] == feed.cursor(3)


def test_an_unknown_call_is_not_found_and_a_known_ones_first_read_carries_its_card() -> None:
    from callstream.exceptions import NotFoundError

    store = MemoryStore()
    svc = services(store)
    with pytest.raises(NotFoundError, match="no call c-unknown"):
        views.events(svc, "c-unknown", "")
    feed.record(feed.FeedServices(store=store), event(0))  # type: ignore[arg-type]
    first = views.events(svc, CALL, "")
    assert first["card"] == {"first_seen": "2026-12-07T12:00:00Z"}
    assert "card" not in views.events(svc, CALL, first["cursor"])  # later polls: no extra read
