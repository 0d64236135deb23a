"""Shared fixtures: AWS stand-ins (moto) built from the same key schemas as template.yaml."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.aws import table_request
from local.template import Template
from tests.contention import busy_cores, stall_forever

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[1]
SAM_PYTHON = ROOT / ".tools" / "sam" / "bin" / "python"


@pytest.fixture(scope="session")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """template.yaml as CloudFormation receives it: after the SAM transform (the translator SAM
    CLI uses, in SAM CLI's own environment, which make installs)."""
    if not SAM_PYTHON.exists():
        pytest.fail("the SAM translator is installed by make (make test or make validate)")
    out = tmp_path_factory.mktemp("sam") / "transformed.json"
    subprocess.run(
        [str(SAM_PYTHON), str(ROOT / "scripts" / "transform_template.py"), "template.yaml", out],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    document: dict[str, Any] = json.loads(out.read_text())
    return document


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region: no test can ever reach real AWS."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SECURITY_TOKEN",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


#: The template's tables as CloudFormation gets them: tests make them under short names.
TABLES = Template().of_type("AWS::DynamoDB::Table")


@pytest.fixture
def aws(aws_env: None) -> Iterator[dict[str, Any]]:
    """moto in-process with the streams and tables callstream uses."""
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for stream in ("AudioStream", "UtteranceStream"):
            kinesis.create_stream(StreamName=stream, ShardCount=1)
        for name, logical in (("Registry", "RegistryTable"), ("Nonces", "NonceTable")):
            dynamodb.create_table(**table_request(name, TABLES[logical]))
        yield {"kinesis": kinesis, "dynamodb": dynamodb}


def read_stream(kinesis: Any, stream: str) -> list[tuple[str, bytes]]:
    """Every record of a (one-shard) Kinesis stream: (partition key, data), in order."""
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    out: list[tuple[str, bytes]] = []
    while iterator:
        response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        out += [(r["PartitionKey"], r["Data"]) for r in response["Records"]]
        if not response["Records"]:
            break
        iterator = response.get("NextShardIterator")
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``contention`` run on this host as it is and on a loaded one."""
    if metafunc.definition.get_closest_marker("contention") is not None:
        metafunc.fixturenames.append("host")
        metafunc.parametrize("host", ["idle", "busy"], indirect=True)


@pytest.fixture
def host(request: pytest.FixtureRequest) -> str:
    """``idle`` or ``busy`` (see :mod:`tests.contention`)."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _loaded_host(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """On a ``busy`` host: every core spinning, and each stream server's loop stalled."""
    if "host" not in request.fixturenames or request.getfixturevalue("host") != "busy":
        yield
        return
    from stream_server.server import StreamServer

    real_start = StreamServer.start

    async def start(self: StreamServer) -> None:
        await real_start(self)
        self._spawn(stall_forever())

    monkeypatch.setattr(StreamServer, "start", start)
    with busy_cores():
        yield


def make_events() -> Any:
    """``scripts/make_events.py`` as a module (what writes events/, signed and encoded)."""
    import importlib.util

    from local.template import ROOT

    spec = importlib.util.spec_from_file_location(
        "make_events", ROOT / "scripts" / "make_events.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
