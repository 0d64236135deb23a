"""Cached boto3 clients: created on first use, reused across warm Lambda invocations.

boto3 honours ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), which is how the
embedded stack points every client at its moto server; nothing here knows about it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=10,
    max_pool_connections=32,
)


@cache
def client(service: str) -> Any:
    """The process's boto3 client for ``service`` (thread-safe once created)."""
    # S3: SigV4 everywhere, so that pre-signed URLs work on a KMS-encrypted bucket
    config = _CONFIG.merge(Config(signature_version="s3v4")) if service == "s3" else _CONFIG
    return boto3.client(service, config=config)  # type: ignore[call-overload]


def reset() -> None:
    """Forget every client (tests that switch endpoints)."""
    client.cache_clear()
