"""The answer XML: escaped, and the call flow after a unidirectional stream."""

from __future__ import annotations

from xml.etree import ElementTree

from callstream.control import answer


def test_the_stream_url_and_attributes_are_escaped():
    url = "wss://ws.example.com/ws/a.b?x=1&y=<2>"
    doc = answer.response(answer.stream(url, {"statusCallbackUrl": 'https://h/"q"&r'}))
    root = ElementTree.fromstring(doc.encode())
    (stream,) = root
    assert root.tag == "Response" and stream.tag == "Stream"
    assert stream.text == url and stream.attrib == {"statusCallbackUrl": 'https://h/"q"&r'}


def test_a_continuation_is_a_redirect_or_a_dial_or_nothing():
    assert answer.continuation("https://app.example.com/next?a=1&b=2", None) == [
        "<Redirect>https://app.example.com/next?a=1&amp;b=2</Redirect>"
    ]
    assert answer.continuation(None, "+15550100") == ["<Dial><Number>+15550100</Number></Dial>"]
    assert answer.continuation(None, None) == []


def test_elements_follow_the_stream_in_order():
    doc = answer.response("<Stream>u</Stream>", *answer.continuation(None, "sip:a@b"))
    assert [e.tag for e in ElementTree.fromstring(doc.encode())] == ["Stream", "Dial"]
