"""What CloudFormation receives, read for the embedded stack: resources, routes, sources, settings.

The embedded stack is wired from the *transformed* template (``local/template.transformed.json``,
written by ``make transform`` with the translator SAM CLI uses; ``make validate`` fails when it
is stale). So what the local stack runs is what a ``sam deploy`` creates: the HTTP routes come
from the API's OpenAPI body, the Kinesis sources from the event source mappings (batch size,
retries, bisection, on-failure queue), the asynchronous retries and on-failure queues from the
``EventInvokeConfig`` resources, the rules from the ``AWS::Events::Rule`` resources, and the
functions' environment from each function. A key SAM does not know, or a reference that does
not resolve, shows here as it would in AWS, not as the YAML's author meant it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRANSFORMED = ROOT / "local" / "template.transformed.json"
#: OpenAPI's method names → HTTP methods (API Gateway's catch-all is its own extension).
ANY_METHOD = "x-amazon-apigateway-any-method"


def load(path: Path = TRANSFORMED) -> dict[str, Any]:
    """The transformed template as plain data."""
    document: dict[str, Any] = json.loads(path.read_text())
    return document


@dataclass(frozen=True)
class Route:
    """An HTTP API route and the function folder that serves it."""

    method: str
    path: str
    function: str
    iam: bool

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when ``method path`` is this route, else None."""
        if method != self.method and self.method != "ANY":
            return None
        want, got = self.path.strip("/").split("/"), path.strip("/").split("/")
        if len(want) != len(got):
            return None
        params = {}
        for w, g in zip(want, got, strict=True):
            if w.startswith("{") and w.endswith("}"):
                params[w[1:-1]] = g
            elif w != g:
                return None
        return params


@dataclass(frozen=True)
class Source:
    """A Kinesis event source mapping or an EventBridge rule target of a function.

    Attributes:
        function: the function's folder under functions/.
        kind: ``kinesis`` or ``rule``.
        stream: the Kinesis stream's logical id (kinesis).
        fan_out: read through an enhanced fan-out consumer (kinesis): records are pushed,
            so the local poller looks more often.
        pattern: the rule's event pattern as JSON (rule), matched as EventBridge does.
        batch_size: records per invocation (kinesis).
        max_retries: retries of a failing batch; -1 until the records expire (kinesis).
        bisect: split a batch in two when the function raises (does not count as a retry).
        on_failure: logical id of the queue that gets what is given up on (the mapping's
            ``OnFailure``; for a rule, EventBridge's dead-letter queue for failed deliveries).
    """

    function: str
    kind: str
    stream: str | None = None
    fan_out: bool = False
    pattern: str = ""
    batch_size: int = 100
    max_retries: int = -1
    bisect: bool = False
    on_failure: str | None = None


@dataclass(frozen=True)
class AsyncConfig:
    """How Lambda retries a function invoked asynchronously (its ``EventInvokeConfig``).

    Lambda's defaults: 2 retries, no destination (``MaximumRetryAttempts``, ``OnFailure``).
    """

    max_retries: int = 2
    on_failure: str | None = None


def _logical(value: Any) -> str | None:
    """The logical id in ``{"Ref": X}`` or ``{"Fn::GetAtt": [X, attr]}``, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


class Template:
    """What the embedded stack needs from the transformed template."""

    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        """Read ``doc`` (the committed transformed template by default)."""
        self.doc = doc or load()
        self.resources: dict[str, Any] = self.doc["Resources"]
        self.parameters = {k: v.get("Default") for k, v in self.doc.get("Parameters", {}).items()}

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """Logical id → properties of every resource of ``kind``."""
        return {k: v.get("Properties", {}) for k, v in self.resources.items() if v["Type"] == kind}

    def functions(self) -> dict[str, str]:
        """Function logical id → its folder under functions/ (from its code's S3 key)."""
        out = {}
        for name, props in self.of_type("AWS::Lambda::Function").items():
            key = str(props.get("Code", {}).get("S3Key", ""))
            if key.startswith("functions/"):
                out[name] = key.removeprefix("functions/").removesuffix(".zip")
        return out

    def timeouts_ms(self) -> dict[str, int]:
        """Function folder → its timeout in ms (Lambda's default is 3 s)."""
        lambdas = self.of_type("AWS::Lambda::Function")
        return {
            folder: int(lambdas[name].get("Timeout", 3)) * 1000
            for name, folder in self.functions().items()
        }

    def routes(self) -> list[Route]:
        """Every route of the HTTP API, from the OpenAPI body API Gateway is given."""
        folders = self.functions()
        routes = []
        for props in self.of_type("AWS::ApiGatewayV2::Api").values():
            for path, operations in props.get("Body", {}).get("paths", {}).items():
                for method, operation in operations.items():
                    uri = operation["x-amazon-apigateway-integration"]["uri"]
                    text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri)
                    found = re.search(r"\$\{(\w+)\.Arn\}", str(text))
                    if found is None or found.group(1) not in folders:
                        continue
                    # AWS_IAM and the console's JWT authorizer: the local token stands in
                    iam = any(k != "NONE" for s in operation.get("security", []) for k in s)
                    verb = "ANY" if method == ANY_METHOD else method.upper()
                    routes.append(Route(verb, path, folders[found.group(1)], iam))
        return routes

    def sources(self) -> list[Source]:
        """Every Kinesis event source mapping and every rule that targets a function."""
        folders = self.functions()
        consumers = self.of_type("AWS::Kinesis::StreamConsumer")
        out = []
        for props in self.of_type("AWS::Lambda::EventSourceMapping").values():
            function = _logical(props["FunctionName"])
            if function not in folders:
                continue
            failure = props.get("DestinationConfig", {}).get("OnFailure", {})
            stream = _logical(props["EventSourceArn"])
            consumer = consumers.get(stream or "")
            out.append(
                Source(
                    folders[function],
                    "kinesis",
                    stream=_logical(consumer["StreamARN"]) if consumer else stream,
                    fan_out=consumer is not None,
                    batch_size=int(props.get("BatchSize", 100)),
                    max_retries=int(props.get("MaximumRetryAttempts", -1)),
                    bisect=bool(props.get("BisectBatchOnFunctionError", False)),
                    on_failure=_logical(failure.get("Destination")),
                )
            )
        for props in self.of_type("AWS::Events::Rule").values():
            pattern = props.get("EventPattern")
            if not pattern:
                continue  # a schedule: nothing on the bus starts it
            for target in props.get("Targets", []):
                function = _logical(target["Arn"])
                if function in folders:
                    dlq = _logical(target.get("DeadLetterConfig", {}).get("Arn"))
                    out.append(
                        Source(
                            folders[function], "rule", pattern=json.dumps(pattern), on_failure=dlq
                        )
                    )
        return out

    def schedules(self) -> list[str]:
        """The function folders a scheduled rule invokes."""
        folders = self.functions()
        return [
            folders[function]
            for props in self.of_type("AWS::Events::Rule").values()
            if props.get("ScheduleExpression")
            for target in props.get("Targets", [])
            if (function := _logical(target["Arn"])) in folders
        ]

    def async_configs(self) -> dict[str, AsyncConfig]:
        """Function folder → how Lambda retries it when invoked asynchronously."""
        folders = self.functions()
        out = {folder: AsyncConfig() for folder in folders.values()}
        for props in self.of_type("AWS::Lambda::EventInvokeConfig").values():
            function = _logical(props["FunctionName"])
            if function in folders:
                failure = props.get("DestinationConfig", {}).get("OnFailure", {})
                out[folders[function]] = AsyncConfig(
                    max_retries=int(props.get("MaximumRetryAttempts", 2)),
                    on_failure=_logical(failure.get("Destination")),
                )
        return out

    def environment(self, names: dict[str, str]) -> dict[str, str]:
        """The functions' environment (they run in one process here, so they must agree).

        A ``Ref`` to a resource becomes its local name (``names``), one to a parameter its
        default; other values the stack sets itself (the WebSocket URL) are left out.

        Raises:
            ValueError: two functions give one variable different values.
        """
        env: dict[str, str] = {}
        for name, props in self.of_type("AWS::Lambda::Function").items():
            if name not in self.functions():
                continue
            for key, value in props.get("Environment", {}).get("Variables", {}).items():
                resolved = self._resolve(value, names)
                if resolved is None:
                    continue
                if env.setdefault(key, resolved) != resolved:
                    raise ValueError(f"{key} differs between functions: the stack shares one")
        return env

    def _resolve(self, value: Any, names: dict[str, str]) -> str | None:
        if isinstance(value, str):
            return value
        ref = value.get("Ref") if isinstance(value, dict) else None
        if ref in names:
            return names[ref]
        if ref in self.parameters and isinstance(self.parameters[ref], str):
            return str(self.parameters[ref])
        return None
