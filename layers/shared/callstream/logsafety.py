"""No secret and no call audio in any log line, at any level, in any process.

Two layers:

* **Library loggers are capped** at WARNING (:func:`cap_libraries`): at DEBUG, botocore logs whole
  request and response bodies (a ``GetSecretValue`` answer with the secret in it, the base64
  audio of every ``PutRecords``), websockets every frame. Nothing of ours needs their DEBUG.
* **A redaction filter on every handler** (:class:`Redactor`, defence in depth): a known secret
  value (registered by :mod:`callstream.adapters.secrets_manager` when it loads one) becomes
  ``[redacted]``, and a base64 run long enough to be audio becomes ``[base64: N chars]``.

:func:`install` applies both; it is called when a process configures logging (the stream
server, the embedded stack) and when a secret is loaded (every Lambda that reads one), and is
idempotent.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
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


def cap_libraries(level: int = logging.WARNING) -> None:
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


class Throttle:
    """At most one log line per kind per interval: what a peer repeats costs a count, not a line.

    The first occurrence of a kind is logged at once; later ones within ``interval_s`` are
    counted, and the next line of that kind (or :meth:`flush`) says how many there were. A
    flood of refused messages thus writes a few lines per interval, whatever its size.
    """

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Log through ``logger``."""
        self._log = logger
        self._interval = interval_s
        self._clock = clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        """Log ``message`` (a %-format) now, or count it under ``kind`` until the interval ends.

        ``kind`` is one of our own codes (never text from the peer), so the counts stay few.
        """
        self.log(logging.WARNING, kind, message, *args)

    def log(
        self, level: int, kind: str, message: str, *args: object, exc_info: bool = False
    ) -> None:
        """:meth:`warning` at another level (``exc_info``: with the traceback being handled)."""
        now = self._clock()
        if now < self._next.get(kind, 0.0):
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._next[kind] = now + self._interval
        held = self._held.pop(kind, 0)
        suffix = f" (and {held} more {kind} since the last line)" if held else ""
        self._log.log(level, message + suffix, *args, exc_info=exc_info)

    def flush(self) -> None:
        """Log the counts still held (at the end of a connection)."""
        for kind, held in sorted(self._held.items()):
            self._log.warning("%d more %s not logged one by one", held, kind)
        self._held.clear()
