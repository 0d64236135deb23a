"""One Kinesis stream, written a record at a time (the stream server batches on its own)."""

from __future__ import annotations

from typing import Any


class KinesisRecordLog:
    """``PutRecord`` to one stream through a boto3 Kinesis client."""

    def __init__(self, client: Any, stream: str) -> None:
        """Write to ``stream`` through a boto3 Kinesis client."""
        self._client = client
        self._stream = stream

    def put(self, key: str, data: bytes) -> None:
        """Write one record with partition key ``key`` (boto3 retries throttling)."""
        self._client.put_record(StreamName=self._stream, Data=data, PartitionKey=key)
