"""The server's routing with fakes: what each upgrade request gets before any socket exists, and
how an admitted connection becomes a session (a reconnect continues the call stream).

Tokens are signed and verified by the real token code; the registry, leases, protection and
Kinesis are fakes. Nothing listens: ``_route`` and ``_open`` are what picows would call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from picows import WSUpgradeResponseWithListener

from callstream.control.tokens import TokenClaims, sign_token, verify_token
from callstream.ports import Lease
from callstream.settings import ServerSettings
from callstream.vocabulary import AudioLimits
from stream_server.server import ServerServices, StreamServer
from stream_server.session import Session
from stream_server.transport import AudioListener

KEY = b"k" * 32


@dataclass
class Request:
    path: bytes


class FakeLeases:
    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.acquired: list[str] = []

    def acquire(self, token_id: str, holder: str, hold_s: float) -> Lease | None:
        self.acquired.append(token_id)
        return self.lease

    def renew(self, token_id: str, holder: str, hold_s: float) -> bool:
        return True

    def release(self, token_id: str, holder: str, **fields: Any) -> None:
        pass


class FakeRegistry:
    def mark_started(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        pass

    def mark_ended(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        pass

    def annotate(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        pass


class FakeProtection:
    async def set(self, protected: bool) -> None:
        pass


class Socket:
    """What the session and the lease driver see of a socket."""

    def __init__(self) -> None:
        self.closed: list[tuple[int, str]] = []

    def send(self, text: bytes) -> None:
        pass

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed.append((code, reason))

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def kernel_view(self) -> None:
        return None


def server(lease: Lease | None = None) -> StreamServer:
    def refuse_control(stream_id: str, header: str) -> None:
        raise AssertionError("no control call here")

    services = ServerServices(
        put_records=lambda **kwargs: {"FailedRecordCount": 0, "Records": []},
        registry=FakeRegistry(),
        leases=FakeLeases(lease or Lease(generation=1)),
        verify_token=lambda token, now: verify_token(token, KEY, now),
        authorize_control=refuse_control,
        protection=FakeProtection(),
    )
    settings = ServerSettings(
        audio_stream="a", utterance_stream="u", registry_table="r", nonce_table="n"
    )
    return StreamServer(settings, services, limits=AudioLimits())


def token(**claims: Any) -> str:
    fields: dict[str, Any] = {"jti": "j" * 32, "call_uuid": "call-1", "exp": time.time() + 60}
    fields |= claims
    fields["exp"] = int(fields["exp"])
    return sign_token(TokenClaims(**fields), KEY)


def status(answer: object) -> tuple[int, bytes]:
    assert isinstance(answer, WSUpgradeResponseWithListener) and answer.listener is None
    return int(answer.response.status), bytes(answer.response.body or b"")


def test_health_is_ok_while_accepting_and_503_while_draining_whatever_the_query() -> None:
    made = server()
    assert status(made._route(Request(b"/healthz?probe=alb"))) == (HTTPStatus.OK, b"ok\n")
    made.draining = True
    assert status(made._route(Request(b"/healthz")))[0] == HTTPStatus.SERVICE_UNAVAILABLE


def test_a_draining_task_takes_no_new_call_even_with_a_good_token() -> None:
    made = server()
    made.draining = True
    code, _ = status(made._route(Request(f"/v1/audio/{token()}".encode())))
    assert code == HTTPStatus.SERVICE_UNAVAILABLE


def test_paths_that_are_not_ours_are_404_before_any_token_is_read() -> None:
    made = server()
    for path in [b"/", b"/v1/audio/", b"/v1/audio/a/b", b"/v1/audio/" + b"a" * 1025, b"/v2/x"]:
        assert status(made._route(Request(path)))[0] == HTTPStatus.NOT_FOUND, path
    assert made.counters.auth_failures == 0


def test_a_forged_or_expired_token_is_403_with_the_reason_counted_and_never_echoed() -> None:
    made = server()
    good = token()
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    expired = token(exp=time.time() - 1)
    answers = [status(made._route(Request(f"/v1/audio/{t}".encode()))) for t in (forged, expired)]
    assert [code for code, _ in answers] == [HTTPStatus.FORBIDDEN] * 2
    assert b"bad signature" in answers[0][1] and b"expired" in answers[1][1]
    assert all(forged.encode() not in body for _, body in answers)
    assert made.counters.auth_failures == 2


def test_a_good_token_gets_a_listener_and_no_session_until_its_lease_is_granted() -> None:
    made = server()
    answer = made._route(Request(f"/v1/audio/{token()}?x=1".encode()))
    assert isinstance(answer, AudioListener)
    assert made.sessions == {} and made.counters.auth_failures == 0


def test_an_admitted_reconnect_continues_the_call_stream_where_the_lease_left_it() -> None:
    released_at = time.time() - 2.0
    lease = Lease(
        generation=3,
        stream_id="stream-1",
        vobiz_stream_id="vobiz-2",
        position_ms=61_000.0,
        media_clock_ms=1_000_000.0,
        released_at=released_at,
        frames=3000,
        utterances=4,
    )

    async def run() -> None:
        made = server(lease)
        claims = verify_token(token(), KEY, time.time())
        socket = Socket()
        conn, future = made.leasing.claim(claims.jti, "task#1", socket)
        async with asyncio.timeout(5):
            granted = await future
        assert granted == lease
        opened = made._open(socket, claims, granted, "task#1", conn)  # type: ignore[arg-type]
        assert isinstance(opened, Session) and made.sessions == {id(opened): opened}
        cont = opened.assembler._continuation
        assert cont is not None
        assert (cont.stream_id, cont.generation, cont.previous_stream_id) == (
            "stream-1",
            3,
            "vobiz-2",
        )
        assert cont.position_ms == 61_000.0 and cont.media_clock_ms == 1_000_000.0
        assert 2000 <= cont.outage_ms < 10_000, "by our clock since the release: the fallback"
        assert opened.assembler.stream_totals.frames == 3000
        assert made.counters.sessions == 1
        opened.disconnected()
        async with asyncio.timeout(5):
            await opened.wait_ended()
        await asyncio.sleep(0)
        assert made.sessions == {}, "an ended session leaves the server"
        made.leasing.close()

    asyncio.run(run())


def test_a_first_connection_has_no_continuation() -> None:
    async def run() -> None:
        made = server()
        claims = verify_token(token(stream_id="s-9"), KEY, time.time())
        socket = Socket()
        conn, future = made.leasing.claim(claims.jti, "task#1", socket)
        async with asyncio.timeout(5):
            granted = await future
        assert granted is not None
        opened = made._open(socket, claims, granted, "task#1", conn)  # type: ignore[arg-type]
        assert opened.assembler._continuation is None and opened.assembler.stream_id == "s-9"
        opened.disconnected()
        async with asyncio.timeout(5):
            await opened.wait_ended()
        made.leasing.close()

    asyncio.run(run())
