"""V3 signatures against vectors computed here by hand from docs/protocol.md §3, and parsing."""

import base64
import hashlib
import hmac

import pytest

from callstream.control.callbacks import parse_callback, parse_params, transition, verify_signature
from callstream.exceptions import RequestError

TOKEN = "test-auth-token"


def hand_sign(message: str, nonce: str) -> str:
    mac = hmac.new(TOKEN.encode(), (message + "." + nonce).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def test_post_form_vector():
    params = {"StreamID": "s1", "Event": "StartStream", "CallUUID": "abc"}
    # URL, "?", then body pairs sorted by key, k and v concatenated
    message = "https://x.test/cb?CallUUIDabcEventStartStreamStreamIDs1"
    assert verify_signature(
        "POST", "https://x.test/cb", params, "n1", hand_sign(message, "n1"), TOKEN
    )
    assert not verify_signature(
        "POST",
        "https://x.test/cb",
        {**params, "Event": "StopStream"},
        "n1",
        hand_sign(message, "n1"),
        TOKEN,
    )
    assert not verify_signature(
        "POST", "https://x.test/cb", params, "n2", hand_sign(message, "n1"), TOKEN
    )


def test_post_with_own_query_vector():
    params = {"b": "2", "a": "1"}
    message = "https://x.test/cb?z=9&y=8".replace("z=9&y=8", "y=8&z=9") + ".a1b2"
    assert verify_signature(
        "POST", "https://x.test/cb?z=9&y=8", params, "n", hand_sign(message, "n"), TOKEN
    )


def test_post_without_params_vector():
    assert verify_signature(
        "POST",
        "https://x.test/cb?b=2&a=1",
        {},
        "n",
        hand_sign("https://x.test/cb?a=1&b=2", "n"),
        TOKEN,
    )


def test_get_vector_with_list_values():
    url = "https://x.test/cb?Event=StopStream&StreamID=s1&tag=b&tag=a"
    message = "https://x.test/cb?Event=StopStream&StreamID=s1&tag=a&tag=b"
    assert verify_signature("GET", url, {}, "n", hand_sign(message, "n"), TOKEN)


def test_url_only_form_and_several_signatures():
    url = "https://x.test/cb?x=1"
    url_only = hand_sign(url, "n")
    # the URL-only form does not cover a POST body: accepted only where an operator opts in
    assert not verify_signature("POST", url, {"Event": "StartStream"}, "n", url_only, TOKEN)
    ok = {"url_only": True}
    assert verify_signature("POST", url, {"Event": "StartStream"}, "n", url_only, TOKEN, **ok)
    assert verify_signature(
        "POST", url, {"Event": "StartStream"}, "n", f"AAAA, {url_only}", TOKEN, **ok
    )
    assert not verify_signature("POST", url, {"Event": "StartStream"}, "n", "AAAA,BBBB", TOKEN)
    assert not verify_signature("POST", url, {"Event": "StartStream"}, "", url_only, TOKEN)
    assert not verify_signature(
        "POST", url, {"Event": "StartStream"}, "n", url_only, "other-token", **ok
    )


def test_three_encodings_parse_alike():
    form = parse_params(
        "POST",
        "application/x-www-form-urlencoded",
        "Event=StartStream&StreamID=s1&CallUUID=c1&X-VH-tenant=acme",
        "",
    )
    json_ = parse_params(
        "POST",
        "application/json",
        '{"Event": "StartStream", "StreamID": "s1", "CallUUID": "c1", "X-VH-tenant": "acme"}',
        "",
    )
    get = parse_params("GET", "", "", "Event=StartStream&StreamID=s1&CallUUID=c1&X-VH-tenant=acme")
    assert form == json_ == get
    callback = parse_callback(form)
    assert (callback.event, callback.stream_id, callback.call_uuid) == ("StartStream", "s1", "c1")
    assert callback.extra_headers == {"tenant": "acme"}


def test_parse_errors_name_the_parameter():
    with pytest.raises(RequestError, match="Event"):
        parse_callback({"StreamID": "s1"})
    with pytest.raises(RequestError, match="StreamID"):
        parse_callback({"Event": "StartStream"})
    with pytest.raises(RequestError, match="StreamID"):
        parse_callback({"Event": "StartStream", "StreamID": "../x"})
    with pytest.raises(RequestError, match="JSON"):
        parse_params("POST", "application/json", "[1", "")


@pytest.mark.parametrize(
    ("event", "state", "detail"),
    [
        ("StartStream", "started", "Stream Started"),
        ("StopStream", None, "Stream Stopped"),  # recorded, never relied on to end a stream
        ("DroppedStream", "failed", "Stream Failed"),
        ("PlayedStream", None, "Played Stream"),
        ("ClearedAudio", None, "Cleared Audio"),
        ("StreamTimeout", "failed", "Stream Failed"),
        ("SomethingNew", None, "Stream Callback"),
    ],
)
def test_transitions(event, state, detail):
    step = transition(parse_callback({"Event": event, "StreamID": "s1", "Name": "n"}))
    assert (step.state, step.detail_type) == (state, detail)


def test_a_deeply_nested_json_callback_is_a_precise_400():
    from callstream.exceptions import RequestError

    with pytest.raises(RequestError, match="nested too deeply"):
        parse_params("POST", "application/json", "[" * 100_000 + "]" * 100_000, "")
