"""No secret and no call audio in any log line, at any level, in any process.

Two layers:

* **Library loggers are capped** at INFO (:func:`cap_libraries`): at DEBUG, botocore logs whole
  request and response bodies (a ``GetSecretValue`` answer with the secret in it, the base64
  audio of every ``PutRecords``), websockets every frame. Nothing of ours needs their DEBUG.
* **A redaction filter on every handler** (:class:`Redactor`, defence in depth): a known secret
  value (registered by :mod:`callstream.credentials` when it loads one) becomes ``[redacted]``,
  and a base64 run long enough to be audio becomes ``[base64: N chars]``.

:func:`install` applies both; it is called when a process configures logging (the stream
server, the embedded stack) and when a secret is loaded (every Lambda that reads one), and is
idempotent.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Final

#: Loggers of libraries that can log bodies, headers or frames at DEBUG.
LIBRARIES: Final = (
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "aws_xray_sdk",
    "websockets",
    "picows",
    "amazon_transcribe",
    "awscrt",
)
#: 192 base64 characters are 144 bytes: less than 10 ms of μ-law. Ids, tokens and ARNs are
#: shorter (a WebSocket token is at most 512, and it is registered as a secret on its own path).
_BASE64_RUN: Final = re.compile(r"[A-Za-z0-9+/]{192,}={0,2}")


class Redactor(logging.Filter):
    """Rewrites a record whose message holds a registered secret or a long base64 run."""

    def __init__(self) -> None:
        """Start with no secret registered."""
        super().__init__("callstream.redact")
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, secret: str) -> None:
        """Redact ``secret`` from now on (values under 8 characters are not worth matching)."""
        if len(secret) >= 8:
            with self._lock:
                self._secrets = self._secrets | {secret}

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it be
            return True
        clean = _BASE64_RUN.sub(lambda m: f"[base64: {len(m[0])} chars]", message)
        for secret in self._secrets:
            if secret in clean:
                clean = clean.replace(secret, "[redacted]")
        if clean != message:
            record.msg, record.args = clean, None
        return True


REDACTOR: Final = Redactor()


def cap_libraries(level: int = logging.INFO) -> None:
    """Keep library loggers at ``level`` or above, whatever the root level is."""
    for name in LIBRARIES:
        library = logging.getLogger(name)
        if library.getEffectiveLevel() < level or library.level == logging.NOTSET:
            library.setLevel(max(level, library.level))


def install() -> None:
    """Cap the libraries and put the redactor on every handler that exists now."""
    cap_libraries()
    loggers = [logging.getLogger()] + [
        item
        for item in logging.Logger.manager.loggerDict.values()
        if isinstance(item, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if REDACTOR not in handler.filters:
                handler.addFilter(REDACTOR)


def protect_secret(secret: str) -> None:
    """Register a secret this process now holds, and make sure logging is protected."""
    REDACTOR.register(secret)
    install()
