"""The Lambdas' composition root: settings → clients → adapters → each consumer's services.

Every factory is cached here, and only here: a warm invocation reuses the clients, secrets and
services the cold one built, and :func:`reset` (the one reset) forgets them all (tests, the
embedded stack between environments). Nothing else in the package builds an adapter or keeps
one: the domain gets its ports from here (the stream server's root, ``stream_server.wiring``,
takes its clients and secrets from here too).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import urllib3

from callstream import settings
from callstream.adapters import clients, secrets_manager
from callstream.adapters.dynamodb import (
    DynamoConsoleStore,
    DynamoOnceStore,
    DynamoRegistry,
    DynamoTranscripts,
)
from callstream.adapters.eventbridge import EventBridgeBus
from callstream.adapters.idempotency import DynamoOnce
from callstream.adapters.kinesis import KinesisRecordLog
from callstream.adapters.language_models import BedrockModel
from callstream.adapters.s3_recordings import S3Recordings
from callstream.adapters.sentiment_models import ComprehendModel, VaderModel
from callstream.adapters.tasks import HttpTasks
from callstream.adapters.vobiz import VobizClient
from callstream.analytics.digest import ExtractiveSummarizer, ModelSummarizer
from callstream.analytics.recording import RecordingServices
from callstream.analytics.sentiment import SentimentServices
from callstream.analytics.summary import SummaryServices
from callstream.analytics.sweeper import SweeperServices
from callstream.analytics.transcripts import TranscriptServices
from callstream.console.feed import FeedServices
from callstream.console.views import ConsoleServices
from callstream.control.services import ControlServices
from callstream.exceptions import ConfigError
from callstream.ports import SentimentModel, Summarizer, Transcriber, Vobiz, VobizCredentials


@cache
def client(service: str) -> Any:
    """The process's boto3 client for ``service``."""
    return clients.make(service)


@cache
def token_key() -> bytes:
    """The key that signs tokens and control credentials, read once per process."""
    return secrets_manager.token_key(
        settings.load(settings.SecretsSettings), lambda: client("secretsmanager")
    )


@cache
def vobiz_credentials() -> VobizCredentials:
    """The Vobiz REST credentials, read once per process."""
    return secrets_manager.vobiz_credentials(
        settings.load(settings.SecretsSettings), lambda: client("secretsmanager")
    )


#: The offline recogniser's model, loaded once per process: it depends on nothing a reset
#: changes, and loading it is the slowest thing a cold start does.
offline_transcriber = cache(lambda: _pocketsphinx())


def _pocketsphinx() -> Transcriber:
    from callstream.adapters.transcribe_local import PocketSphinxTranscriber

    return PocketSphinxTranscriber()


@cache
def http_pool() -> urllib3.PoolManager:
    """The process's HTTP connection pool (Vobiz, the tasks)."""
    return urllib3.PoolManager()


@cache
def control_services() -> ControlServices:
    """The control plane's services (the operator routes and Vobiz's webhooks)."""
    cfg = settings.load(settings.ApiSettings)
    dynamodb = client("dynamodb")

    def vobiz() -> Vobiz:
        return VobizClient(
            cfg.vobiz_api_url,
            vobiz_credentials(),
            pool=http_pool(),
            timeout_s=cfg.vobiz_timeout_s,
        )

    return ControlServices(
        registry=DynamoRegistry(dynamodb, cfg.registry_table),
        once=DynamoOnceStore(dynamodb, cfg.nonce_table),
        events=EventBridgeBus(client("events"), cfg.event_bus),
        config=cfg,
        tasks=HttpTasks(http_pool()),
        vobiz_factory=vobiz,
        credentials=vobiz_credentials,
        token_key_source=token_key,
        starts=DynamoOnce(
            dynamodb, cfg.idempotency_table, key_path="[key, call_uuid]", payload_path="request"
        ),
    )


@cache
def recording_services() -> RecordingServices:
    """store_recording's services."""
    cfg = settings.load(settings.ConsumerSettings)
    return RecordingServices(
        store=S3Recordings(client("s3"), cfg.recordings_bucket),
        registry=DynamoRegistry(client("dynamodb"), cfg.registry_table),
        events=EventBridgeBus(client("events"), cfg.event_bus),
    )


def make_transcriber(name: str, region: str | None = None) -> Transcriber:
    """The transcriber backend called ``name`` (``aws`` or ``local``).

    Raises:
        ConfigError: an unknown backend.
    """
    if name == "local":
        return offline_transcriber()
    if name == "aws":
        from callstream.adapters.transcribe_aws import AwsTranscriber

        return AwsTranscriber(region or "us-east-1")
    raise ConfigError(f"CALLSTREAM_TRANSCRIBER must be aws or local, not {name!r}")


@cache
def transcript_services() -> TranscriptServices:
    """transcribe_utterance's services (the offline recogniser's model loads here, once)."""
    cfg = settings.load(settings.ConsumerSettings)
    return TranscriptServices(
        transcriber=make_transcriber(cfg.transcriber, os.environ.get("AWS_REGION")),
        transcripts=DynamoTranscripts(client("dynamodb"), cfg.transcripts_table),
        events=EventBridgeBus(client("events"), cfg.event_bus),
        language=cfg.language,
        quarantine=S3Recordings(client("s3"), cfg.recordings_bucket),
    )


def make_sentiment_model(name: str) -> SentimentModel:
    """The sentiment backend called ``name`` (``aws`` or ``local``).

    Raises:
        ConfigError: an unknown backend.
    """
    if name == "local":
        return VaderModel()
    if name == "aws":
        return ComprehendModel(client("comprehend"))
    raise ConfigError(f"CALLSTREAM_SENTIMENT must be aws or local, not {name!r}")


@cache
def sentiment_services() -> SentimentServices:
    """analyze_sentiment's services."""
    cfg = settings.load(settings.ConsumerSettings)
    return SentimentServices(
        model=make_sentiment_model(cfg.sentiment),
        transcripts=DynamoTranscripts(client("dynamodb"), cfg.transcripts_table),
        events=EventBridgeBus(client("events"), cfg.event_bus),
        threshold=cfg.alert_negative_score,
    )


def make_summarizer(name: str) -> Summarizer:
    """The digest writer called ``name`` (``extractive`` or ``bedrock:<model id>``)."""
    if name.startswith("bedrock:"):  # the voice agent's model adapter, without its tools
        model_id = name.removeprefix("bedrock:")
        model = BedrockModel(client("bedrock-runtime"), model_id, 20.0, tools=False, max_tokens=600)
        return ModelSummarizer(model, name)
    return ExtractiveSummarizer()


@cache
def summary_services() -> SummaryServices:
    """finalize_call's services."""
    cfg = settings.load(settings.ConsumerSettings)
    dynamodb = client("dynamodb")
    return SummaryServices(
        summarizer=make_summarizer(cfg.summarizer),
        store=S3Recordings(client("s3"), cfg.recordings_bucket),
        transcripts=DynamoTranscripts(dynamodb, cfg.transcripts_table),
        registry=DynamoRegistry(dynamodb, cfg.registry_table),
        events=EventBridgeBus(client("events"), cfg.event_bus),
    )


@cache
def sweeper_services() -> SweeperServices:
    """sweep_streams' services."""
    cfg = settings.load(settings.SweeperSettings)
    return SweeperServices(
        registry=DynamoRegistry(client("dynamodb"), cfg.registry_table),
        audio=KinesisRecordLog(client("kinesis"), cfg.audio_stream),
        tasks=HttpTasks(http_pool()),
        transcripts=DynamoTranscripts(client("dynamodb"), cfg.transcripts_table),
        utterances=KinesisRecordLog(client("kinesis"), cfg.utterance_stream),
    )


@cache
def console_services() -> ConsoleServices:
    """The console API's services (read-only)."""
    cfg = settings.load(settings.ConsoleSettings)
    return ConsoleServices(
        store=DynamoConsoleStore(client("dynamodb"), cfg.console_table),
        recordings=S3Recordings(client("s3"), cfg.recordings_bucket),
        transcripts=DynamoTranscripts(client("dynamodb"), cfg.transcripts_table),
        config=cfg,
    )


@cache
def feed_services() -> FeedServices:
    """console_feed's services."""
    cfg = settings.load(settings.ConsoleSettings)
    return FeedServices(store=DynamoConsoleStore(client("dynamodb"), cfg.console_table))


FACTORIES = (
    http_pool,
    control_services,
    recording_services,
    transcript_services,
    sentiment_services,
    summary_services,
    sweeper_services,
    console_services,
    feed_services,
)


def reset() -> None:
    """Forget clients, secrets and every service built (a new environment)."""
    for factory in (client, token_key, vobiz_credentials, *FACTORIES):
        factory.cache_clear()
