"""Structured JSON logs on stdout (Powertools' formatter), with call and stream ids.

Sessions log through a ``LoggerAdapter`` whose ``extra`` carries ``call_uuid`` and
``stream_id``; the formatter puts every extra key in the JSON line.
"""

from __future__ import annotations

import logging
import os
import sys

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from callstream import logsafety


def configure_logging(level: str | None = None) -> None:
    """Send JSON log lines to stdout at ``LOG_LEVEL`` (INFO by default)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LambdaPowertoolsFormatter(service="stream_server"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    logsafety.install()  # library DEBUG (bodies, frames) capped; secrets and audio redacted
