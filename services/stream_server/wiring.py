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
from typing import Any

from callstream import settings
from callstream.adapters.dynamodb import DynamoLeases, DynamoRegistry
from callstream.audio.vad import Segmenter
from callstream.control.tokens import TokenClaims, check_control_auth, verify_token
from callstream.exceptions import ConfigError
from callstream.wiring import client
from callstream.wiring import token_key as read_token_key
from stream_server import protection, recognition_worker
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


def build_server(
    server_settings: settings.ServerSettings | None = None,
    *,
    kinesis: Any = None,
    dynamodb: Any = None,
    token_key: bytes | None = None,
    protect: Protection | None = None,
    tuning: Tuning | None = None,
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
    )
    return StreamServer(cfg, services, limits=limits, tuning=tuning)
