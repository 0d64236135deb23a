"""A call's digest: the extractive one on the sample call's words, hostile lines, and a model's
(Bedrock through the voice agent's own adapter) as its API has it."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.validate import validate_parameters

from callstream.adapters.language_models import BedrockModel
from callstream.analytics.digest import ExtractiveSummarizer, ModelSummarizer, parse_digest
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


class _Runtime:
    """bedrock-runtime's converse_stream, answering with ``text`` in two deltas."""

    def __init__(self, text: str = "", error: Exception | None = None) -> None:
        self.text, self.error, self.asked = text, error, []

    def converse_stream(self, **params: object) -> dict:
        self.asked.append(params)
        if self.error is not None:
            raise self.error
        half = len(self.text) // 2
        return {
            "stream": [
                {
                    "contentBlockDelta": {
                        "delta": {"text": self.text[:half]},
                        "contentBlockIndex": 0,
                    }
                },
                {
                    "contentBlockDelta": {
                        "delta": {"text": self.text[half:]},
                        "contentBlockIndex": 0,
                    }
                },
                {"messageStop": {"stopReason": "end_turn"}},
            ]
        }


def summarizer(runtime: object) -> ModelSummarizer:
    model = BedrockModel(runtime, "amazon.nova-lite-v1:0", tools=False, max_tokens=600)
    return ModelSummarizer(model, "bedrock:amazon.nova-lite-v1:0")


def test_bedrocks_digest_goes_through_the_agents_model_port_with_a_request_its_api_accepts():
    answer = '{"summary": "Internet down; a technician comes at six.", "intent": "internet", '
    answer += '"outcome": "technician booked", "action_items": ["technician visit at six"]}'
    runtime = _Runtime(answer)
    digest = summarizer(runtime).summarize(LINES * 500)
    assert digest.summary == "Internet down; a technician comes at six."
    assert digest.action_items == ("technician visit at six",)
    assert digest.source == "bedrock:amazon.nova-lite-v1:0"
    (params,) = runtime.asked
    real = boto3.client("bedrock-runtime", region_name="us-east-1")
    shape = real.meta.service_model.operation_model("ConverseStream").input_shape
    validate_parameters(params, shape)  # raises ParamValidationError on any wrong field
    assert "toolConfig" not in params, "a digest is words, not tool calls"
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


def test_a_failing_model_is_an_upstream_error_naming_why():
    with pytest.raises(UpstreamError, match="no model access"):
        summarizer(
            _Runtime(error=RuntimeError("AccessDeniedException: no model access"))
        ).summarize(LINES)
    with pytest.raises(UpstreamError, match="not the JSON asked for"):
        summarizer(_Runtime("I cannot summarise this call.")).summarize(LINES)
