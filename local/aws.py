"""The AWS stand-in: a moto server on a local port with callstream's resources.

They are created from their properties in the transformed template, each named by its logical id.
"""

from __future__ import annotations

import os
import urllib.request
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from local.moto_fixes import atomic_kinesis_puts
from local.template import Template

atomic_kinesis_puts()  # before any server answers (local/moto_fixes.py)

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def table_request(name: str, props: dict[str, Any]) -> dict[str, Any]:
    """``CreateTable`` arguments for a template's table, under ``name``."""
    table: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        table["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return table


class LocalAws:
    """Starts moto in server mode and builds the template's data resources in it."""

    def __init__(self, template: Template) -> None:
        """Prepare; :meth:`start` does the work."""
        self.template = template
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""
        self.names: dict[str, str] = {}

    def start(self) -> LocalAws:
        """Start moto, point this process's boto3 at it, create the resources."""
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.server._server.server_port}"
        os.environ.update(FAKE_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint
        # moto keeps its state per process: start from nothing, whatever ran here before
        reset = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310
        self._create()
        return self

    def stop(self) -> None:
        """Stop moto."""
        self.server.stop()

    def client(self, service: str) -> Any:
        """A boto3 client on the moto server."""
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def _create(self) -> None:
        t = self.template
        kinesis, dynamodb, s3, events, sqs = (
            self.client(s) for s in ("kinesis", "dynamodb", "s3", "events", "sqs")
        )
        for name in t.of_type("AWS::Kinesis::Stream"):
            kinesis.create_stream(StreamName=name, ShardCount=1)
            self.names[name] = name
        for name, props in t.of_type("AWS::DynamoDB::Table").items():
            dynamodb.create_table(**table_request(name, props))
            self.names[name] = name
        for name in t.of_type("AWS::S3::Bucket"):
            bucket = name.lower()
            s3.create_bucket(Bucket=bucket)
            self.names[name] = bucket
        for name, props in t.of_type("AWS::Events::EventBus").items():
            bus = props["Name"]
            if isinstance(bus, dict):  # !Ref EventBusName
                bus = t.parameters[bus["Ref"]]
            events.create_event_bus(Name=bus)
            self.names[name] = bus
        for name in t.of_type("AWS::SQS::Queue"):
            sqs.create_queue(QueueName=name)
            self.names[name] = name
        secretsmanager = self.client("secretsmanager")
        for name in t.of_type("AWS::SecretsManager::Secret"):  # the stack puts their values
            self.names[name] = secretsmanager.create_secret(Name=name, SecretString="{}")["ARN"]
        for kinesis_name in t.of_type("AWS::Kinesis::Stream"):
            kinesis.get_waiter("stream_exists").wait(StreamName=kinesis_name)
