"""Real Kinesis event shapes (as Lambda receives them) built from callstream records."""

from __future__ import annotations

import base64
from collections.abc import Iterable


def kinesis_event(
    payloads: Iterable[tuple[str, bytes] | tuple[str, bytes, str]],
    stream: str = "AudioStream",
    first_seq: int = 1,
    shard: str = "shardId-000000000000",
) -> dict:
    """A Lambda Kinesis event with one entry per (partition key, data[, sequence number]).

    Without a sequence number (a record made up, not read from a stream) one is numbered from
    ``first_seq``; with one (read from moto), it is the record's own, as Lambda gives it.
    """
    entries = []
    for n, (key, data, *given) in enumerate(payloads, start=first_seq):
        sequence = given[0] if given else f"4959{n:052d}"
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
                "eventID": f"{shard}:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
                "awsRegion": "us-east-1",
                "eventSourceARN": f"arn:aws:kinesis:us-east-1:123456789012:stream/{stream}",
            }
        )
    return {"Records": entries}
