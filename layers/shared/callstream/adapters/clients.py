"""boto3 clients as callstream configures them (``callstream.wiring.client`` keeps one each).

boto3 honours ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), which is how the
embedded stack points every client at its moto server; nothing here knows about it.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=10,
    max_pool_connections=32,
)


def make(service: str) -> Any:
    """A boto3 client for ``service`` (thread-safe once created)."""
    # S3: SigV4 everywhere, so that pre-signed URLs work on a KMS-encrypted bucket
    config = _CONFIG.merge(Config(signature_version="s3v4")) if service == "s3" else _CONFIG
    return boto3.client(service, config=config)  # type: ignore[call-overload]
