"""Loading and invoking the real Lambda handlers in-process, with a Lambda context."""

from __future__ import annotations

import importlib.util
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from local.template import ROOT


@dataclass
class LambdaContext:
    """What Powertools reads of a Lambda context."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    timeout_ms: int = 60_000
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"
        )

    def get_remaining_time_in_millis(self) -> int:
        """Time left of the invocation, by the clock, as in Lambda."""
        return max(0, int(self.timeout_ms - (time.monotonic() - self.started) * 1000))


_locks: dict[str, threading.Lock] = {}


@cache
def handler(folder: str) -> Any:
    """``functions/<folder>/app.py``'s ``lambda_handler``, loaded once."""
    spec = importlib.util.spec_from_file_location(
        f"fn_{folder}", ROOT / "functions" / folder / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


@cache
def _timeouts_ms() -> dict[str, int]:
    from local.template import Template

    return Template().timeouts_ms()


def invoke(folder: str, event: dict[str, Any], timeout_ms: int | None = None) -> Any:
    """Invoke a function like Lambda does: one invocation of each function at a time.

    It gets the time the template gives it (or ``timeout_ms``), counted by the clock.
    """
    fn = handler(folder)
    limit = timeout_ms or _timeouts_ms()[folder]
    with _locks.setdefault(folder, threading.Lock()):
        return fn(event, LambdaContext(function_name=folder, timeout_ms=limit))
