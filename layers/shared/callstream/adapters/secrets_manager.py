"""Secrets: the Vobiz credentials, the key that signs WebSocket tokens, a model's API key.

In AWS they live in Secrets Manager (``CALLSTREAM_VOBIZ_SECRET_ARN``: JSON ``{"auth_id",
"auth_token"}``; ``CALLSTREAM_TOKEN_SECRET_ARN``: JSON ``{"key"}``). Locally (the embedded
stack, tests) they may come straight from
``CALLSTREAM_VOBIZ_AUTH_ID``/``CALLSTREAM_VOBIZ_AUTH_TOKEN``/``CALLSTREAM_TOKEN_KEY``; an ARN,
when set, wins. Values never reach a log line: only their names do. Library loggers are capped
before a secret is fetched (botocore logs the answer's body at DEBUG), and every value loaded is
registered with :mod:`callstream.logsafety` for redaction. ``callstream.wiring`` reads each once
per process and keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from callstream import logsafety
from callstream.exceptions import ConfigError
from callstream.ports import VobizCredentials
from callstream.settings import SecretsSettings


def _secret_json(arn: str, sm: Any) -> dict[str, Any]:
    try:
        value = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    except (KeyError, ValueError) as error:
        raise ConfigError(f"secret {arn} is not a JSON object: {type(error).__name__}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"secret {arn} is not a JSON object")
    return value


def token_key(cfg: SecretsSettings, secretsmanager: Callable[[], Any]) -> bytes:
    """The key that signs WebSocket tokens and control credentials.

    Raises:
        ConfigError: neither CALLSTREAM_TOKEN_SECRET_ARN nor CALLSTREAM_TOKEN_KEY is set, or
            the key is shorter than 16 bytes.
    """
    logsafety.install()  # before the fetch: its answer carries the secret
    if cfg.token_secret_arn:
        key = str(_secret_json(cfg.token_secret_arn, secretsmanager()).get("key", ""))
    elif cfg.token_key is not None:
        key = cfg.token_key.get_secret_value()
    else:
        raise ConfigError(
            "CALLSTREAM_TOKEN_SECRET_ARN (or CALLSTREAM_TOKEN_KEY locally) is required"
        )
    if len(key) < 16:
        raise ConfigError("the token key must be at least 16 characters")
    logsafety.protect_secret(key)
    return key.encode()


def vobiz_credentials(cfg: SecretsSettings, secretsmanager: Callable[[], Any]) -> VobizCredentials:
    """The Vobiz auth id and token.

    Raises:
        ConfigError: no source is configured, or the secret lacks a field.
    """
    logsafety.install()  # before the fetch: its answer carries the secret
    if cfg.vobiz_secret_arn:
        value = _secret_json(cfg.vobiz_secret_arn, secretsmanager())
        try:
            found = VobizCredentials(str(value["auth_id"]), str(value["auth_token"]))
        except KeyError as missing:
            raise ConfigError(f"secret {cfg.vobiz_secret_arn} lacks {missing}") from None
    elif cfg.vobiz_auth_id and cfg.vobiz_auth_token is not None:
        found = VobizCredentials(cfg.vobiz_auth_id, cfg.vobiz_auth_token.get_secret_value())
    else:
        raise ConfigError(
            "CALLSTREAM_VOBIZ_SECRET_ARN (or CALLSTREAM_VOBIZ_AUTH_ID and "
            "CALLSTREAM_VOBIZ_AUTH_TOKEN locally) is required"
        )
    logsafety.protect_secret(found.auth_token)
    return found


def api_key(secret_id: str, secretsmanager: Callable[[], Any]) -> str:
    """An API key kept whole as a secret's SecretString, redacted from every log line after.

    The voice agent's OpenAI-compatible model reads its key here.

    Raises:
        ConfigError: the secret is empty.
    """
    logsafety.install()  # before the fetch: its answer carries the secret
    answer = secretsmanager().get_secret_value(SecretId=secret_id)
    key = str(answer.get("SecretString") or "").strip()
    if not key:
        raise ConfigError(f"secret {secret_id} holds no API key")
    logsafety.protect_secret(key)  # as it is sent, without the newline a console paste adds
    return key
