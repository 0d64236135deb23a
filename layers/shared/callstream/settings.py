"""Typed settings, read from ``CALLSTREAM_*`` environment variables on first use.

Nothing is read at import time. Each component has its own settings class so that a Lambda
function only needs the variables it uses; :func:`load` builds one instance of a class and
turns a missing or invalid value into a :class:`~callstream.exceptions.ConfigError` that names
the environment variable. Required values have no defaults. Nothing here is cached: the
composition roots (``callstream.wiring``, ``stream_server.wiring``) keep what they build.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callstream.exceptions import ConfigError
from callstream.vocabulary import MODEL_PATTERN, VOICE_PATTERN, AudioLimits

ENV_PREFIX = "CALLSTREAM_"
_LIMITS = AudioLimits()


class _Base(BaseSettings):
    # extra="forbid" refuses a keyword that is no setting (the environment is only read for fields)
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")


class AudioSettings(_Base):
    """How frames become Kinesis records and utterances, as a deployer sets it.

    Validated, then handed to the audio core as an :class:`~callstream.vocabulary.AudioLimits`
    (:meth:`limits`), whose defaults these are.
    """

    record_max_ms: int = Field(
        _LIMITS.record_max_ms,
        ge=20,
        le=60_000,
        description="Longest audio span in one record: bounds what a crashed task can lose. "
        "A record this cap ends also takes the frames that still fit in the kilobyte on-demand "
        "Kinesis bills it for (1 s of μ-law → 1.12 s). On provisioned streams (25 KB PUT units) "
        "3200 brings μ-law within a few % of the minimum, at up to 3 s lost on a crash.",
    )
    l16_byte_order: Literal["auto", "big", "little"] = Field(
        _LIMITS.l16_byte_order,
        description="Byte order of inbound L16. Vobiz's documentation says big-endian, Vobiz's "
        "own reference code sends little-endian: auto decides per track from the audio "
        "(speech is smooth in the right order), big or little forces one.",
    )
    vad_mode: int = Field(
        _LIMITS.vad_mode, ge=0, le=3, description="WebRTC VAD aggressiveness (0-3)."
    )
    utterance_max_ms: int = Field(
        _LIMITS.utterance_max_ms,
        ge=1_000,
        le=60_000,
        description="An utterance longer than this is split. At any rate it is also cut where "
        "its record would pass Kinesis's 1 MiB (21.8 s of L16 at 24 kHz).",
    )

    @model_validator(mode="after")
    def _windows_fit(self) -> AudioSettings:
        if _LIMITS.vad_preroll_ms + _LIMITS.vad_end_ms >= self.utterance_max_ms:
            raise ValueError("utterance_max_ms must exceed the VAD's pre-roll and hangover")
        return self

    def limits(self) -> AudioLimits:
        """The value the audio core takes."""
        return AudioLimits(**self.model_dump())


class ServerSettings(_Base):
    """The Fargate stream server (``services/stream_server``)."""

    audio_stream: str = Field(description="Kinesis stream for audio and session events.")
    utterance_stream: str = Field(description="Kinesis stream for utterances.")
    registry_table: str = Field(description="DynamoDB stream registry table.")
    nonce_table: str = Field(description="DynamoDB table of spent tokens and nonces.")
    host: str = Field("0.0.0.0", description="Address the WebSocket and health port binds.")  # noqa: S104
    port: int = Field(8080, ge=0, le=65_535, description="WebSocket + /healthz port (0: any).")
    control_port: int = Field(
        8081, ge=0, le=65_535, description="Internal control endpoint port (0: any)."
    )
    task_address: str | None = Field(
        None,
        description="Base URL other services reach this task's control endpoint at; "
        "derived from the ECS task metadata or host/port when unset.",
    )
    agent: str = Field(
        "none", description="Default talk-back agent: none, echo, prompt, assistant."
    )
    prompt_wav: str | None = Field(None, description="WAV greeting of the prompt agent.")
    drain_deadline_s: float = Field(
        100.0, gt=0, le=115, description="SIGTERM: longest wait for live calls (ECS allows 120 s)."
    )
    live_transcription: Literal["off", "local", "aws"] = Field(
        "off",
        description="Live recognition in worker processes beside the ingest loop: off, local "
        "(PocketSphinx, the embedded stack's) or aws (Amazon Transcribe streaming, a stereo "
        "session per call): transcript records on UtteranceStream, whose finals "
        "transcribe_utterance stores (docs/transcription.md).",
    )
    language: str = Field(
        "en-US", description="Language of live recognition, unless a stream asks for its own."
    )
    max_unacked_ms: int = Field(
        3000,
        ge=500,
        le=60_000,
        description="Audio a stream may have not yet acknowledged by Kinesis (queued or in "
        "flight) before its socket is paused: what a crashed task can lose, whatever Kinesis "
        "does (plus the record still open, at most CALLSTREAM_RECORD_MAX_MS per track).",
    )


class AgentSettings(_Base):
    """The ``assistant`` voice agent's defaults (a stream may choose a prompt, voice, model)."""

    assistant_model: str = Field(
        "scripted",
        pattern=MODEL_PATTERN,
        description="Language model: scripted (offline, CALLSTREAM_ASSISTANT_SCRIPT), "
        "bedrock:<model id> (Converse streaming) or openai:<model> (an OpenAI-compatible "
        "chat-completions endpoint, CALLSTREAM_OPENAI_BASE_URL).",
    )
    assistant_voice: str = Field(
        "espeak:en-us",
        pattern=VOICE_PATTERN,
        description="Voice: espeak:<voice> (offline espeak-ng) or polly:<VoiceId> (neural).",
    )
    assistant_prompt: str = Field(
        "You are a helpful phone assistant. Answer in one or two short spoken sentences.",
        min_length=1,
        max_length=4000,
        description="System prompt, unless a stream gives its own.",
    )
    assistant_greeting: str = Field(
        "Hello, thank you for calling. How can I help you today?",
        max_length=500,
        description="What the assistant says first (empty: it waits for the caller).",
    )
    assistant_script: str | None = Field(
        None,
        description="The scripted model's intents (default: samples/assistant_script.yaml).",
    )
    assistant_quiet_ms: int = Field(
        300, ge=100, le=3000, description="Quiet after the caller's words that ends their turn."
    )
    assistant_barge_in_ms: int = Field(
        160,
        ge=40,
        le=2000,
        description="Loud caller voice over the agent this long interrupts it (a 100 ms cough "
        "is 100-120 ms of it).",
    )
    assistant_model_delay_ms: int = Field(
        0, ge=0, le=5000, description="Added before the scripted model's first word (bench)."
    )
    assistant_voice_delay_ms: int = Field(
        0, ge=0, le=5000, description="Added before the offline voice's first audio (bench)."
    )
    assistant_voice_pace: float = Field(
        0,
        ge=0,
        le=100,
        description="The offline voice makes its audio this many times faster than real time, "
        "100 ms at a time, as a cloud voice streams it (0: all at once; bench).",
    )
    openai_base_url: str = Field(
        "https://api.openai.com/v1",
        description="An OpenAI-compatible API's base URL (…/chat/completions is appended).",
    )
    openai_secret: str | None = Field(
        None, description="Secrets Manager id of the OpenAI-compatible API's key (SecretString)."
    )
    model_timeout_s: float = Field(
        10.0, gt=0, le=60, description="Longest wait for a model's or a voice's next piece."
    )


class TranscribeSettings(_Base):
    """Amazon Transcribe streaming, as the recognition workers use it (live_transcription=aws)."""

    transcribe_region: str | None = Field(
        None, description="Transcribe's region (default: the task's AWS_REGION)."
    )
    transcribe_endpoint: str | None = Field(
        None,
        description="Another streaming endpoint than the region's wss://…:8443 (the tests' "
        "fake Transcribe, ws://127.0.0.1:port).",
    )
    transcribe_vocabulary: str | None = Field(
        None, description="A custom vocabulary (made beforehand, same language) by name."
    )
    transcribe_redact_pii: bool = Field(
        False,
        description="Redact PII in finals (content-redaction-type=PII). Transcribe redacts "
        "finals only: a redacting stream's partials are not written.",
    )
    transcribe_rotate_after_s: int = Field(
        13_800,
        ge=60,
        le=13_800,
        description="A session is rotated after this much audio, at its first quiet moment "
        "(Transcribe ends one at 4 h).",
    )


class ApiSettings(_Base):
    """The control-plane Lambda functions."""

    registry_table: str = Field(description="DynamoDB stream registry table.")
    nonce_table: str = Field(description="DynamoDB table of spent tokens, nonces, dedupe keys.")
    idempotency_table: str = Field(description="DynamoDB table of Powertools idempotency.")
    event_bus: str = Field(description="EventBridge bus name.")
    ws_base_url: str = Field(description="wss:// base URL of the stream servers (the ALB).")
    public_base_url: str | None = Field(
        None,
        description="https:// base URL Vobiz calls back (a custom domain); empty: the URL each "
        "request came in on.",
    )
    recordings_bucket: str | None = Field(None, description="S3 bucket of recordings (links).")
    vobiz_api_url: str = Field("https://api.vobiz.ai", description="Vobiz REST base URL.")
    vobiz_timeout_s: float = Field(5.0, gt=0, le=25, description="Vobiz REST read timeout.")
    token_ttl_s: int = Field(3600, ge=60, le=86_400, description="WebSocket token lifetime.")
    answer_agent: str = Field("none", description="Agent for streams started by answer XML.")
    answer_content_type: str = Field(
        "audio/x-mulaw;rate=8000", description="contentType of the answer XML's <Stream>."
    )
    answer_bidirectional: bool = Field(
        True,
        description="bidirectional of the answer <Stream> (with keepCallAlive: the stream keeps "
        "the call up). False listens only, and needs CALLSTREAM_ANSWER_REDIRECT_URL or "
        "CALLSTREAM_ANSWER_DIAL for the rest of the call flow.",
    )
    answer_redirect_url: str | None = Field(
        None,
        description="A unidirectional answer continues with <Redirect> to this URL (the rest "
        "of your call flow); the answer URL's redirect_url query overrides it.",
    )
    answer_dial: str | None = Field(
        None,
        description="A unidirectional answer continues with <Dial> to this number or SIP URI; "
        "the answer URL's dial query overrides it.",
    )
    accept_url_only_signatures: bool = Field(
        False,
        description="Accept the URL-only V3 signature on POSTs (it does not cover the body).",
    )
    allow_unsigned_callbacks: bool = Field(
        False,
        description="Accept Vobiz requests without a signature (logged on every request). "
        "Only for accounts whose URLs have no authentication configured.",
    )


class ConsumerSettings(_Base):
    """The analytics consumers (Kinesis and EventBridge Lambda functions)."""

    recordings_bucket: str = Field(description="S3 bucket of segments, events, recordings.")
    registry_table: str = Field(description="DynamoDB stream registry table.")
    transcripts_table: str = Field(description="DynamoDB transcripts and sentiment table.")
    event_bus: str = Field(description="EventBridge bus name.")
    transcriber: str = Field("aws", description="Speech recogniser: aws (Transcribe) or local.")
    sentiment: str = Field("aws", description="Sentiment model: aws (Comprehend) or local.")
    summarizer: str = Field(
        "extractive",
        pattern=r"^(extractive|bedrock:[A-Za-z0-9._:/-]{1,120})$",
        description="Who writes a call's digest: extractive, or bedrock:<model id> (Converse).",
    )
    language: str = Field(
        "en-US",
        description="Transcription and sentiment language, unless a stream asks for its own.",
    )
    alert_negative_score: float = Field(
        0.5, ge=0, le=1, description="Caller rolling negativity (0-1) that raises an alert."
    )


class ConsoleSettings(_Base):
    """The live console (its API and the feed that keeps its timeline)."""

    console_table: str = Field(description="DynamoDB table of the console's timeline and cards.")
    registry_table: str = Field(description="DynamoDB stream registry table.")
    transcripts_table: str = Field(description="DynamoDB transcripts and sentiment table.")
    recordings_bucket: str = Field(description="S3 bucket of recordings.")
    console_auth: Literal["bearer", "cognito"] = Field(
        "bearer",
        description="How the console's users sign in: cognito (the stack's user pool, in AWS) "
        "or bearer (the embedded stack's token).",
    )
    console_client_id: str = Field("", description="The Cognito user pool client of the page.")
    console_cognito_url: str = Field(
        "",
        pattern=r"^(https?://[A-Za-z0-9.:\-\[\]]+/?)?$",
        description="Where the page signs in and refreshes its token (empty: Cognito's own "
        "https://cognito-idp.<region>.amazonaws.com/; a stand-in's origin in tests).",
    )


class SweeperSettings(_Base):
    """The sweeper (ends streams whose task died, gives back live utterances never finished)."""

    registry_table: str = Field(description="DynamoDB stream registry table.")
    audio_stream: str = Field(description="Kinesis stream for audio and session events.")
    utterance_stream: str = Field(description="Kinesis stream for utterances.")
    transcripts_table: str = Field(description="DynamoDB transcripts and sentiment table.")


class SecretsSettings(_Base):
    """Where the secrets come from (``callstream.adapters.secrets_manager`` reads them)."""

    vobiz_secret_arn: str | None = Field(None, description="Secrets Manager: Vobiz credentials.")
    token_secret_arn: str | None = Field(None, description="Secrets Manager: token signing key.")
    vobiz_auth_id: str | None = Field(None, description="Local only: Vobiz auth id.")
    vobiz_auth_token: SecretStr | None = Field(None, description="Local only: Vobiz auth token.")
    token_key: SecretStr | None = Field(None, description="Local only: token key (≥ 16 bytes).")


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S]) -> S:
    """Return the settings of ``cls``, read from the environment now (the roots keep them).

    Raises:
        ConfigError: a required variable is missing or a value is invalid; the message names
            the environment variable(s).
    """
    try:
        return cls()
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = ".".join(str(part) for part in item["loc"])
            variable = f"{ENV_PREFIX}{name.upper()}" if name else cls.__name__
            problems.append(f"{variable}: {item['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
