"""Real Kinesis event shapes (as Lambda receives them) built from callstream records."""

from __future__ import annotations

import base64
from collections.abc import Iterable


def kinesis_event(
    payloads: Iterable[tuple[str, bytes]], stream: str = "AudioStream", first_seq: int = 1
) -> dict:
    """A Lambda Kinesis event with one entry per (partition key, data)."""
    entries = []
    for n, (key, data) in enumerate(payloads, start=first_seq):
        sequence = f"4959{n:052d}"
        entries.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": key,
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": 1795522800.0 + n / 100,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
                "awsRegion": "us-east-1",
                "eventSourceARN": f"arn:aws:kinesis:us-east-1:123456789012:stream/{stream}",
            }
        )
    return {"Records": entries}
