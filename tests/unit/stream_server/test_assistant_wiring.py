"""The assistant's composition: the deployment's defaults, a stream's own choices, and what is
refused when the task starts rather than on a caller."""

from __future__ import annotations

import pytest

from callstream import settings
from callstream.adapters.language_models import BedrockModel, OpenAIModel
from callstream.control.tokens import TokenClaims
from callstream.exceptions import ConfigError
from stream_server.assistant import AssistantAgent
from stream_server.scripted_model import ScriptedModel
from stream_server.voices import Delayed, EspeakVoice, PollyVoice
from stream_server.wiring import assistant_factory


def grant(**claims: str) -> TokenClaims:
    return TokenClaims(jti="j", call_uuid="c", exp=0, agent="assistant", **claims)  # type: ignore[arg-type]


def test_a_stream_gets_the_defaults_or_its_own_prompt_voice_and_model(aws_env):
    cfg = settings.AgentSettings(
        openai_secret="arn:aws:secretsmanager:us-east-1:1:secret:k",
        assistant_quiet_ms=400,
        assistant_barge_in_ms=250,
    )
    secrets: list[str] = []
    make = assistant_factory(cfg, secrets=lambda arn: secrets.append(arn) or "sk-x")
    default = make(grant())
    assert isinstance(default, AssistantAgent)
    assert isinstance(default.model, ScriptedModel) and isinstance(default.voice, EspeakVoice)
    assert default.settings.system_prompt == cfg.assistant_prompt
    assert (default.turns.settings.quiet_ms, default.turns.settings.barge_in_ms) == (400, 250)
    own = make(grant(prompt="Be brief.", voice="polly:Kajal", model="openai:gpt-4o-mini"))
    assert isinstance(own, AssistantAgent) and own.settings.system_prompt == "Be brief."
    assert isinstance(own.voice, PollyVoice) and own.voice.voice_id == "Kajal"
    assert isinstance(own.model, OpenAIModel) and own.model.api_key == "sk-x"
    assert secrets == ["arn:aws:secretsmanager:us-east-1:1:secret:k"]
    again = make(grant(model="openai:gpt-4o-mini"))
    assert isinstance(again, AssistantAgent) and again.model is own.model  # built once
    assert secrets == ["arn:aws:secretsmanager:us-east-1:1:secret:k"], "the key is read once"
    bedrock = make(grant(model="bedrock:us.anthropic.claude-haiku-4-5-20251001-v1:0"))
    assert isinstance(bedrock, AssistantAgent) and isinstance(bedrock.model, BedrockModel)
    assert bedrock.model.model_id == "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    # the two agents of one stream kind keep a history each
    assert default.history is not make(grant()).history


def test_the_benchs_delays_reach_the_offline_model_and_voice(aws_env):
    make = assistant_factory(
        settings.AgentSettings(
            assistant_model_delay_ms=300, assistant_voice_delay_ms=150, assistant_voice_pace=1.0
        )
    )
    agent = make(grant())
    assert isinstance(agent, AssistantAgent) and isinstance(agent.voice, Delayed)
    assert agent.voice.delay_s == 0.15 and agent.voice.pace == 1.0
    assert isinstance(agent.model, ScriptedModel) and agent.model.first_token_s == 0.3


def test_a_default_the_task_cannot_build_fails_at_start(aws_env, tmp_path):
    with pytest.raises(ConfigError, match="assistant script"):
        assistant_factory(settings.AgentSettings(assistant_script=str(tmp_path / "missing.yaml")))
    with pytest.raises(ValueError, match="assistant_model"):
        settings.AgentSettings(assistant_model="gpt-4")
    with pytest.raises(ValueError, match="assistant_voice"):
        settings.AgentSettings(assistant_voice="siri:x")


def test_the_openai_key_is_read_through_the_secrets_adapter_and_never_logged(aws, caplog):
    """The key comes from Secrets Manager as the other secrets do: registered for redaction
    before any line could carry it (botocore logs the answer's body at DEBUG)."""
    import logging

    import boto3

    from callstream.adapters import secrets_manager
    from callstream.logsafety import REDACTOR

    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="openai", SecretString="sk-live-0123456789abcdef\n")["ARN"]
    key = secrets_manager.api_key(arn, lambda: sm)
    assert key == "sk-live-0123456789abcdef"
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sent %s", (key,), None)
    REDACTOR.filter(record)
    assert key not in record.getMessage()
    empty = sm.create_secret(Name="empty", SecretString=" ")["ARN"]
    with pytest.raises(ConfigError, match="holds no API key"):
        secrets_manager.api_key(empty, lambda: sm)
