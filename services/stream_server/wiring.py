"""Builds a :class:`~stream_server.server.StreamServer` from settings and real adapters.

The same function serves the container (boto3 on AWS), the embedded stack (boto3 on a moto
server) and the functional tests (boto3 on moto), so all three run the same wiring.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import socket
from collections.abc import Callable
from functools import cache
from typing import Any

from callstream import settings
from callstream.adapters import secrets_manager
from callstream.adapters.dynamodb import DynamoLeases, DynamoRegistry
from callstream.audio.vad import Segmenter
from callstream.control.tokens import TokenClaims, check_control_auth, verify_token
from callstream.exceptions import ConfigError
from callstream.wiring import client
from callstream.wiring import token_key as read_token_key
from stream_server import protection, recognition_worker
from stream_server.agents import Agent
from stream_server.ports import Protection
from stream_server.recognition import Spawn, Worker
from stream_server.server import ServerServices, StreamServer
from stream_server.tuning import Tuning


def grant_verifier(key: bytes) -> Callable[[str, float], TokenClaims]:
    """``verify(token, now) -> TokenClaims`` with the task's key (:func:`verify_token`)."""
    return lambda token, now: verify_token(token, key, now)


def recognition_spawner(backend: str) -> Spawn:
    """Start the live-recognition worker as a process of its own.

    Spawned, not forked: nothing of the server's loop, sockets or threads is inherited.
    """
    context = multiprocessing.get_context("spawn")

    def spawn(sock: socket.socket) -> Worker:
        worker = context.Process(
            target=recognition_worker.main, args=(sock, backend), name="recognition", daemon=True
        )
        worker.start()
        return worker

    return spawn


def assistant_factory(
    cfg: settings.AgentSettings, secrets: Callable[[str], str] | None = None
) -> Callable[[TokenClaims], Agent]:
    """``make(grant)``: an assistant with the stream's prompt, voice and model, else the defaults.

    Models and voices are built once per spec and shared by the task's calls (their clients
    and espeak-ng's library are thread-safe or locked).

    Raises:
        ConfigError: a spec names what this task cannot build (an unknown kind, no script).
    """
    from stream_server.assistant import AssistantAgent, AssistantSettings
    from stream_server.turns import TurnSettings

    read_secret = secrets or _secret_string
    model = cache(lambda spec: _model(spec, cfg, read_secret))
    voice = cache(lambda spec: _voice(spec, cfg))
    model(cfg.assistant_model), voice(cfg.assistant_voice)  # a wrong default fails at start
    turn_settings = TurnSettings(
        quiet_ms=cfg.assistant_quiet_ms, barge_in_ms=cfg.assistant_barge_in_ms
    )

    def make(grant: TokenClaims) -> Agent:
        return AssistantAgent(
            model(grant.model or cfg.assistant_model),
            voice(grant.voice or cfg.assistant_voice),
            AssistantSettings(
                system_prompt=grant.prompt or cfg.assistant_prompt,
                greeting=cfg.assistant_greeting,
                turns=turn_settings,
            ),
        )

    return make


def _secret_string(secret_id: str) -> str:
    return secrets_manager.api_key(secret_id, lambda: client("secretsmanager"))


def _model(spec: str, cfg: settings.AgentSettings, read_secret: Callable[[str], str]) -> Any:
    kind, _, name = spec.partition(":")
    if kind == "scripted":
        from stream_server.scripted_model import DEFAULT_SCRIPT, ScriptedModel, load_script

        script = load_script(cfg.assistant_script or DEFAULT_SCRIPT)
        return ScriptedModel(script, first_token_s=cfg.assistant_model_delay_ms / 1000)
    from callstream.adapters.language_models import BedrockModel, OpenAIModel

    if kind == "bedrock":
        return BedrockModel(client("bedrock-runtime"), name, cfg.model_timeout_s)
    if kind == "openai":
        key = read_secret(cfg.openai_secret) if cfg.openai_secret else None
        return OpenAIModel(cfg.openai_base_url, name, key, cfg.model_timeout_s)
    raise ConfigError(f"no language model {spec[:60]!r}: scripted, bedrock:<id> or openai:<name>")


def _voice(spec: str, cfg: settings.AgentSettings) -> Any:
    from stream_server.voices import Delayed, EspeakVoice, PollyVoice

    kind, _, name = spec.partition(":")
    if kind == "espeak":
        voice: Any = EspeakVoice(name or "en-us")
        return (
            Delayed(voice, cfg.assistant_voice_delay_ms / 1000, cfg.assistant_voice_pace)
            if cfg.assistant_voice_delay_ms or cfg.assistant_voice_pace
            else voice
        )
    if kind == "polly":
        return PollyVoice(client("polly"), name or "Joanna")
    raise ConfigError(f"no voice {spec[:60]!r}: espeak:<voice> or polly:<VoiceId>")


def build_server(
    server_settings: settings.ServerSettings | None = None,
    *,
    kinesis: Any = None,
    dynamodb: Any = None,
    token_key: bytes | None = None,
    protect: Protection | None = None,
    tuning: Tuning | None = None,
    agent_settings: settings.AgentSettings | None = None,
) -> StreamServer:
    """Wire a stream server; anything not given comes from settings and cached clients."""
    cfg = server_settings or settings.load(settings.ServerSettings)
    if cfg.live_transcription == "local" and importlib.util.find_spec("pocketsphinx") is None:
        raise ConfigError(
            "CALLSTREAM_LIVE_TRANSCRIPTION=local needs pocketsphinx, which this image does not "
            "ship: local is the embedded stack's recogniser (off, or aws: Transcribe streaming)"
        )
    limits = settings.load(settings.AudioSettings).limits()
    key = token_key or read_token_key()
    kinesis = kinesis or client("kinesis")
    dynamodb = dynamodb or client("dynamodb")
    services = ServerServices(
        put_records=kinesis.put_records,
        registry=DynamoRegistry(dynamodb, cfg.registry_table),
        leases=DynamoLeases(dynamodb, cfg.nonce_table),
        verify_token=grant_verifier(key),
        authorize_control=lambda stream_id, header: check_control_auth(stream_id, header, key),
        protection=protect or protection.from_environment(),
        segmenter_factory=lambda rate, track: Segmenter(rate, track, limits),
        recognition=(
            None if cfg.live_transcription == "off" else recognition_spawner(cfg.live_transcription)
        ),
        # PocketSphinx decodes in the worker: a worker per core, one left for the ingest loop;
        # Transcribe's sessions are network, not CPU: one worker holds them all
        recognition_workers=(
            1 if cfg.live_transcription == "aws" else max(1, (os.cpu_count() or 2) - 1)
        ),
        assistant=assistant_factory(agent_settings or settings.load(settings.AgentSettings)),
    )
    return StreamServer(cfg, services, limits=limits, tuning=tuning)
