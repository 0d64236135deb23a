"""template.yaml, read for the embedded stack: resources to create, routes, rules, environment.

Nothing here restates the template: the streams, tables, bucket and bus are created from their
resource properties; the HTTP routes, Kinesis event sources and EventBridge rules are read from
the functions' events; the functions' environment comes from ``Globals``, with ``!Ref`` turned
into the names the embedded stack gives its resources (their logical ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (``!Ref``, ``!Sub``, ``!GetAtt`` …) as dicts."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


CfnLoader.add_multi_constructor("!", _tag)


def load(path: Path = ROOT / "template.yaml") -> dict[str, Any]:
    """The template as plain data."""
    return dict(yaml.load(path.read_text(), Loader=CfnLoader))  # noqa: S506 - a SafeLoader


@dataclass(frozen=True)
class Route:
    """An HttpApi route and the function folder that serves it."""

    method: str
    path: str
    function: str
    iam: bool

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when ``method path`` is this route, else None."""
        if method != self.method:
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
    """A Kinesis event source or an EventBridge rule of a function."""

    function: str
    kind: str  # "kinesis" or "rule"
    stream: str | None = None
    detail_types: tuple[str, ...] = ()
    batch_size: int = 100


class Template:
    """What the embedded stack needs from template.yaml."""

    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        """Read ``doc`` (template.yaml by default)."""
        self.doc = doc or load()
        self.resources: dict[str, Any] = self.doc["Resources"]
        self.parameters = {k: v.get("Default") for k, v in self.doc.get("Parameters", {}).items()}

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """Logical id → properties of every resource of ``kind``."""
        return {k: v.get("Properties", {}) for k, v in self.resources.items() if v["Type"] == kind}

    def functions(self) -> dict[str, str]:
        """Function logical id → its folder under functions/."""
        return {
            k: str(p["CodeUri"]).split("/", 1)[1]
            for k, p in self.of_type("AWS::Serverless::Function").items()
        }

    def timeouts_ms(self) -> dict[str, int]:
        """Function folder → its timeout in ms (its own, else the Globals one), as in Lambda."""
        default = self.doc.get("Globals", {}).get("Function", {}).get("Timeout", 3)
        return {
            str(p["CodeUri"]).split("/", 1)[1]: int(p.get("Timeout", default)) * 1000
            for p in self.of_type("AWS::Serverless::Function").values()
        }

    def routes(self) -> list[Route]:
        """Every HttpApi route."""
        routes = []
        for name, props in self.of_type("AWS::Serverless::Function").items():
            for event in props.get("Events", {}).values():
                if event["Type"] == "HttpApi":
                    p = event["Properties"]
                    iam = p.get("Auth", {}).get("Authorizer") != "NONE"
                    routes.append(Route(p["Method"], p["Path"], self.functions()[name], iam))
        return routes

    def sources(self) -> list[Source]:
        """Every Kinesis event source and EventBridge rule, per function folder."""
        out = []
        folders = self.functions()
        for name, props in self.of_type("AWS::Serverless::Function").items():
            for event in props.get("Events", {}).values():
                p = event.get("Properties", {})
                if event["Type"] == "Kinesis":
                    stream = p["Stream"]["GetAtt"].split(".")[0]
                    out.append(
                        Source(
                            folders[name],
                            "kinesis",
                            stream=stream,
                            batch_size=int(p.get("BatchSize", 100)),
                        )
                    )
                elif event["Type"] == "EventBridgeRule":
                    types = tuple(p["Pattern"].get("detail-type", []))
                    out.append(Source(folders[name], "rule", detail_types=types))
        return out

    def environment(self, names: dict[str, str]) -> dict[str, str]:
        """The functions' Globals environment, ``!Ref X`` resolved through ``names``."""
        env = {}
        for key, value in self.doc["Globals"]["Function"]["Environment"]["Variables"].items():
            if isinstance(value, str):
                env[key] = value
            elif isinstance(value, dict) and "Ref" in value and value["Ref"] in names:
                env[key] = names[value["Ref"]]
        return env

    def dead_letters(self) -> dict[str, str]:
        """Function folder → the logical id of its dead-letter queue (Kinesis and rules)."""
        out = {}
        folders = self.functions()
        for name, props in self.of_type("AWS::Serverless::Function").items():
            for event in props.get("Events", {}).values():
                p = event.get("Properties", {})
                target = p.get("DestinationConfig", {}).get("OnFailure", {}).get(
                    "Destination"
                ) or p.get("DeadLetterConfig", {}).get("Destination")
                if isinstance(target, dict) and "GetAtt" in target:
                    out[folders[name]] = target["GetAtt"].split(".")[0]
        return out
