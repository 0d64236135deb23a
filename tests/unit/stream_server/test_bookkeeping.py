"""The session's hooks with fakes: what a stream's life writes, and that a failed write is only logged."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any, cast

import pytest

from stream_server.bookkeeping import Bookkeeping
from stream_server.session import Session


class FakeRegistry:
    """Keeps every call; fails the ones named in ``failing``."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []
        self.failing = failing

    def _call(self, name: str, stream_id: str, call_uuid: str, fields: dict[str, Any]) -> None:
        if name in self.failing:
            raise RuntimeError(f"{name} throttled")
        self.calls.append((name, stream_id, call_uuid, fields))

    def mark_started(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        self._call("mark_started", stream_id, call_uuid, fields)

    def mark_ended(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        self._call("mark_ended", stream_id, call_uuid, fields)

    def annotate(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        self._call("annotate", stream_id, call_uuid, fields)


class FakeProtection:
    def __init__(self) -> None:
        self.states: list[bool] = []

    async def set(self, protected: bool) -> None:
        self.states.append(protected)


class FakeLeasing:
    def __init__(self) -> None:
        self.ended_calls: list[tuple[int, dict[str, Any]]] = []

    def ended(self, conn: int, **release: Any) -> None:
        self.ended_calls.append((conn, release))


def _session(vobiz_stream_id: str = "s-1", end_reason: str | None = None) -> Session:
    assembler = SimpleNamespace(
        codec="L16",
        sample_rate=16000,
        tracks=("inbound",),
        vobiz_stream_id=vobiz_stream_id,
        stream_id="s-1",
        position_ms=1200.0,
        media_clock_ms=1_732_450_001_200.0,
        stream_totals=SimpleNamespace(frames=60, utterances=1),
        stats=SimpleNamespace(frames=60, gaps=1),
    )
    return cast(
        Session,
        SimpleNamespace(
            assembler=assembler,
            stream_id="s-1",
            grant=SimpleNamespace(call_uuid="c-1", bidirectional=True, jti="j" * 32),
            agent=SimpleNamespace(name="echo"),
            generation=2 if vobiz_stream_id != "s-1" else 1,
            end_reason=end_reason,
            lease_id=7,
            log=logging.getLogger("test.session"),
        ),
    )


def _books(
    registry: FakeRegistry, others_live: bool = False
) -> tuple[Bookkeeping, FakeProtection, FakeLeasing]:
    protection, leasing = FakeProtection(), FakeLeasing()
    books = Bookkeeping(
        registry,
        protection,
        cast(Any, leasing),
        task_address=lambda: "10.0.0.5:8081",
        others_live=lambda session: others_live,
    )
    return books, protection, leasing


def test_a_reconnect_is_recorded_under_the_call_stream_and_linked_under_vobizs_id() -> None:
    registry = FakeRegistry()
    books, protection, _ = _books(registry)
    session = _session(vobiz_stream_id="v-2")

    asyncio.run(books.started(session))

    assert protection.states == [True]
    [(n1, own, call, fields), (n2, linked, _, link)] = registry.calls
    assert (n1, own, call, n2, linked) == ("mark_started", "s-1", "c-1", "mark_started", "v-2")
    assert fields["generation"] == 2 and fields["task_address"] == "10.0.0.5:8081"
    assert link["continues"] == "s-1" and "generation" not in link


def test_the_end_keeps_protection_while_another_call_is_live() -> None:
    registry = FakeRegistry()
    books, protection, _ = _books(registry, others_live=True)
    asyncio.run(books.ended(_session(end_reason="refused")))
    assert protection.states == []  # another call still holds the task
    [(name, _, _, fields)] = registry.calls
    assert (name, fields["state"], fields["end_reason"]) == ("mark_ended", "failed", "refused")

    books, protection, _ = _books(FakeRegistry(), others_live=False)
    asyncio.run(books.ended(_session()))
    assert protection.states == [False]


def test_a_failed_registry_write_is_logged_and_nothing_else_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    books, protection, _ = _books(FakeRegistry(failing=("mark_started", "mark_ended")))
    with caplog.at_level(logging.ERROR, logger="test.session"):
        asyncio.run(books.started(_session()))
        asyncio.run(books.refused(_session(), None, "x" * 500))
    assert protection.states == [True]
    assert [r.getMessage() for r in caplog.records] == [
        "registry mark_started failed",
        "registry mark_ended failed",
    ]


def test_a_refusal_without_a_stream_id_is_recorded_under_the_token_and_the_reason_is_capped() -> (
    None
):
    registry = FakeRegistry()
    books, _, _ = _books(registry)
    asyncio.run(books.refused(_session(), None, "bad start " * 100))
    [(name, key, _, fields)] = registry.calls
    assert (name, key) == ("mark_ended", "refused-" + "j" * 16)
    assert len(fields["end_reason"]) == 200


def test_release_hands_the_lease_the_calls_position_and_vobizs_clock() -> None:
    books, _, leasing = _books(FakeRegistry())
    books.release(_session(vobiz_stream_id="v-2"))
    [(conn, release)] = leasing.ended_calls
    assert conn == 7
    assert release["media_clock_ms"] == 1_732_450_001_200.0
    assert (release["position_ms"], release["frames"], release["utterances"]) == (1200.0, 60, 1)
    assert release["stream_id"] == "s-1" and release["vobiz_stream_id"] == "v-2"
