"""A call's digest: the extractive one on the sample call's words, hostile lines, and
Bedrock's request and answer as its API has them."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.validate import validate_parameters

from callstream.adapters.bedrock_summary import BedrockSummarizer, parse_digest
from callstream.analytics.digest import ExtractiveSummarizer
from callstream.exceptions import UpstreamError

SCRIPT = json.loads(
    (Path(__file__).resolve().parents[2] / "samples" / "support_call.json").read_text()
)
LINES = [
    ("caller" if u["track"] == "inbound" else "agent", u["text"]) for u in SCRIPT["utterances"]
]


def test_the_sample_calls_digest_names_its_intent_outcome_and_the_technicians_visit():
    digest = ExtractiveSummarizer().summarize(LINES)
    assert digest.intent.startswith("Hi. My internet has been down since yesterday morning")
    assert digest.outcome == "A technician will fix it by six this evening."
    assert digest.action_items == ("A technician will fix it by six this evening.",)
    assert "internet" in digest.summary and digest.source == "extractive"


@pytest.mark.parametrize(
    "lines",
    [[], [("agent", "Goodbye!")], [("caller", "")], [("caller", "x" * 50_000)], [("robot", "hi")]],
)
def test_a_call_with_little_or_too_much_said_still_gets_a_bounded_digest(lines):
    digest = ExtractiveSummarizer().summarize(lines)
    assert len(digest.summary) <= 300 and len(digest.intent) <= 300 and digest.outcome


def test_bedrocks_request_is_one_its_api_accepts_and_bounded():
    runtime = boto3.client("bedrock-runtime", region_name="us-east-1")
    params = BedrockSummarizer(runtime, "amazon.nova-lite-v1:0").request(LINES * 500)
    validate_parameters(params, runtime.meta.service_model.operation_model("Converse").input_shape)
    assert len(params["messages"][0]["content"][0]["text"]) <= 24_000


@pytest.mark.parametrize(
    "text",
    ["Sure! Here it is.", '{"intent": "x"}', '{"summary": 5}', "{not json}", "[1, 2]"],
)
def test_an_answer_that_is_not_the_json_asked_for_is_an_upstream_error(text):
    with pytest.raises(UpstreamError, match="not the JSON asked for"):
        parse_digest(text, "bedrock:m")


def test_a_models_answer_is_read_even_inside_prose_and_its_lists_bounded():
    text = 'Here: {"summary": "Outage; fixed by six.", "intent": "internet down", ' + (
        '"outcome": "technician booked", "action_items": ' + json.dumps(["call back"] * 30) + "}"
    )
    digest = parse_digest(text, "bedrock:m")
    assert (digest.summary, digest.intent, digest.source) == (
        "Outage; fixed by six.",
        "internet down",
        "bedrock:m",
    )
    assert len(digest.action_items) == 10
    assert parse_digest('{"summary": "s", "action_items": "one"}', "m").action_items == ()


class _Failing:
    def converse(self, **params: object) -> dict:
        raise RuntimeError("AccessDeniedException: no model access")


def test_a_failing_model_is_an_upstream_error_naming_why():
    with pytest.raises(UpstreamError, match="no model access"):
        BedrockSummarizer(_Failing(), "m").summarize(LINES)
