"""The control-plane handlers, invoked with the events in events/, on moto and a Vobiz stand-in."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

import boto3
import msgspec
import pytest
from websockets.asyncio.client import connect

from callstream import settings, wiring
from callstream.adapters.dynamodb import DynamoRegistry
from callstream.control.tokens import TokenClaims, new_jti, sign_token, verify_token
from local import lambdas
from local.aws import table_request
from local.vobiz_api import Fault, VobizApi
from local.vobiz_frames import CallAudio, messages
from local.vobiz_wire import read_answer
from stream_server.protection import LocalProtection
from stream_server.tuning import Tuning
from stream_server.wiring import build_server
from tests.conftest import TABLES, make_events

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
KEY = "control-plane-token-key-0123456789"
CALL = "3f1c8a2e-5b7d-4e3a-9c1f-0a2b3c4d5e6f"
STREAM = "9d8c7b6a-1234-4abc-8def-0123456789ab"


def load(path: str) -> dict:
    return json.loads((EVENTS / path).read_text())


def invoke(name: str, event: dict) -> tuple[int, dict | str]:
    answer = lambdas.invoke(name, event)
    body = answer.get("body") or ""
    try:
        return answer["statusCode"], json.loads(body)
    except ValueError:
        return answer["statusCode"], body


class Api:
    def __init__(self, aws, vobiz: VobizApi, queue_url: str):
        self.aws = aws
        self.vobiz = vobiz
        self.queue_url = queue_url
        self.registry = DynamoRegistry(aws["dynamodb"], "Registry")

    def events(self) -> list[dict]:
        sqs = boto3.client("sqs", region_name="us-east-1")
        found = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return found
            found += [json.loads(m["Body"]) for m in batch]
            for m in batch:
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def api(aws, monkeypatch):
    dynamodb = aws["dynamodb"]
    dynamodb.create_table(**table_request("Idempotency", TABLES["IdempotencyTable"]))
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    events.create_event_bus(Name="callstream")
    queue_url = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="tap", EventBusName="callstream", EventPattern=json.dumps({"source": ["callstream"]})
    )
    events.put_targets(Rule="tap", EventBusName="callstream", Targets=[{"Id": "q", "Arn": arn}])
    vobiz = VobizApi("MA_TEST", "test-auth-token-callstream").start()
    env = {
        "REGISTRY_TABLE": "Registry",
        "NONCE_TABLE": "Nonces",
        "IDEMPOTENCY_TABLE": "Idempotency",
        "EVENT_BUS": "callstream",
        "WS_BASE_URL": "wss://ws.example.test",
        "PUBLIC_BASE_URL": "https://abc123.execute-api.us-east-1.amazonaws.com",
        "RECORDINGS_BUCKET": "recordings",
        "VOBIZ_API_URL": vobiz.url,
        "VOBIZ_AUTH_ID": "MA_TEST",
        "VOBIZ_AUTH_TOKEN": "test-auth-token-callstream",
        "TOKEN_KEY": KEY,
        "VOBIZ_TIMEOUT_S": "0.5",
        "CONTROL_TIMEOUT_S": "5",
    }
    for name, value in env.items():
        monkeypatch.setenv(f"CALLSTREAM_{name}", value)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "callstream")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "control")
    wiring.reset()
    yield Api(aws, vobiz, queue_url)
    vobiz.stop()


# ----------------------------------------------------------------------------- start / stop


def test_start_stream_calls_vobiz_with_a_signed_service_url(api):
    status, body = invoke("start_stream", load("api/start_stream.json"))
    assert status == 201, body
    ((method, path, sent),) = api.vobiz.requests
    assert (method, path) == ("POST", f"/api/v1/Account/MA_TEST/Call/{CALL}/Stream/")
    assert sent["audio_track"] == "both" and sent["content_type"] == "audio/x-mulaw;rate=8000"
    assert (
        sent["status_callback_url"]
        == "https://abc123.execute-api.us-east-1.amazonaws.com/vobiz/stream-status"
    )
    assert sent["extra_headers"] == "tenant=acme"
    assert sent["service_url"].startswith("wss://ws.example.test/v1/audio/")
    claims = verify_token(sent["service_url"].rsplit("/", 1)[1], KEY.encode(), time.time())
    assert claims.call_uuid == CALL and not claims.bidirectional
    assert body["stream_id"] in api.vobiz.streams and body["state"] == "requested"
    item = api.registry.get(body["stream_id"])
    assert item is not None and (item.state, item.codec, item.audio_track) == (
        "requested",
        "mulaw",
        "both",
    )
    (event,) = api.events()
    assert (
        event["detail-type"] == "Stream Requested"
        and event["detail"]["stream_id"] == body["stream_id"]
    )


def test_idempotency_key_returns_the_same_stream(api):
    first = invoke("start_stream", load("api/start_stream.json"))
    second = invoke("start_stream", load("api/start_stream.json"))
    assert first == second and first[0] == 201
    assert len(api.vobiz.requests) == 1
    changed = load("api/start_stream.json")
    changed["body"] = json.dumps({"audio_track": "inbound"})
    status, body = invoke("start_stream", changed)
    assert status == 409 and "Idempotency-Key" in body["message"]


def test_bad_bodies_get_400_naming_the_field(api):
    status, body = invoke("start_stream", load("api/start_stream_bad_body.json"))
    assert status == 400 and "audio_track" in body["message"] and "content_type" in body["message"]
    status, body = invoke("start_stream", load("api/start_stream_not_json.json"))
    assert status == 400 and "JSON" in body["message"]
    assert api.vobiz.requests == []


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [
        ({"bidirectional": True, "audio_track": "both"}, 422, "inbound"),
        ({"bidirectional": True, "audio_track": "outbound"}, 422, "inbound"),
        ({"extra_headers": {"ténant²": "x"}}, 400, "A-Za-z0-9"),
        ({"extra_headers": {"tenant_id": "x"}}, 400, "A-Za-z0-9"),
        ({"extra_headers": {f"k{i}": "v" * 60 for i in range(9)}}, 400, "512 bytes"),
    ],
)
def test_what_vobiz_refuses_is_refused_before_vobiz_is_called(api, change, status, needle):
    event = load("api/start_stream.json")
    event["body"] = json.dumps({**json.loads(event["body"]), **change})
    event["headers"].pop("idempotency-key", None)
    got, body = invoke("start_stream", event)
    assert got == status and needle in body["message"], body
    assert api.vobiz.requests == []


def test_l16_24k_is_accepted_and_stop_all_reaches_vobiz(api):
    event = load("api/start_stream.json")
    event["body"] = json.dumps(
        {**json.loads(event["body"]), "content_type": "audio/x-l16;rate=24000"}
    )
    event["headers"].pop("idempotency-key", None)
    status, body = invoke("start_stream", event)
    assert status == 201 and body["sample_rate"] == 24000, body
    posted = api.vobiz.requests[-1][2]
    assert posted["content_type"] == "audio/x-l16;rate=24000"


@pytest.mark.parametrize(
    ("faults", "status", "requests", "needle"),
    [
        (
            [Fault(400, {"message": "audio_track both not allowed"})],
            400,
            1,
            "audio_track both not allowed",
        ),
        ([Fault(404, {"message": "call not found"})], 404, 1, "call not found"),
        ([Fault(500, {"message": "boom"})], 502, 1, "boom"),  # a POST is never retried on 5xx
        ([Fault(429, {"message": "slow down"})], 201, 2, None),  # 429 is retried
        ([Fault(401, {"message": "authentication failed"})], 502, 1, "authentication"),
        ([Fault(200, {"message": "garbage, no stream id"})], 502, 1, "stream_id"),
        ([Fault(201, {"stream_id": "ok"}, delay_s=1.0)], 504, 1, "in time"),
    ],
)
def test_vobiz_errors_reach_the_caller_precisely(api, faults, status, requests, needle):
    api.vobiz.fail_next(*faults)
    event = load("api/start_stream.json")
    del event["headers"]["idempotency-key"]
    got, body = invoke("start_stream", event)
    assert got == status, body
    assert len(api.vobiz.requests) == requests
    if needle:
        assert needle in body["message"] and "Traceback" not in body["message"]


def test_get_list_and_stop(api):
    status, started = invoke("start_stream", load("api/start_stream.json"))
    stream_id = started["stream_id"]
    event = load("api/get_stream.json")
    event["pathParameters"]["stream_id"] = stream_id
    event["rawPath"] = f"/v1/streams/{stream_id}"
    status, body = invoke("get_stream", event)
    assert (
        status == 200
        and body["state"] == "requested"
        and body["links"]["self"] == f"/v1/streams/{stream_id}"
    )
    status, body = invoke("list_streams", load("api/list_streams.json"))
    assert status == 200 and [s["stream_id"] for s in body["streams"]] == [stream_id]
    stop = load("api/stop_stream.json")
    stop["pathParameters"]["stream_id"] = stream_id
    stop["rawPath"] = f"/v1/streams/{stream_id}"
    status, body = invoke("stop_stream", stop)
    assert status == 200 and body["stop_requested"] is True
    assert api.vobiz.requests[-1][0] == "DELETE" and api.vobiz.streams[stream_id].state == "stopped"
    api.registry.mark_ended(stream_id, CALL, state="stopped", end_reason="stop", at="t")
    status, body = invoke("stop_stream", stop)
    assert status == 200 and body["stop_requested"] is False
    assert [r[0] for r in api.vobiz.requests].count("DELETE") == 1


def test_unknown_and_invalid_ids(api):
    status, body = invoke("get_stream", load("api/get_stream_unknown.json"))
    assert status == 404 and body["error"] == "not_found"
    status, body = invoke("get_stream", load("api/get_stream_bad_id.json"))
    assert status == 400 and "stream_id" in body["message"]
    status, _ = invoke("stop_stream", load("api/stop_stream.json"))
    assert status == 404


# ---------------------------------------------------------------------------------- callbacks


def test_callbacks_move_the_state_machine_in_every_encoding(api):
    assert invoke("stream_callback", load("callbacks/start_form.json"))[0] == 200
    item = api.registry.get(STREAM)
    assert item is not None and item.state == "started" and item.extra_headers == {"tenant": "acme"}
    assert (
        invoke("stream_callback", load("callbacks/start_json.json"))[0] == 200
    )  # a redelivery in another encoding, new nonce
    assert invoke("stream_callback", load("callbacks/played_form.json"))[0] == 200
    assert invoke("stream_callback", load("callbacks/stop_get.json"))[0] == 200
    item = api.registry.get(STREAM)
    # StopStream is recorded, never relied on to end a stream (docs/protocol.md §3)
    assert item is not None and (item.state, item.last_checkpoint) == ("started", "turn-1")
    kinds = [e["detail-type"] for e in api.events()]
    assert sorted(kinds) == [
        "Played Stream",
        "Stream Started",
        "Stream Stopped",
    ]  # the redelivery published once


def test_the_hangup_webhook_ends_every_live_stream_of_the_call_once(api):
    assert invoke("stream_callback", load("callbacks/start_form.json"))[0] == 200
    status, body = invoke("stream_callback", load("callbacks/hangup_form.json"))
    assert status == 200 and body["streams_ended"] == [STREAM]
    item = api.registry.get(STREAM)
    assert item is not None
    assert (item.state, item.end_reason, item.hangup_cause, item.call_duration_s) == (
        "stopped",
        "hangup",
        "NORMAL_CLEARING",
        312,
    )
    # Vobiz redelivers with a new nonce: nothing changes, "Call Ended" stays published once
    again = load("callbacks/hangup_form.json")
    again["headers"]["x-vobiz-signature-v3-nonce"] = "another"
    replay = invoke("stream_callback", again)
    assert replay[0] == 403  # the signature covers the nonce: a new nonce needs a new signature
    assert invoke("stream_callback", load("callbacks/hangup_form.json"))[0] == 403  # replayed
    events = api.events()
    kinds = [e["detail-type"] for e in events]
    assert kinds.count("Call Ended") == 1
    (ended,) = [e["detail"] for e in events if e["detail-type"] == "Call Ended"]
    assert (ended["from"], ended["to"]) == ("15550001111", "15550002222")  # for the console
    # the stream server's own end arriving later does not undo the hangup
    api.registry.mark_ended(STREAM, CALL, state="stopped", end_reason="close", at="x")
    after = api.registry.get(STREAM)
    assert after is not None and after.end_reason == "hangup"


def test_a_nonce_is_spent_only_by_a_request_that_was_handled(api, monkeypatch):
    from callstream.adapters.eventbridge import EventBridgeBus

    calls = {"n": 0}
    real = EventBridgeBus.publish

    def flaky(self, detail_type, detail):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("EventBridge is down")
        return real(self, detail_type, detail)

    monkeypatch.setattr(EventBridgeBus, "publish", flaky)
    assert invoke("stream_callback", load("callbacks/start_form.json"))[0] == 500
    # Vobiz retries the same signed request: it is handled now, and published once
    assert invoke("stream_callback", load("callbacks/start_form.json"))[0] == 200
    assert [e["detail-type"] for e in api.events()] == ["Stream Started"]
    # and a replay of the handled request is refused
    assert invoke("stream_callback", load("callbacks/start_form.json"))[0] == 403


def test_a_callback_without_call_uuid_never_moves_a_stream_to_another_call(api):
    assert invoke("stream_callback", load("callbacks/start_form.json"))[0] == 200
    event = load("callbacks/played_form.json")
    event["body"] = event["body"].replace(f"CallUUID={CALL}&", "")
    # re-sign for the new body with Vobiz's own construction
    from local.vobiz_wire import sign_v3

    params = dict(p.split("=", 1) for p in event["body"].split("&"))
    url = f"https://{event['requestContext']['domainName']}/vobiz/stream-status"
    event["headers"]["x-vobiz-signature-v3"] = sign_v3(
        "test-auth-token-callstream", "POST", url, params, "nonce-no-call"
    )
    event["headers"]["x-vobiz-signature-v3-nonce"] = "nonce-no-call"
    assert invoke("stream_callback", event)[0] == 200
    item = api.registry.get(STREAM)
    assert item is not None and item.call_uuid == CALL and item.last_checkpoint == "turn-1"


@pytest.mark.parametrize("name", ["start_form_forged.json", "stop_form_unsigned.json"])
def test_forged_and_unsigned_callbacks_get_403_and_record_nothing(api, name):
    status, body = invoke("stream_callback", load(f"callbacks/{name}"))
    assert status == 403 and body["error"] == "bad_signature"
    assert api.registry.get(STREAM) is None and api.events() == []


def test_replayed_callback_gets_403(api):
    assert invoke("stream_callback", load("callbacks/start_form.json"))[0] == 200
    status, body = invoke("stream_callback", load("callbacks/start_form_replayed.json"))
    assert status == 403 and "replayed" in body["message"]


def test_a_callback_for_an_unknown_stream_is_recorded(api):
    event = load("callbacks/played_form.json")
    status, _ = invoke("stream_callback", event)
    assert status == 200
    item = api.registry.get(STREAM)
    assert item is not None and item.last_checkpoint == "turn-1"


# ------------------------------------------------------------------------------------- answer


def answer(query: str, nonce: str):
    event = make_events().vobiz("GET", "/vobiz/answer", "GET /vobiz/answer", {}, nonce, query=query)
    return invoke("answer_call", event)


def test_answer_returns_stream_xml_with_a_signed_token(api):
    status, xml = invoke("answer_call", load("callbacks/answer_get.json"))
    assert status == 200
    stream = ElementTree.fromstring(xml).find("Stream")
    assert stream is not None
    assert stream.attrib["keepCallAlive"] == "true" and stream.attrib["bidirectional"] == "true"
    assert (
        stream.attrib["audioTrack"] == "inbound"
        and stream.attrib["contentType"] == "audio/x-mulaw;rate=8000"
        and stream.attrib["maxRetries"] == "3"
    )
    assert stream.attrib["statusCallbackUrl"].endswith("/vobiz/stream-status")
    claims = verify_token(
        urlsplit(stream.text or "").path.rsplit("/", 1)[1], KEY.encode(), time.time()
    )
    assert (claims.call_uuid, claims.agent, claims.bidirectional) == (CALL, "prompt", True)
    assert claims.content_type == "audio/x-mulaw;rate=8000"
    # Vobiz's reading of it (the simulator's own XML rules): the call stays up
    assert read_answer(xml).hangup_cause is None
    (answered,) = [e["detail"] for e in api.events() if e["detail-type"] == "Call Answered"]
    assert answered == {
        "call_uuid": CALL,
        "from": "15550001111",
        "to": "15550002222",
        "direction": "inbound",
        "agent": "prompt",
        "bidirectional": True,
        "published_at": answered["published_at"],
    }


def test_an_answer_names_no_number_it_cannot_show_and_never_fails_for_the_bus(api, monkeypatch):
    from callstream.adapters.eventbridge import EventBridgeBus
    from callstream.control import callbacks

    assert callbacks.number("+15550001111") == "+15550001111"
    assert callbacks.number("sip:alice@example.com") == "sip:alice@example.com"
    for hostile in ("<script>", "1" * 65, "", None, "a b"):
        assert callbacks.number(hostile) is None

    def down(self, detail_type, detail):
        raise RuntimeError("EventBridge is down")

    monkeypatch.setattr(EventBridgeBus, "publish", down)
    status, xml = invoke("answer_call", load("callbacks/answer_post.json"))
    assert status == 200 and ElementTree.fromstring(xml).find("Stream") is not None


def test_the_answer_url_without_configuration_keeps_the_call_up(api):
    """Issue 22: a newcomer pointing a Vobiz number at the answer URL got 500 config_error."""
    status, xml = invoke("answer_call", load("callbacks/answer_post.json"))
    assert status == 200
    stream = ElementTree.fromstring(xml).find("Stream")
    assert stream is not None
    assert (stream.attrib["bidirectional"], stream.attrib["keepCallAlive"]) == ("true", "true")
    assert stream.attrib["audioTrack"] == "inbound"
    assert read_answer(xml).hangup_cause is None, "Vobiz's reading of it: the call stays up"


@pytest.mark.parametrize(
    ("query", "expected", "warned"),
    [
        ("audio_track=both&bidirectional=true", {"audioTrack": "inbound"}, "audio_track both"),
        ("audio_track=outbound", {"audioTrack": "inbound"}, "audio_track outbound"),
        ("bidirectional=false", {"bidirectional": "true"}, "would hang the call up"),
        ("content_type=audio/wav", {"contentType": "audio/x-mulaw;rate=8000"}, "content_type"),
        ("max_retries=99", {"maxRetries": "3"}, "max_retries='99' is not valid"),
        ("agent=hal9000", {"bidirectional": "true"}, "agent='hal9000' is not valid"),
        ("bidirectional=false&dial=%3Cx%3E", {"bidirectional": "true"}, "dial='<x>'"),
        (
            "bidirectional=false&redirect_url=javascript:alert(1)",
            {"bidirectional": "true"},
            "redirect_url='javascript:alert(1)'",
        ),
    ],
)
def test_a_query_vobiz_would_refuse_gets_the_closest_valid_stream_and_a_warning(
    api, caplog, query, expected, warned
):
    status, xml = answer(f"CallUUID={CALL}&{query}", f"nonce-{abs(hash(query))}")
    assert status == 200, xml
    stream = ElementTree.fromstring(xml).find("Stream")
    assert stream is not None
    assert {k: stream.attrib[k] for k in expected} == expected
    assert read_answer(xml).hangup_cause is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(warned in w and CALL in w for w in warnings), warnings


def test_a_unidirectional_answer_continues_with_the_rest_of_the_call_flow(api):
    status, xml = answer(
        f"CallUUID={CALL}&bidirectional=false&audio_track=both"
        "&redirect_url=https://app.example.com/next",
        "nonce-redirect",
    )
    assert status == 200
    root = ElementTree.fromstring(xml)
    stream = root.find("Stream")
    assert stream is not None and "keepCallAlive" not in stream.attrib
    assert stream.attrib["audioTrack"] == "both" and stream.attrib["bidirectional"] == "false"
    assert [e.tag for e in root] == ["Stream", "Redirect"]
    assert root.findtext("Redirect") == "https://app.example.com/next"
    plan = read_answer(xml)
    assert plan.hangup_cause is None and plan.after == ["Redirect"]
    status, xml = answer(
        f"CallUUID={CALL}&bidirectional=false&dial=%2B918000000002&max_retries=5", "nonce-dial"
    )
    assert status == 200 and read_answer(xml).after == ["Dial"]
    assert 'maxRetries="5"' in xml


def test_a_stream_asks_for_its_language_in_the_start_request_or_the_answer_url(api):
    """The language travels in the signed token to the stream server (and from there on its
    utterances to the recogniser); one Transcribe does not stream is refused by name at the
    start, and at the answer keeps the deployment's (a caller is never refused)."""
    start = load("api/start_stream.json")
    start["body"] = json.dumps({"audio_track": "inbound", "language": "hi-IN"})
    start["headers"]["Idempotency-Key"] = "lang-1"
    status, body = invoke("start_stream", start)
    assert status == 201, body
    sent = api.vobiz.requests[-1][2]
    claims = verify_token(sent["service_url"].rsplit("/", 1)[1], KEY.encode(), time.time())
    assert claims.language == "hi-IN" and body["language"] == "hi-IN"
    start["body"] = json.dumps({"audio_track": "inbound", "language": "klingon"})
    start["headers"]["Idempotency-Key"] = "lang-2"
    status, body = invoke("start_stream", start)
    assert status == 400 and "language" in body["message"] and "Transcribe" in body["message"]

    status, xml = answer(f"CallUUID={CALL}&language=ta-IN", "nonce-lang")
    stream = ElementTree.fromstring(xml).find("Stream")
    assert status == 200 and stream is not None
    token = urlsplit(stream.text or "").path.rsplit("/", 1)[1]
    assert verify_token(token, KEY.encode(), time.time()).language == "ta-IN"
    status, xml = answer(f"CallUUID={CALL}&language=xx-XX", "nonce-lang-bad")
    stream = ElementTree.fromstring(xml).find("Stream")
    assert status == 200 and stream is not None
    token = urlsplit(stream.text or "").path.rsplit("/", 1)[1]
    assert verify_token(token, KEY.encode(), time.time()).language is None


def test_forged_answer_gets_403(api):
    event = load("callbacks/answer_get.json")
    event["headers"]["x-vobiz-signature-v3"] = "AAAA"
    status, _ = invoke("answer_call", event)
    assert status == 403


# ------------------------------------------------------------------------------------ control


def registry_item(api, stream_id):
    """The stream's registry item, or None while moto is halfway through writing it.

    In-process moto applies an UpdateItem to a new item field by field, and another thread can
    read the item with its key only; DynamoDB's writes are atomic, so only the test sees that.
    """
    try:
        return api.registry.get(stream_id)
    except msgspec.ValidationError:
        return None


async def test_control_reaches_the_task_that_holds_the_stream(api, aws):
    server = build_server(
        settings.ServerSettings(
            audio_stream="AudioStream",
            utterance_stream="UtteranceStream",
            registry_table="Registry",
            nonce_table="Nonces",
            host="127.0.0.1",
            port=0,
            control_port=0,
        ),
        tuning=Tuning(metrics_interval_s=3600),
        kinesis=aws["kinesis"],
        dynamodb=aws["dynamodb"],
        token_key=KEY.encode(),
        protect=LocalProtection(),
    )
    await server.start()
    try:
        tok = sign_token(
            TokenClaims(
                jti=new_jti(), call_uuid=CALL, exp=int(time.time()) + 60, bidirectional=True
            ),
            KEY.encode(),
        )
        audio = CallAudio(
            tracks={"inbound": bytes(16000)}, sample_rate=8000, stream_id=STREAM, call_id=CALL
        )
        lines = list(messages(audio, "mulaw", with_stop=False))
        async with connect(f"ws://127.0.0.1:{server.port}/v1/audio/{tok}") as ws:
            for line in lines:
                await ws.send(line)
            deadline = time.monotonic() + 15
            while (item := registry_item(api, STREAM)) is None or not item.live:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            status, body = await asyncio.to_thread(
                invoke, "control_stream", load("api/control_stream_play.json")
            )
            assert status == 202 and (body["play_id"], body["ms"]) == ("p1", 200)  # at once
            frame = json.loads(await ws.recv())
            assert frame["event"] == "playAudio" and "streamId" not in frame
            for _ in range(9):  # 200 ms: ten frames, then the play's checkpoint
                assert json.loads(await ws.recv())["event"] == "playAudio"
            mark = json.loads(await ws.recv())
            assert (mark["event"], mark["name"]) == ("checkpoint", "p1-played")
            await ws.send(json.dumps({"event": "playedStream", "name": "p1-played"}))
            deadline = time.monotonic() + 10
            while True:  # followed through the API, as a caller would
                status, body = await asyncio.to_thread(
                    invoke, "control_stream", load("api/control_stream_play_state.json")
                )
                if body.get("state") == "played" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert (status, body["state"], body["sent_ms"]) == (200, "played", 200)
            status, body = await asyncio.to_thread(
                invoke, "control_stream", load("api/control_stream_clear.json")
            )
            assert status == 200 and body["cleared"] is True
            # the task itself refuses a body the API let through: still the caller's 400, not a 502
            bad_audio = load("api/control_stream_play.json")
            bad_audio["body"] = json.dumps({"audio_b64": "!!!!", "sample_rate": 8000})
            status, body = await asyncio.to_thread(invoke, "control_stream", bad_audio)
            assert status == 400 and "audio_b64" in body["message"], body
            bad = load("api/control_stream_clear.json")
            bad["pathParameters"]["action"] = "explode"
            bad["rawPath"] = f"/v1/streams/{STREAM}/explode"
            status, body = await asyncio.to_thread(invoke, "control_stream", bad)
            assert status == 400
    finally:
        await server.close()


def test_control_of_a_stream_that_is_not_live_is_409(api):
    api.registry.create_requested(STREAM, CALL, bidirectional=True, at="t")
    status, body = invoke("control_stream", load("api/control_stream_clear.json"))
    assert status == 409 and "not live" in body["message"]
    api.registry.apply_callback(STREAM, CALL, "started", at="t")  # Vobiz's StartStream first
    status, body = invoke("control_stream", load("api/control_stream_clear.json"))
    assert status == 409 and "no task holds its socket yet" in body["message"]
    api.registry.mark_started(
        STREAM, CALL, task_address="http://127.0.0.1:9", bidirectional=False, at="t"
    )
    status, body = invoke("control_stream", load("api/control_stream_clear.json"))
    assert status == 409 and "not bidirectional" in body["message"]


def route(base: str, method: str, path: str, route_key: str, params: dict) -> dict:
    """An API Gateway v2 event for another route, from a stored one."""
    event = load(base)
    event["routeKey"] = event["requestContext"]["routeKey"] = route_key
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["pathParameters"] = params
    event.pop("body", None)
    return event


def started_stream(api) -> str:
    event = load("api/start_stream.json")
    event["headers"].pop("idempotency-key", None)
    status, body = invoke("start_stream", event)
    assert status == 201, body
    stream_id = body["stream_id"]
    api.registry.mark_started(stream_id, CALL, task_address="http://127.0.0.1:9", at="t")
    return stream_id


def test_stop_all_stops_every_stream_of_the_call_at_vobiz(api):
    first, second = started_stream(api), started_stream(api)
    status, body = invoke(
        "stop_stream",
        route(
            "api/stop_stream.json",
            "DELETE",
            f"/v1/calls/{CALL}/streams",
            "DELETE /v1/calls/{call_uuid}/streams",
            {"call_uuid": CALL},
        ),
    )
    assert status == 200 and body["stop_requested"] is True
    assert [r[:2] for r in api.vobiz.requests[-1:]] == [
        ("DELETE", f"/api/v1/Account/MA_TEST/Call/{CALL}/Stream/")
    ]
    assert {api.vobiz.streams[s].state for s in (first, second)} == {"stopped"}


def test_a_stop_of_a_stream_vobiz_already_ended_counts_as_stopped(api):
    stream_id = started_stream(api)
    api.vobiz.streams[stream_id].state = "stopped"  # the caller hung up; no callback came
    event = route(
        "api/stop_stream.json",
        "DELETE",
        f"/v1/streams/{stream_id}",
        "DELETE /v1/streams/{stream_id}",
        {"stream_id": stream_id},
    )
    status, body = invoke("stop_stream", event)
    assert status == 200 and body["stop_requested"] is True, body
    method, _path, _body = api.vobiz.requests[-1]
    assert method == "DELETE"  # Vobiz answered 400 "no active stream": already stopped


def test_reconcile_ends_a_stream_vobiz_reports_completed(api):
    stream_id = started_stream(api)
    api.vobiz.streams[stream_id].state = "stopped"
    api.vobiz.streams[stream_id].ended_at = time.time()
    reconcile = route(
        "api/stop_stream.json",
        "POST",
        f"/v1/streams/{stream_id}/reconcile",
        "POST /v1/streams/{stream_id}/reconcile",
        {"stream_id": stream_id},
    )
    status, body = invoke("stop_stream", reconcile)
    assert status == 200, body
    assert body["reconciled"] is True and body["vobiz"]["status"] == "completed"
    item = api.registry.get(stream_id)
    assert item is not None and (item.state, item.end_reason) == ("stopped", "vobiz: completed")
    # a second reconcile changes nothing: the state only moves forward
    status, body = invoke("stop_stream", reconcile)
    assert status == 200 and body["reconciled"] is False


def test_listing_a_calls_streams_at_vobiz_follows_its_paging(api):
    from callstream.adapters.vobiz import VobizClient
    from callstream.ports import VobizCredentials

    for _ in range(25):
        started_stream(api)
    credentials = VobizCredentials("MA_TEST", "test-auth-token-callstream")
    client = VobizClient(api.vobiz.url, credentials, timeout_s=5.0)
    listed = client.list_streams(CALL, page_size=10)
    assert len(listed) == 25 and len({s["stream_id"] for s in listed}) == 25
    pages = [p for m, p, _ in api.vobiz.requests if m == "GET"]
    assert [p.split("?")[1] for p in pages] == [
        "limit=10&offset=0",
        "limit=10&offset=10",
        "limit=10&offset=20",
    ]


def status_callback(event: str, timestamp: str, nonce: str, **extra: str) -> dict:
    params = {"Event": event, "StreamID": STREAM, "CallUUID": CALL, "Timestamp": timestamp, **extra}
    return make_events().vobiz(
        "POST", "/vobiz/stream-status", "POST /vobiz/stream-status", params, nonce
    )


def test_a_second_barge_in_is_another_event_a_redelivery_is_not(api):
    for nonce, timestamp in (("n1", "12:00:01"), ("n2", "12:00:01"), ("n3", "12:00:09")):
        assert (
            invoke("stream_callback", status_callback("ClearedAudio", timestamp, nonce))[0] == 200
        )
    for nonce in ("p1", "p2"):  # the same checkpoint played twice, at two times
        event = status_callback("PlayedStream", f"12:01:0{nonce[1]}", nonce, Name="turn-1")
        assert invoke("stream_callback", event)[0] == 200
    kinds = [e["detail-type"] for e in api.events()]
    assert kinds.count("Cleared Audio") == 2 and kinds.count("Played Stream") == 2


def test_a_v2_signed_callback_is_accepted_and_a_wrong_one_refused(api):
    from local.vobiz_wire import sign_v2

    event = status_callback("StartStream", "12:00:00", "unused")
    url = f"https://{event['requestContext']['domainName']}/vobiz/stream-status"
    headers = {k: v for k, v in event["headers"].items() if not k.startswith("x-vobiz")}
    event["headers"] = headers | {
        "x-vobiz-signature-v2": sign_v2("test-auth-token-callstream", url, "v2-nonce"),
        "x-vobiz-signature-v2-nonce": "v2-nonce",
    }
    assert invoke("stream_callback", event)[0] == 200
    assert invoke("stream_callback", event)[0] == 403  # replayed
    event["headers"]["x-vobiz-signature-v2-nonce"] = "another"
    assert invoke("stream_callback", event)[0] == 403  # the signature covers the nonce


def test_unsigned_requests_only_with_the_explicit_logged_opt_out(api, monkeypatch, caplog):
    event = load("callbacks/stop_form_unsigned.json")
    assert invoke("stream_callback", event)[0] == 403
    monkeypatch.setenv("CALLSTREAM_ALLOW_UNSIGNED_CALLBACKS", "true")
    wiring.reset()
    with caplog.at_level("WARNING"):
        assert invoke("stream_callback", load("callbacks/stop_form_unsigned.json"))[0] == 200
    assert "CALLSTREAM_ALLOW_UNSIGNED_CALLBACKS" in caplog.text


def test_without_a_configured_public_url_vobiz_calls_back_where_the_request_came_in(
    api, monkeypatch
):
    """The template gives the functions no URL of their API (that reference is a cycle)."""
    monkeypatch.delenv("CALLSTREAM_PUBLIC_BASE_URL")
    wiring.reset()
    host = load("api/start_stream.json")["requestContext"]["domainName"]
    status, xml = invoke("answer_call", load("callbacks/answer_get.json"))
    assert status == 200
    stream = ElementTree.fromstring(xml).find("Stream")
    assert stream is not None
    assert stream.attrib["statusCallbackUrl"] == f"https://{host}/vobiz/stream-status"
    status, body = invoke("start_stream", load("api/start_stream.json"))
    assert status == 201, body
    assert api.vobiz.requests[-1][2]["status_callback_url"] == (
        f"https://{host}/vobiz/stream-status"
    )


def test_an_unknown_route_is_a_404_json_answer_not_a_500(api, caplog):
    event = route("api/stop_stream.json", "DELETE", "/v1/nowhere", "DELETE /v1/nowhere", {})
    status, body = invoke("stop_stream", event)
    assert status == 404 and body["error"] == "not_found" and "/v1/nowhere" in body["message"]
    assert "NoneType: None" not in caplog.text


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_a_deeply_nested_json_body_is_a_400(api, depth):
    event = load("api/start_stream.json")
    event["body"] = "[" * depth + "]" * depth
    event["headers"].pop("idempotency-key", None)
    status, body = invoke("start_stream", event)
    assert status == 400 and body["error"] == "bad_request", body
    assert api.vobiz.requests == []


def test_a_retry_after_a_vobiz_timeout_adopts_the_stream_vobiz_made(api):
    """Vobiz made the stream but answered too late (504): the retry with the same key finds it
    at Vobiz by its service URL and adopts it. One Idempotency-Key, one stream."""
    api.vobiz.fail_next(Fault(201, delay_s=1.0, done_anyway=True))  # the client waits 0.5 s
    status, _ = invoke("start_stream", load("api/start_stream.json"))
    assert status == 504
    (made,) = api.vobiz.streams.values()
    status, body = invoke("start_stream", load("api/start_stream.json"))
    assert status == 201 and body["stream_id"] == made.stream_id, body
    assert len(api.vobiz.streams) == 1
    assert [m for m, _, _ in api.vobiz.requests].count("POST") == 1
    assert api.registry.get(made.stream_id) is not None


def test_a_retry_after_a_timeout_before_vobiz_made_anything_starts_it_with_the_same_url(api):
    api.vobiz.fail_next(Fault(504, delay_s=1.0))  # nothing made
    assert invoke("start_stream", load("api/start_stream.json"))[0] == 504
    assert api.vobiz.streams == {}
    status, body = invoke("start_stream", load("api/start_stream.json"))
    assert status == 201, body
    posts = [b for m, _, b in api.vobiz.requests if m == "POST"]
    assert len(posts) == 2 and posts[0]["service_url"] == posts[1]["service_url"]
    assert len(api.vobiz.streams) == 1


# -------------------------------------------------------------------- the assistant, per stream


def test_a_stream_chooses_the_assistants_prompt_voice_and_model_and_they_ride_in_its_token(api):
    event = load("api/start_stream.json")
    event["headers"].pop("idempotency-key", None)
    choice = {"prompt": "You book rooms at the Grand.\nBe brief.", "voice": "polly:Kajal"}
    body = {"audio_track": "inbound", "bidirectional": True, "agent": "assistant", **choice}
    event["body"] = json.dumps(
        {**body, "model": "bedrock:us.anthropic.claude-haiku-4-5-20251001-v1:0"}
    )
    status, answer_ = invoke("start_stream", event)
    assert status == 201, answer_
    sent = api.vobiz.requests[-1][2]
    claims = verify_token(sent["service_url"].rsplit("/", 1)[1], KEY.encode(), time.time())
    assert (claims.agent, claims.prompt, claims.voice) == ("assistant", *choice.values())
    assert claims.model == "bedrock:us.anthropic.claude-haiku-4-5-20251001-v1:0"
    status, xml = answer(
        f"CallUUID={CALL}&agent=assistant&voice=espeak:en-gb&model=scripted&prompt=Hi", "n-a1"
    )
    assert status == 200, xml
    stream = ElementTree.fromstring(xml).find("Stream")
    assert status == 200 and stream is not None
    claims = verify_token(
        urlsplit(stream.text or "").path.rsplit("/", 1)[1], KEY.encode(), time.time()
    )
    assert (claims.agent, claims.voice, claims.model, claims.prompt) == (
        "assistant",
        "espeak:en-gb",
        "scripted",
        "Hi",
    )
    # a wrong voice on the answer URL is replaced (the caller is still answered), and named
    status, xml = answer(f"CallUUID={CALL}&agent=assistant&voice=siri:x&model=gpt", "n-a2")
    stream = ElementTree.fromstring(xml).find("Stream")
    assert status == 200 and stream is not None
    claims = verify_token(
        urlsplit(stream.text or "").path.rsplit("/", 1)[1], KEY.encode(), time.time()
    )
    assert (claims.agent, claims.voice, claims.model) == ("assistant", None, None)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"agent": "echo", "prompt": "Be nice."}, "prompt: only with agent assistant, not echo"),
        ({"agent": "assistant", "voice": "siri:x"}, "voice"),
        ({"agent": "assistant", "voice": "polly:" + "x" * 41}, "voice"),
        ({"agent": "assistant", "model": "gpt-4"}, "model"),
        ({"agent": "assistant", "model": "openai:gpt 4"}, "model"),
        ({"agent": "assistant", "prompt": "x" * 1001}, "1001 characters, more than 1000"),
        ({"agent": "assistant", "prompt": "  "}, "the prompt is empty"),
        ({"agent": "assistant", "prompt": "hi\x00there"}, "control characters"),
        ({"agent": "assistant", "prompt": 7}, "prompt"),
        ({"agent": "assistant", "voice": ["polly:Joanna"]}, "voice"),
    ],
)
def test_wrong_assistant_options_get_400_naming_the_field(api, change, needle):
    event = load("api/start_stream.json")
    event["headers"].pop("idempotency-key", None)
    event["body"] = json.dumps({"audio_track": "inbound", "bidirectional": True, **change})
    status, body = invoke("start_stream", event)
    assert status == 400 and needle in body["message"], body
    assert api.vobiz.requests == []
