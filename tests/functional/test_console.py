"""The live console: its feed and API through the real handlers (moto), and the page in Chromium.

The browser test drives Debian's Chromium against the embedded stack with a simulated call
(``local.console_session``); on a machine without it, it is skipped with the reason (``.ci/run``
installs it, so CI always runs it). It writes the README's screenshot, ``docs/console.png``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import pytest
from moto import mock_aws

from callstream import wiring
from local.aws import REGION, table_request
from local.console_session import browser_missing, watch_a_call
from local.gateway import api_event
from local.lambdas import invoke
from local.template import Route
from tests.conftest import TABLES

ROOT = Path(__file__).resolve().parents[2]
CALL = "c-0001"
STREAM = "s-0001"


@pytest.fixture
def console(aws_env, monkeypatch):
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for name, logical in (("Console", "ConsoleTable"), ("Transcripts", "TranscriptsTable")):
            dynamodb.create_table(**table_request(name, TABLES[logical]))
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="recordings")
        for name, value in {
            "CONSOLE_TABLE": "Console",
            "REGISTRY_TABLE": "Registry",
            "TRANSCRIPTS_TABLE": "Transcripts",
            "RECORDINGS_BUCKET": "recordings",
        }.items():
            monkeypatch.setenv(f"CALLSTREAM_{name}", value)
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "callstream")
        wiring.reset()
        yield
        wiring.reset()


def bus(detail_type: str, **detail: object) -> dict:
    """An EventBridge event as Lambda receives it from a rule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "callstream",
        "account": "000000000000",
        "time": "2026-11-25T12:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {"call_uuid": CALL, "stream_id": STREAM, "published_at": 1, **detail},
    }


def get(path: str, route: str | None = None, **params: str) -> tuple[int, dict | str, dict]:
    """GET a console route through the console function, as API Gateway invokes it."""
    template = route or path
    query = urlencode(params)
    event = api_event(
        "GET",
        path + (f"?{query}" if query else ""),
        {"Authorization": "Bearer x"},
        b"",
        Route("GET", template, "console_api", True),
        {},
        "127.0.0.1",
    )
    answer = invoke("console_api", event)
    body = answer["body"]
    kind = answer["headers"]["Content-Type"]
    return answer["statusCode"], json.loads(body) if "json" in kind else body, answer["headers"]


def test_the_feed_keeps_each_calls_timeline_and_card(console):
    invoke("console_feed", bus("Stream Requested", codec="mulaw", sample_rate=8000, agent="echo"))
    invoke(
        "console_feed",
        bus("Session Event", name="start", seq=0, data={"codec": "mulaw", "tracks": ["inbound"]}),
    )
    said = bus("Utterance Transcribed", utterance="inbound#000000001", text="hello", role="caller")
    invoke("console_feed", said)
    invoke("console_feed", said)  # EventBridge is at least once: a redelivery
    invoke(
        "console_feed",
        bus("Sentiment Scored", utterance="inbound#000000001", role="caller", sentiment="NEGATIVE"),
    )
    invoke("console_feed", bus("Call Ended", stream_id=None, hangup_cause="NORMAL_CLEARING"))
    invoke("console_feed", {**bus("Stream Requested"), "detail": {"call_uuid": "c-other"}})

    status, answer, _ = get("/console/api/calls")
    assert status == 200
    (card,) = [c for c in answer["calls"] if c["call_uuid"] == CALL]
    assert card["state"] == "ended" and card["codec"] == "mulaw" and card["agent"] == "echo"
    assert card["caller_sentiment"] == "NEGATIVE" and card["stream_id"] == STREAM
    assert [c["call_uuid"] for c in get("/console/api/calls", state="ended")[1]["calls"]] == [CALL]
    assert [c["call_uuid"] for c in get("/console/api/calls", q="OTHER")[1]["calls"]] == ["c-other"]

    route = "/console/api/calls/{call_uuid}/events"
    status, timeline, _ = get(f"/console/api/calls/{CALL}/events", route)
    kinds = [e["type"] for e in timeline["events"]]
    assert kinds == [
        "Stream Requested",
        "Session Event",
        "Utterance Transcribed",
        "Utterance Transcribed",  # kept twice: the page shows it once (it keys on the utterance)
        "Sentiment Scored",
        "Call Ended",
    ]
    assert timeline["events"][2]["detail"]["text"] == "hello"
    cursors = [e["cursor"] for e in timeline["events"]]
    assert cursors == sorted(cursors) and timeline["cursor"] == cursors[-1]
    later = get(f"/console/api/calls/{CALL}/events", route, after=cursors[3])[1]
    assert [e["type"] for e in later["events"]] == ["Sentiment Scored", "Call Ended"]
    assert get(f"/console/api/calls/{CALL}/events", route, after=timeline["cursor"])[1] == {
        "call_uuid": CALL,
        "events": [],
        "cursor": timeline["cursor"],
        "more": False,
    }


def test_a_bad_id_or_asset_is_refused_precisely(console):
    status, answer, _ = get(
        "/console/api/calls/a%20b/events", "/console/api/calls/{call_uuid}/events"
    )
    assert status == 400 and "call_uuid" in answer["message"]
    for name in ("..%2Fapp.py", "app.py", "index.html"):
        status, answer, _ = get(f"/console/assets/{name}", "/console/assets/{name}")
        assert status == 404, name
    status, page, headers = get("/console")
    assert status == 200 and "<title>callstream console</title>" in page
    assert headers["Content-Type"].startswith("text/html")
    status, script, headers = get("/console/assets/console.js", "/console/assets/{name}")
    assert "/console/api/calls" in script
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert get("/console/config")[1]["auth"] == "bearer"


def test_after_the_call_a_short_lived_recording_url_the_summary_and_the_transcript(console):
    route = "/console/api/calls/{call_uuid}/streams/{stream_id}/recording"
    path = f"/console/api/calls/{CALL}/streams/{STREAM}/recording"
    assert get(path, route)[1] == {
        "stream_id": STREAM,
        "url": None,
        "expires_s": 300,
        "summary": None,
    }, "nothing before the recording exists"
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket="recordings", Key=f"recordings/{CALL}/{STREAM}.wav", Body=b"RIFF")
    s3.put_object(Bucket="recordings", Key=f"recordings/{CALL}/{STREAM}.json", Body=b"{}")
    s3.put_object(
        Bucket="recordings",
        Key=f"recordings/{CALL}/{STREAM}.summary.json",
        Body=b'{"utterances": []}',
    )
    found = get(path, route)[1]
    url = urlsplit(found["url"])
    assert url.path.endswith(f"/recordings/{CALL}/{STREAM}.wav")
    assert parse_qs(url.query)["X-Amz-Expires"] == ["300"]
    assert found["summary"] == {"utterances": []}

    table = boto3.client("dynamodb", region_name=REGION)
    for utterance, start, track, text in (
        ("outbound#000000000", 0, "outbound", "how can i help"),
        ("inbound#000000000", 2500, "inbound", "my line is down"),
    ):
        table.put_item(
            TableName="Transcripts",
            Item={
                "stream_id": {"S": STREAM},
                "utterance": {"S": utterance},
                "call_uuid": {"S": CALL},
                "track": {"S": track},
                "start_ms": {"N": str(start)},
                "text": {"S": text},
            },
        )
    route = "/console/api/calls/{call_uuid}/streams/{stream_id}/transcript"
    status, text, headers = get(f"/console/api/calls/{CALL}/streams/{STREAM}/transcript", route)
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    assert text.splitlines() == [
        "00:00.0  agent: how can i help",
        "00:02.5  caller: my line is down",
    ]
    # a stream id is no key to another call's words
    status, answer, _ = get(f"/console/api/calls/c-other/streams/{STREAM}/transcript", route)
    assert status == 404 and STREAM in answer["message"] and "c-other" in answer["message"]


def test_the_page_its_assets_and_its_api_refuse_to_be_framed_or_run_foreign_script(console):
    """A Content-Security-Policy with no inline script and no framing (sign-in, Play and End
    stream are not to be clicked through another origin's frame), on everything it serves.
    The browser tests run the page under it."""
    invoke("console_feed", bus("Stream Requested", codec="mulaw"))  # a call the console knows
    CSP = get("/console")[2]["Content-Security-Policy"]  # noqa: N806
    policy = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
    assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'" and "unsafe" not in CSP
    for path, route in (
        ("/console", None),
        ("/console/assets/console.js", "/console/assets/{name}"),
        ("/console/assets/console.css", "/console/assets/{name}"),
        ("/console/config", None),
        ("/console/api/calls", None),
        (f"/console/api/calls/{CALL}/events", "/console/api/calls/{call_uuid}/events"),
    ):
        status, _, headers = get(path, route)
        assert status == 200, path
        assert headers["Content-Security-Policy"] == CSP, path
        assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff", path


@pytest.mark.slow
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_a_live_call_in_the_console(tmp_path):
    seen = watch_a_call(speed=1.0, screenshot=ROOT / "docs" / "console.png", live="local")
    assert seen.growing and seen.grew_during_call, "a line grew on the page as the caller spoke"
    assert seen.lines_during_call >= 1, "transcript lines arrived while the call ran"
    assert seen.sentiments and set(seen.sentiments) <= {"POSITIVE", "NEGATIVE", "NEUTRAL", "MIXED"}
    assert seen.alerts >= 1, "the caller turned negative"
    assert seen.checkpoint.endswith("played"), seen.checkpoint
    assert seen.played_bytes > 0, "the WAV picked in the page reached the simulated caller"
    assert seen.played_said == "played 6000 ms", "6 s, answered at once and followed to played"
    assert seen.recording_duration_s > 30, "the recording plays in the page (a 40 s call)"
    start, position = seen.seeked
    assert start > 5 and abs(position - start) < 1.0, "a clicked line plays from its moment"
    assert seen.summary["call_uuid"] == seen.call_uuid
    assert seen.summary["Duration"].startswith("00:4") and "caller" in seen.summary["Talk time"]
    assert "negative" in seen.summary["Caller's lines"], "a readable summary, not its JSON"
    assert seen.freshness_ms, "events arrived while the page was open"
    assert seen.screenshot is not None and seen.screenshot.stat().st_size > 10_000


@pytest.mark.slow
def open_call_page(browser, stack, call: str) -> None:
    """Open the console on ``call``'s page once the page lists it.

    Its row first: the page has then read its token and listed the calls (a hash set before
    that is replaced by the page's own #/calls).
    """
    from selenium.webdriver.common.by import By

    from local.console_session import wait

    browser.get(stack.endpoints()["console"])
    row = f'tr[data-call="{call}"]'
    wait("the call in the list", lambda: browser.find_elements(By.CSS_SELECTOR, row))
    browser.execute_script(f"location.hash = '#/call/{call}'")
    wait("the call's page", lambda: browser.find_element(By.ID, "call").is_displayed())


@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_the_page_grows_a_live_line_and_settles_it_whatever_order_the_bus_brings():
    """The page reads what the bus brings, in the order EventBridge happens to deliver it.

    A line grows with its partials; its provisional final and its final replace it, and a
    final replaces the other line it settles. Late news (an older partial, a provisional after
    its final) never turns a settled line back; a line no utterance kept is withdrawn.
    """

    from callstream.adapters.eventbridge import EventBridgeBus
    from local.console_session import chromium, wait
    from local.stack import Stack

    call = f"c-{uuid.uuid4().hex[:8]}"
    base = {"call_uuid": call, "stream_id": STREAM, "track": "inbound", "role": "caller"}

    def line(result_id: str, text: str, end_ms: float, **more: object) -> dict:
        return base | {"result_id": result_id, "text": text, "start_ms": 0, "end_ms": end_ms}

    first = {"utterance": "inbound#000000000", "index": 0, "settles": ["B"]}
    with Stack() as stack:
        events = EventBridgeBus(stack.aws.client("events"), stack.aws.names["EventBus"])
        events.publish("Stream Requested", base | {"codec": "mulaw"})
        browser = chromium()
        try:
            open_call_page(browser, stack, call)

            def shown() -> list[tuple[str, str]]:  # read at once: the page replaces lines
                found = browser.execute_script(
                    "return [...document.querySelectorAll('#timeline li.utterance')]"
                    ".map(li => [li.dataset.kind, li.querySelector('.text').textContent])"
                )
                return [(kind, text) for kind, text in found]

            events.publish("Transcript Partial", line("A", "good morning", 200) | {"done": False})
            events.publish("Transcript Partial", line("A", "good", 100) | {"done": False})  # older
            events.publish("Transcript Partial", line("C", "uh", 900) | {"done": False})
            wait(
                "the line grown to its newest words",
                lambda: shown() == [("partial", "good morning"), ("partial", "uh")],
                shown=lambda: str(shown()),
            )
            events.publish("Transcript Partial", line("B", "how are", 300) | {"done": False})
            final = line("A", "good morning how are you", 300) | first
            events.publish("Utterance Transcribed", final | {"kind": "final"})
            late = line("A", "good morning how", 300) | first | {"kind": "provisional"}
            events.publish("Utterance Transcribed", late)
            events.publish("Transcript Partial", line("A", "good", 150) | {"done": False})
            events.publish("Transcript Partial", line("B", "how are yo", 350) | {"done": False})
            events.publish("Transcript Partial", line("C", "", 900) | {"done": True})  # withdrawn
            events.publish(  # the per-utterance path's final: no live line
                "Utterance Transcribed",
                base | {"utterance": "inbound#000000001", "text": "bye", "start_ms": 5000},
            )
            settled = [("final", "good morning how are you"), ("final", "bye")]
            wait("every line settled", lambda: shown() == settled, shown=lambda: str(shown()))
            wait(
                "the page to have read every event",
                lambda: browser.execute_script("return window.__callstream.rendered") >= 11,
            )
            assert shown() == settled, "late news changed nothing"
        finally:
            browser.quit()


@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_the_page_reads_a_burst_of_events_to_its_end_each_once():
    """1,100 DTMF events land at once on a call open in the page (past a page of 1,000; the
    page of 500 re-read from "cursor less 2 s" froze at 500): the page shows every one once."""

    from callstream.adapters.dynamodb import DynamoConsoleStore
    from callstream.console import feed
    from local.console_session import chromium, wait
    from local.stack import Stack

    call = f"c-{uuid.uuid4().hex[:8]}"
    burst = 1_100
    with Stack() as stack:
        store = DynamoConsoleStore(stack.aws.client("dynamodb"), stack.aws.names["ConsoleTable"])
        services = feed.FeedServices(store=store)
        started = {"call_uuid": call, "stream_id": STREAM, "codec": "mulaw"}
        feed.record(
            services, {"id": "e-start", "detail-type": "Stream Requested", "detail": started}
        )
        browser = chromium()
        try:
            open_call_page(browser, stack, call)
            wait(
                "its first event",
                lambda: browser.execute_script("return window.__callstream.rendered") >= 1,
            )
            for i in range(burst):  # the feed's own code, into the stack's table, at once
                detail = {"call_uuid": call, "stream_id": STREAM, "name": "dtmf", "seq": i + 1}
                detail["data"] = {"digit": str(i % 10)}
                feed.record(
                    services, {"id": f"e-{i}", "detail-type": "Session Event", "detail": detail}
                )

            def shown() -> int:
                return browser.execute_script(
                    "return [...document.querySelectorAll('#timeline li')]"
                    ".filter(li => li.textContent.includes('DTMF')).length"
                )

            wait(
                "every digit on the page",
                lambda: shown() >= burst,
                timeout=120,
                shown=lambda: str(shown()),
            )
            assert shown() == burst, "each once"
            assert browser.execute_script("return window.__callstream.rendered") == burst + 1
        finally:
            browser.quit()


# -- a burst, and answers bounded in bytes ----------------------------------------------------


def read_to_the_end(read: object) -> tuple[list[str], int]:
    """Poll as the page does (after the cursor it was given, reading on while ``more``); return
    the event ids in the order first shown, and the largest answer body in bytes."""
    cursor, shown, seen, largest = "", [], set(), 0
    for _ in range(10_000):
        status, answer, body = read(cursor)  # type: ignore[operator]
        assert status == 200
        largest = max(largest, body)
        for event in answer["events"]:
            if event["id"] not in seen:
                seen.add(event["id"])
                shown.append(event["id"])
        moved, cursor = answer["cursor"] != cursor, answer["cursor"]
        if not answer["more"] and not moved:
            return shown, largest
    raise AssertionError("the timeline never reached its end")


def api_reader(call: str):
    """The page's read of a call's timeline, through the console function."""
    path = f"/console/api/calls/{call}/events"
    route = Route("GET", "/console/api/calls/{call_uuid}/events", "console_api", True)

    def read(after: str) -> tuple[int, dict, int]:
        query = urlencode({"after": after})
        event = api_event(
            "GET", f"{path}?{query}", {"Authorization": "Bearer x"}, b"", route, {}, "127.0.0.1"
        )
        answer = invoke("console_api", event)
        return answer["statusCode"], json.loads(answer["body"]), len(answer["body"])

    return read


def test_a_burst_past_a_page_is_read_to_its_end_each_event_once_through_the_real_handlers(console):
    """1,200 DTMF events at once (the old page of 500 from "cursor less 2 s" froze at 500)."""
    sent = []
    for i in range(1_200):
        event = bus("Dtmf", digit=str(i % 10))
        sent.append(event["id"])
        invoke("console_feed", event)
    shown, _ = read_to_the_end(api_reader(CALL))
    assert shown == sent, "every event once, in the order written"


def test_an_answer_stays_far_under_lambdas_6_mb_response_whatever_the_events_carry(console):
    """70 events of 40 KB each (a long playedStream name, say): 2.8 MB in all, read in answers
    of at most about 1 MB."""
    from callstream.console.views import PAGE_BYTES

    sent = []
    for i in range(70):
        event = bus("Session Event", name="playedStream", seq=i, data={"name": "x" * 40_000})
        sent.append(event["id"])
        invoke("console_feed", event)
    shown, largest = read_to_the_end(api_reader(CALL))
    assert shown == sent
    assert largest <= PAGE_BYTES + 64_000 < 6 * 1024 * 1024


def test_1050_calls_are_listed_newest_first_page_by_page_and_searched_on_the_server(console):
    """The list read 1,000 cards in id order and then sorted: past 1,000 calls the newest ones
    (here the largest ids) and the live ones went missing. It reads an index by start time
    now, 100 a page, and searches on the server."""
    from callstream.adapters.dynamodb import DynamoConsoleStore
    from callstream.console import feed

    store = DynamoConsoleStore(boto3.client("dynamodb", region_name=REGION), "Console")
    services = feed.FeedServices(store=store)
    started = 1_790_000_000.0
    calls = [f"c-{i:04d}-{uuid.uuid4().hex[:6]}" for i in range(1_050)]  # by id: oldest first
    for i, call in enumerate(calls):
        requested = {"id": f"e-{i}", "detail-type": "Stream Requested"}
        feed.record(services, requested | {"detail": {"call_uuid": call}}, now=started + i)
    newest_first = calls[::-1]
    live = newest_first[:3]
    for call in live:
        detail = {"call_uuid": call, "name": "start", "data": {"codec": "mulaw"}}
        event = {"id": f"s-{call}", "detail-type": "Session Event", "detail": detail}
        feed.record(services, event, now=started + 2_000)

    status, first, _ = get("/console/api/calls")
    assert status == 200 and len(first["calls"]) == 100
    assert [c["call_uuid"] for c in first["calls"][:3]] == live
    assert all(c["state"] == "live" for c in first["calls"][:3])
    listed, token = [c["call_uuid"] for c in first["calls"]], first["next"]
    while token:
        page = get("/console/api/calls", before=token)[1]
        listed += [c["call_uuid"] for c in page["calls"]]
        token = page["next"]
    assert listed == newest_first, "every call once, newest first"
    assert [c["call_uuid"] for c in get("/console/api/calls", state="live")[1]["calls"]] == live
    oldest = calls[0]
    found = get("/console/api/calls", q=oldest.upper())[1]["calls"]
    assert [c["call_uuid"] for c in found] == [oldest], "found on the server, past every page"
    status, answer, _ = get("/console/api/calls", before="not a token")
    assert status == 400 and "before" in json.dumps(answer)


def test_calls_are_found_by_words_said_number_day_state_and_the_callers_sentiment(console):
    """Transcript search across calls, filters by date, state and the caller's overall
    sentiment, through the real feed and the console function (moto's DynamoDB)."""
    day = 1_796_601_600.0  # 2026-12-07T00:00:00Z

    def say(call: str, at: float, text: str, positive: float, negative: float) -> None:
        line = {"call_uuid": call, "utterance": f"inbound#{at}", "role": "caller", "text": text}
        scores = {"Positive": positive, "Negative": negative}
        for kind, detail in (
            ("Utterance Transcribed", line | {"kind": "final"}),
            ("Sentiment Scored", line | {"sentiment": "X", "scores": scores}),
        ):
            feed_event(kind, detail, at)

    def feed_event(kind: str, detail: dict, at: float) -> None:
        from callstream.console import feed

        feed.record(
            feed_services(),
            {"id": str(uuid.uuid4()), "detail-type": kind, "detail": detail},
            now=at,
        )

    answered = {"from": "+919876543210", "to": "+918000000001", "direction": "inbound"}
    feed_event("Call Answered", {"call_uuid": "c-refund"} | answered, day + 3_600)
    say("c-refund", day + 3_601, "I want a refund for my hotel booking", 0.0, 0.9)
    say("c-refund", day + 3_602, "this is not acceptable", 0.0, 0.8)
    feed_event("Call Ended", {"call_uuid": "c-refund", "hangup_cause": "x"}, day + 3_700)
    say("c-happy", day + 86_400 + 60, "thanks the booking went through", 0.9, 0.0)
    say("c-quiet", day - 60, "hello", 0.1, 0.1)  # the day before
    feed_event(
        "Utterance Transcribed",
        {"call_uuid": "c-quiet", "text": "refund", "kind": "provisional"},
        day,
    )

    def found(**params: str) -> list[str]:
        status, answer, _ = get("/console/api/calls", **params)
        assert status == 200, answer
        return [c["call_uuid"] for c in answer["calls"]]

    assert found(q="refund") == ["c-refund"], "a provisional line is not searched"
    assert found(q="Hotel BOOK") == ["c-refund"]
    assert found(q="booking") == ["c-happy", "c-refund"]
    assert found(q="+91 98765 43210") == found(q="98765") == ["c-refund"]
    assert found(q="c-qu") == ["c-quiet"]
    assert found(q="booking refund cancel") == []
    assert found(sentiment="negative") == ["c-refund"]
    assert found(sentiment="positive") == ["c-happy"]
    assert found(sentiment="neutral") == ["c-quiet"]
    assert found(since="2026-12-07", until="2026-12-07") == ["c-refund"]
    assert found(since="2026-12-07") == ["c-happy", "c-refund"]
    assert found(until="2026-12-06T23:59:59Z") == ["c-quiet"]
    assert found(q="booking", state="ended") == ["c-refund"]
    assert found(q="booking", state="live") == []
    listed = get("/console/api/calls", q="refund")[1]["calls"][0]
    assert listed["caller_overall"] == "negative" and listed["from_number"] == answered["from"]
    assert not {"words", "caller_score", "caller_lines", "search_key"} & set(listed)

    for params, named in (
        ({"sentiment": "furious"}, "sentiment"),
        ({"since": "last tuesday"}, "since"),
        ({"since": "2026-12-08", "until": "2026-12-07"}, "until"),
        ({"state": "gone"}, "state"),
        ({"since": "2026-12-08", "before": "2026-12-07T01:00:00.000Z|c-refund"}, "before"),
    ):
        status, answer, _ = get("/console/api/calls", **params)
        assert status == 400 and named in json.dumps(answer), (params, answer)


def test_a_search_through_2500_calls_goes_on_page_by_page_and_a_card_holds_a_bounded_vocabulary(
    console,
):
    """A search looks through 2,000 calls a request: the only match, in the oldest call, is
    reached by following ``next``, never lost and never over the budget. A call that says
    4,480 different words keeps the first 4,000 or so on its card, and its card still
    takes every other update (DynamoDB refuses an item over 400 KB: the whole card would)."""
    from callstream.clock import iso
    from callstream.console import feed, search

    services = feed_services()
    started = 1_796_601_600.0
    calls = [f"c-{i:04d}" for i in range(2_500)]
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for start in range(0, len(calls), 25):  # the cards as the feed leaves them, 25 a write
        puts = [
            {"PutRequest": {"Item": {
                "pk": {"S": "calls"}, "sk": {"S": call}, "shelf": {"S": "calls"},
                "first_seen": {"S": iso(started + start + i)}, "state": {"S": "requested"},
            }}}
            for i, call in enumerate(calls[start : start + 25])
        ]  # fmt: skip
        dynamodb.batch_write_item(RequestItems={"Console": puts})
    line = {"call_uuid": calls[0], "text": "my parcel never arrived", "kind": "final"}
    feed.record(
        services, {"id": "w", "detail-type": "Utterance Transcribed", "detail": line}, now=started
    )

    pages, found, token = 0, [], None
    while True:
        params = {"q": "parcel"} | ({"before": token} if token else {})
        answer = get("/console/api/calls", **params)[1]
        pages += 1
        found += [c["call_uuid"] for c in answer["calls"]]
        token = answer["next"]
        if token is None:
            break
    assert found == [calls[0]] and pages == 2, "2,000 calls a request: the second reaches it"

    chatty = calls[-1]  # the newest: on the first page a search reads
    for n in range(70):
        text = " ".join(f"word{n}x{i}" for i in range(search.LINE_WORDS))
        detail = {"call_uuid": chatty, "text": text, "kind": "final"}
        feed.record(
            services, {"id": f"t-{n}", "detail-type": "Utterance Transcribed", "detail": detail}
        )
    feed.record(
        services, {"id": "end", "detail-type": "Call Ended", "detail": {"call_uuid": chatty}}
    )
    card = services.store.card(chatty)
    assert card is not None and card["state"] == "ended"
    assert search.CARD_WORDS <= len(card["words"]) < search.CARD_WORDS + search.LINE_WORDS
    assert found_ids("word0x1") == [chatty] and found_ids("word69x1") == []


def feed_services():
    from callstream.adapters.dynamodb import DynamoConsoleStore
    from callstream.console import feed

    return feed.FeedServices(
        DynamoConsoleStore(boto3.client("dynamodb", region_name=REGION), "Console")
    )


def found_ids(query: str) -> list[str]:
    return [c["call_uuid"] for c in get("/console/api/calls", q=query)[1]["calls"]]


@pytest.mark.slow
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_a_long_play_is_answered_at_once_and_clear_cancels_every_piece_the_page_queued(tmp_path):
    """A 70 s WAV is three plays of up to 30 s, all queued at once; Clear cuts the first and the
    two behind it (the page used to go on sending its pieces and say "played 8000 ms")."""
    from selenium.webdriver.common.by import By

    from local.console_session import chime, chromium, wait
    from local.demo import api, talk_on
    from local.stack import Stack
    from local.vobiz_sim import SimCall

    with Stack() as stack:
        call = SimCall(
            str(uuid.uuid4()), inbound=ROOT / "samples" / "support_call_8000_inbound.wav"
        )
        stream = talk_on(stack, call)["stream_id"]
        browser = chromium()
        try:
            open_call_page(browser, stack, call.call_uuid)
            wait("talk-back", lambda: browser.find_element(By.ID, "play").is_enabled())
            browser.find_element(By.ID, "wav").send_keys(str(chime(tmp_path, 70, rate=16_000)))
            browser.find_element(By.ID, "play").click()

            def said() -> str:
                return str(browser.find_element(By.ID, "talk-result").text)

            wait("the plays to be under way", lambda: "of 70000 ms sent" in said(), shown=said)
            plays = [api(stack, "GET", f"/v1/streams/{stream}/plays/p{n}") for n in (1, 2, 3)]
            assert [(s, p["state"], p["ms"]) for s, p in plays] == [
                (200, "playing", 30000),
                (200, "queued", 30000),
                (200, "queued", 10000),
            ]  # all three answered at once, while the first one plays
            browser.find_element(By.ID, "clear").click()
            result = wait("the play's end", lambda: said().startswith("cleared after") and said())
            heard = len(call.played) / 2 / 8000
        finally:
            browser.quit()
        plays = [api(stack, "GET", f"/v1/streams/{stream}/plays/p{n}")[1] for n in (1, 2, 3)]
    assert [p["state"] for p in plays] == ["cleared"] * 3
    assert 0 < plays[0]["sent_ms"] < 30000 and plays[1]["sent_ms"] == plays[2]["sent_ms"] == 0
    assert result == f"cleared after {round(plays[0]['sent_ms'])} ms"
    assert heard * 1000 <= plays[0]["sent_ms"], "the caller heard no more than was sent"


class FakeCognito:
    """Cognito's InitiateAuth as the page calls it (JSON 1.1 over HTTPS in AWS; CORS, since the
    page is on another origin): a password gives a stale ID token and a refresh token, and the
    refresh token gives the stack's, until it is revoked."""

    def __init__(self, good_token: str) -> None:
        import http.server
        import threading

        self.good, self.revoked, self.flows = good_token, False, []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_OPTIONS(self) -> None:
                self.answer(204, b"")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.headers["X-Amz-Target"].endswith(".InitiateAuth")
                flow, params = body["AuthFlow"], body["AuthParameters"]
                fake.flows.append(flow)
                if flow == "USER_PASSWORD_AUTH" and params == {
                    "USERNAME": "operator",
                    "PASSWORD": "right",
                }:
                    result = {"IdToken": "stale", "RefreshToken": "r-1", "ExpiresIn": 301}
                elif flow == "REFRESH_TOKEN_AUTH" and params["REFRESH_TOKEN"] == "r-1":
                    result = {"IdToken": "stale" if fake.revoked else fake.good, "ExpiresIn": 301}
                    if fake.revoked:
                        result = {}
                else:
                    result = {}
                if result:
                    self.answer(200, json.dumps({"AuthenticationResult": result}).encode())
                else:
                    refused = {"__type": "NotAuthorizedException", "message": "Incorrect password."}
                    self.answer(400, json.dumps(refused).encode())

            def answer(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Headers", "content-type, x-amz-target")
                self.send_header("Access-Control-Allow-Methods", "POST")
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.slow
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_a_cognito_session_renews_its_id_token_before_it_expires_and_after_it_is_refused(
    monkeypatch,
):
    """The ID token lives 60 min and was never renewed: an open page went to sign-in mid-shift
    (and a refused sign-in said nothing)."""
    import os

    from selenium.webdriver.common.by import By

    from local.console_session import chromium, wait
    from local.stack import Stack

    with Stack() as stack:
        cognito = FakeCognito(stack.token)
        os.environ.update(
            CALLSTREAM_CONSOLE_AUTH="cognito",
            CALLSTREAM_CONSOLE_CLIENT_ID="client-1",
            CALLSTREAM_CONSOLE_COGNITO_URL=cognito.url,
        )
        wiring.reset()
        browser = chromium()
        try:
            browser.get(stack.gateway.url + "/console")
            wait("sign-in", lambda: browser.find_element(By.ID, "username").is_displayed())

            def sign_in(password: str) -> None:
                for field, value in (("username", "operator"), ("password", password)):
                    browser.find_element(By.ID, field).clear()
                    browser.find_element(By.ID, field).send_keys(value)
                browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()

            def error() -> str:
                return str(browser.find_element(By.ID, "signin-error").text)

            sign_in("wrong")
            assert wait("a refusal", error) == "Sign-in failed: Incorrect password."
            sign_in("right")  # a stale ID token: refused by the API, renewed, the list read
            wait("the calls list", lambda: browser.find_element(By.ID, "calls").is_displayed())
            assert browser.execute_script("return window.__callstream.refreshed") == 1
            # before it expires (5 min early: here at the 10 s floor), without a refusal
            wait(
                "a renewal on time",
                lambda: browser.execute_script("return window.__callstream.refreshed") == 2,
                timeout=30,
            )
            assert (
                cognito.flows
                == ["USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH"] + ["REFRESH_TOKEN_AUTH"] * 2
            )
            assert browser.find_element(By.ID, "calls").is_displayed()
            cognito.revoked = True  # the session is over: the next refusal asks to sign in
            browser.execute_script("sessionStorage.setItem('callstream.token', 'x')")
            browser.execute_script("location.reload()")
            said = wait("sign-in again", error, timeout=30)
            assert said == "the API refused the token: sign in again"
            assert browser.find_element(By.ID, "username").is_displayed()
        finally:
            browser.quit()


@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_an_operators_call_page_and_list(tmp_path):
    """What an operator met at once: lines out of order (00:19 before 00:18), "cleared audio"
    twice, talk-back enabled on a listen-only or ended call, no caller number or start time,
    the list rebuilt every second (a selection wiped), an unknown call waiting forever."""
    from datetime import datetime, timedelta

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from callstream.adapters.dynamodb import DynamoConsoleStore
    from callstream.console import feed
    from local.console_session import chromium, wait
    from local.stack import Stack

    call = f"c-{uuid.uuid4().hex[:8]}"
    base = {"call_uuid": call, "stream_id": STREAM}

    def said(utterance: str, start_ms: int, text: str) -> dict:
        return base | {
            "utterance": utterance,
            "track": "inbound",
            "role": "caller",
            "start_ms": start_ms,
            "end_ms": start_ms + 900,
            "text": text,
            "kind": "final",
        }

    def scored(utterance: str, label: str, score: float) -> dict:
        scores = {"Positive": max(score, 0), "Negative": max(-score, 0), "Neutral": 0, "Mixed": 0}
        return (
            base
            | {"utterance": utterance, "role": "caller", "track": "inbound"}
            | {
                "sentiment": label,
                "scores": scores,
            }
        )

    with Stack() as stack:
        store = DynamoConsoleStore(stack.aws.client("dynamodb"), stack.aws.names["ConsoleTable"])
        services = feed.FeedServices(store=store)

        def bus(kind: str, detail: dict) -> None:
            feed.record(services, {"id": str(uuid.uuid4()), "detail-type": kind, "detail": detail})

        answered = {"call_uuid": call, "from": "+15550001111", "to": "+15550002222"}
        bus("Call Answered", answered | {"direction": "inbound", "bidirectional": False})
        bus(
            "Stream Requested",
            base
            | {"content_type": "audio/x-mulaw;rate=8000"}
            | {
                "audio_track": "inbound",
                "agent": "none",
                "bidirectional": False,
            },
        )
        bus("Session Event", base | {"seq": 0, "name": "start", "at_ms": 0, "data": {}})
        # the bus brings the later line first
        bus("Utterance Transcribed", said("inbound#000000001", 19_000, "it is still down"))
        bus("Utterance Transcribed", said("inbound#000000000", 18_000, "my internet is down"))
        bus("Sentiment Scored", scored("inbound#000000000", "NEGATIVE", -0.8))
        bus("Sentiment Scored", scored("inbound#000000001", "POSITIVE", 0.6))
        browser = chromium()
        try:
            open_call_page(browser, stack, call)

            def texts(selector: str) -> list[str]:
                return [e.text for e in browser.find_elements(By.CSS_SELECTOR, selector)]

            wait("both lines scored", lambda: len(texts("#timeline li .label")) == 2)
            assert texts("#timeline li.utterance .at") == ["00:18", "00:19"]
            assert texts("#timeline li.utterance .label") == ["negative", "positive"]
            overall = browser.find_element(By.ID, "overall")
            assert overall.get_attribute("data-trend") == "improving", overall.text
            meta = browser.find_element(By.ID, "call-meta").text
            assert "from +15550001111 to +15550002222" in meta and "started " in meta, meta
            assert texts("#chart text.y-axis")[0] == "+1 pos" and texts("#chart text.x-axis")
            play = browser.find_element(By.ID, "play")
            assert not play.is_enabled() and "listen-only" in play.get_attribute("title")

            cleared = base | {"seq": 1, "name": "cleared_audio", "at_ms": 20_000, "data": {}}
            bus("Session Event", cleared)
            bus("Cleared Audio", base | {"event": "ClearedAudio"})  # Vobiz's callback of it
            bus("Session Event", base | {"seq": 2, "name": "close", "at_ms": 21_000, "data": {}})
            wait("the end", lambda: browser.find_element(By.ID, "call-state").text == "ended")
            wait("the clear", lambda: "cleared (barge-in)" in texts("#timeline li .text"))
            assert texts("#timeline li .text").count("cleared (barge-in)") == 1, "shown once"
            ats = [
                int(e.get_attribute("data-at"))
                for e in browser.find_elements(By.CSS_SELECTOR, "#timeline li")
            ]
            assert ats == sorted(ats), "in call time order"
            assert "ended" in browser.find_element(By.ID, "end").get_attribute("title")

            # the list keeps its rows (a selection stays) and shows who called and when
            browser.execute_script("location.hash = '#/calls'")
            row = f'tr[data-call="{call}"]'
            wait("the list", lambda: browser.find_elements(By.CSS_SELECTOR, row))
            browser.execute_script(f"document.querySelector('{row}').dataset.mark = 'kept'")
            cells = texts(f"{row} td")
            assert cells[2:4] == ["+15550001111", "+15550002222"] and cells[0], cells
            mark = browser.execute_script(
                "return new Promise(r => setTimeout(() => r("
                f"document.querySelector('{row}').dataset.mark), 2500))"
            )
            assert mark == "kept", "the row was rebuilt by a poll"
            assert cells[9] == "neutral", "caller overall: the mean of -0.8 and +0.6"

            # search and filters, on the server: another call, happy, about a refund
            other = {"call_uuid": f"{call}-b", "stream_id": "s-b"}
            bus("Stream Requested", other | {"audio_track": "inbound"})
            line = other | {"utterance": "inbound#0", "role": "caller", "track": "inbound"}
            bus("Utterance Transcribed", line | {"text": "thanks for the refund", "kind": "final"})
            bus("Sentiment Scored", line | {"sentiment": "POSITIVE", "scores": {"Positive": 0.9}})

            def listed() -> list[str]:
                return [r.get_attribute("data-call") for r in browser.find_elements(
                    By.CSS_SELECTOR, "#call-table tbody tr")]  # fmt: skip

            wait("both calls", lambda: {call, other["call_uuid"]} <= set(listed()))
            browser.find_element(By.ID, "search").send_keys("Internet")
            wait("the search", lambda: listed() == [call])
            browser.find_element(By.ID, "search").clear()
            Select(browser.find_element(By.ID, "sentiment-filter")).select_by_value("positive")
            wait("the sentiment filter", lambda: listed() == [other["call_uuid"]])
            tomorrow = (datetime.now() + timedelta(days=1)).strftime("%m%d%Y")
            browser.find_element(By.ID, "since").send_keys(tomorrow)  # the date input's typing
            wait("the date filter", lambda: listed() == [])
            assert browser.find_element(By.ID, "no-calls").text == "No calls match."

            browser.execute_script("location.hash = '#/call/c-no-such-call'")
            missing = wait(
                "call not found", lambda: browser.find_element(By.ID, "call-missing").text
            )
            assert missing.startswith("No call c-no-such-call in the console (yet)"), missing
            assert (
                texts("#timeline li") == [] and not browser.find_element(By.ID, "play").is_enabled()
            )
            assert browser.find_element(By.ID, "talk-stream").text == ""
        finally:
            browser.quit()


@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_a_voice_agents_conversation_reads_as_sentences(tmp_path):
    """The voice agent's turns, barge-ins, tools and failures, as the bus brings them, read as
    an operator's sentences in call order; the digest after the call is shown; a reply holding
    markup is shown as the words it is."""
    from selenium.webdriver.common.by import By

    from callstream.adapters.dynamodb import DynamoConsoleStore
    from callstream.console import feed
    from local.console_session import chromium, wait
    from local.stack import Stack

    call = f"c-{uuid.uuid4().hex[:8]}"
    base = {"call_uuid": call, "stream_id": STREAM}
    hostile = '<img src=x onerror="document.title=1">'
    with Stack() as stack:
        store = DynamoConsoleStore(stack.aws.client("dynamodb"), stack.aws.names["ConsoleTable"])
        services = feed.FeedServices(store=store)

        def bus(kind: str, detail: dict) -> None:
            feed.record(services, {"id": str(uuid.uuid4()), "detail-type": kind, "detail": detail})

        def agent(seq: int, at_ms: int, **data: object) -> None:
            bus("Session Event", base | {"seq": seq, "name": "agent", "at_ms": at_ms, "data": data})

        answered = {"call_uuid": call, "from": "+15550001111", "to": "+15550002222"}
        bus("Call Answered", answered | {"direction": "inbound", "bidirectional": True})
        requested = {"content_type": "audio/x-mulaw;rate=8000", "audio_track": "inbound"}
        bus("Stream Requested", base | requested | {"agent": "assistant", "bidirectional": True})
        bus("Session Event", base | {"seq": 0, "name": "start", "at_ms": 0, "data": {}})
        agent(1, 400, action="turn", caller="", reply="Hello, how can I help?")
        agent(2, 4_000, action="turn", caller="i want a room", reply="Sure. Which dates?",
              latency_ms=412, end_of_turn_ms=300)  # fmt: skip
        agent(3, 6_100, action="barge_in", onset_ms=6_000)
        agent(4, 6_200, action="turn", caller="no stop", reply="")
        agent(5, 7_000, action="model_failed", error="model_failed")
        agent(6, 9_000, action="turn", caller="a human please", reply=hostile, latency_ms=500)
        agent(7, 9_500, action="hand_over", transcript="caller: a human please")
        agent(8, 9_900, action="tool", name="end_call")
        agent(9, 4_010, action="play", ms=1_200, source_rate=22_050)  # the sentence's audio
        bus("Session Event", base | {"seq": 10, "name": "played_stream", "at_ms": 5_300,
                                     "data": {"name": "agent-2"}})  # fmt: skip
        digest = {
            "summary": "The caller wanted a room.",
            "intent": "book a room",
            "outcome": "handed over",
            "action_items": ["call back with dates"],
            "source": "extractive",
        }
        bus("Call Completed", base | {"digest": digest})
        browser = chromium()
        try:
            open_call_page(browser, stack, call)

            def talk_back() -> list[str]:
                return [
                    li.find_element(By.CSS_SELECTOR, ".text").text
                    for li in browser.find_elements(By.CSS_SELECTOR, "#timeline li")
                    if li.find_element(By.CSS_SELECTOR, ".who").text == "talk-back"
                ]

            wait("the conversation", lambda: len(talk_back()) == 9, shown=talk_back)
            assert talk_back() == [
                "greeted: “Hello, how can I help?”",
                "replied in 412 ms to “i want a room”: “Sure. Which dates?”",
                "play (1200 ms)",
                "the caller talked over the agent: its audio cleared",
                "reply to “no stop” cut before a word was heard",
                "the model failed (model_failed): the caller heard an apology",
                f"replied in 500 ms to “a human please”: “{hostile}”",
                "handed over to a colleague",
                "tool end_call",
            ]
            assert not browser.find_elements(By.CSS_SELECTOR, "#timeline img"), "words, not markup"
            muted = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "li.plumbing .text")]
            assert muted == ["play (1200 ms)", "played up to agent-2"], "playback is muted"
            assert browser.title != "1"
            summary = wait(
                "the digest",
                lambda: [
                    e.text
                    for e in browser.find_elements(By.CSS_SELECTOR, "#timeline li .text")
                    if e.text.startswith("The caller wanted a room.")
                ],
            )
            assert summary == [
                "The caller wanted a room. · Intent: book a room · Outcome: handed over"
                " · To do: call back with dates (extractive)"
            ]
        finally:
            browser.quit()
