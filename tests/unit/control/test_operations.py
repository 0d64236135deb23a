"""The operator operations with fakes for every port: what reaches Vobiz, the registry and the bus."""

from __future__ import annotations

import time
from typing import Any

import pytest

from callstream.control import operations
from callstream.control.api_models import StartStreamRequest
from callstream.control.services import ControlServices
from callstream.control.tokens import verify_token
from callstream.exceptions import ConflictError, UnprocessableError, UpstreamError
from callstream.ports import VobizCredentials
from callstream.settings import ApiSettings

CALL = "3f1b2c4d-0000-4000-8000-00000000abcd"
KEY = b"k" * 32


class FakeVobiz:
    """Makes streams; ``lose_answer`` makes one and then times out, as a slow Vobiz does."""

    def __init__(self, lose_answer: int = 0) -> None:
        self.streams: list[dict[str, Any]] = []
        self.lose_answer = lose_answer

    def start_stream(self, call_uuid: str, body: dict[str, Any]) -> dict[str, Any]:
        made = {"stream_id": f"VS{len(self.streams) + 1:04d}", **body}
        self.streams.append(made)
        if self.lose_answer:
            self.lose_answer -= 1
            raise UpstreamError("Vobiz did not answer in time")
        return {"stream_id": made["stream_id"]}

    def list_streams(self, call_uuid: str, page_size: int = 20) -> list[dict[str, Any]]:
        return list(self.streams)


class FakeOnce:
    def __init__(self) -> None:
        self.kept: dict[str, str] = {}

    def remember(self, key: str, value: str, ttl_s: int) -> None:
        self.kept[key] = value

    def recall(self, key: str) -> str | None:
        return self.kept.get(key)


class FakeRegistry:
    def __init__(self) -> None:
        self.created: list[tuple[str, str, dict[str, Any]]] = []

    def create_requested(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        self.created.append((stream_id, call_uuid, fields))


class FakeBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.published.append((detail_type, detail))


class FakeStarts:
    """The Once port: runs once per (key, call uuid); another body under a key conflicts."""

    def __init__(self) -> None:
        self.results: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}

    def run(self, fn: Any, payload: dict[str, Any], lambda_context: Any = None) -> dict[str, Any]:
        key = (payload["key"], payload["call_uuid"])
        if key in self.results:
            request, result = self.results[key]
            if request != payload["request"]:
                raise ConflictError("Idempotency-Key was already used with a different body")
            return result
        result = fn(payload)
        self.results[key] = (payload["request"], result)
        return result


def services(vobiz: FakeVobiz) -> ControlServices:
    config = ApiSettings(
        registry_table="r",
        nonce_table="n",
        idempotency_table="i",
        event_bus="b",
        ws_base_url="wss://streams.example.com",
    )
    return ControlServices(
        registry=FakeRegistry(),  # type: ignore[arg-type]
        once=FakeOnce(),  # type: ignore[arg-type]
        events=FakeBus(),
        config=config,
        tasks=None,  # type: ignore[arg-type]
        vobiz_factory=lambda: vobiz,  # type: ignore[arg-type,return-value]
        credentials=lambda: VobizCredentials("MA_TEST", "t" * 20),
        token_key_source=lambda: KEY,
        starts=FakeStarts(),
    )


def test_a_start_asks_vobiz_registers_the_stream_and_publishes_it_without_its_url() -> None:
    vobiz = FakeVobiz()
    svc = services(vobiz)
    request = StartStreamRequest(content_type="audio/x-l16;rate=16000")

    view = operations.start_stream(svc, CALL, request, "https://api.example.com")

    [sent] = vobiz.streams
    assert sent["status_callback_url"] == "https://api.example.com/vobiz/stream-status"
    token = sent["service_url"].rsplit("/", 1)[-1]
    assert sent["service_url"].startswith("wss://streams.example.com/v1/audio/")
    assert verify_token(token, KEY, time.time()).call_uuid == CALL  # a token for this call only
    [(stream_id, call, fields)] = svc.registry.created  # type: ignore[attr-defined]
    assert (stream_id, call, fields["codec"], fields["sample_rate"]) == (
        "VS0001",
        CALL,
        "l16",
        16000,
    )
    [(kind, detail)] = svc.events.published  # type: ignore[attr-defined]
    assert kind == "Stream Requested" and "service_url" not in detail
    assert view["stream_id"] == "VS0001" and view["service_url"] == sent["service_url"]


def test_talk_back_on_another_track_is_refused_before_vobiz_is_asked() -> None:
    vobiz = FakeVobiz()
    request = StartStreamRequest(bidirectional=True, audio_track="both")
    with pytest.raises(UnprocessableError, match="inbound"):
        operations.start_stream(services(vobiz), CALL, request, "https://api.example.com")
    assert vobiz.streams == []


def test_a_retry_after_vobiz_timed_out_adopts_the_stream_it_made() -> None:
    vobiz = FakeVobiz(lose_answer=1)
    svc = services(vobiz)
    request = StartStreamRequest()
    with pytest.raises(UpstreamError):
        operations.start_stream(svc, CALL, request, "https://api.example.com", "start#k1#c")
    view = operations.start_stream(svc, CALL, request, "https://api.example.com", "start#k1#c")
    assert len(vobiz.streams) == 1 and view["stream_id"] == "VS0001"


def test_an_idempotency_key_returns_the_same_stream_and_refuses_another_body() -> None:
    vobiz = FakeVobiz()
    svc = services(vobiz)
    base = "https://api.example.com"
    first = operations.start_stream_once(svc, CALL, StartStreamRequest(), "key-1", base)
    again = operations.start_stream_once(svc, CALL, StartStreamRequest(), "key-1", base)
    assert again == first and len(vobiz.streams) == 1
    with pytest.raises(ConflictError):
        operations.start_stream_once(svc, CALL, StartStreamRequest(agent="echo"), "key-1", base)
    with pytest.raises(Exception, match="1-128 printable"):
        operations.start_stream_once(svc, CALL, StartStreamRequest(), "k\n", base)
