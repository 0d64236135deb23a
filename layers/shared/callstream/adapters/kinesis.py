"""One Kinesis stream, written a record at a time (the stream server batches on its own)."""

from __future__ import annotations

from typing import Any

from callstream.ports import RecordAt


class KinesisRecordLog:
    """``PutRecord`` to one stream through a boto3 Kinesis client."""

    def __init__(self, client: Any, stream: str) -> None:
        """Write to ``stream`` through a boto3 Kinesis client."""
        self._client = client
        self._stream = stream

    def put(self, key: str, data: bytes) -> None:
        """Write one record with partition key ``key`` (boto3 retries throttling)."""
        self._client.put_record(StreamName=self._stream, Data=data, PartitionKey=key)

    def read(self, at: RecordAt) -> bytes | None:
        """The record at ``at``; None once the stream's retention dropped it.

        ``AT_SEQUENCE_NUMBER`` of a record past the retention period may start at the shard's
        oldest record instead, or be refused (as on a shard that is gone), so the sequence
        read is checked and a refusal is "gone" too: one lost record never stops a sweep.
        """
        errors = self._client.exceptions
        try:
            iterator = self._client.get_shard_iterator(
                StreamName=self._stream,
                ShardId=at.shard,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                StartingSequenceNumber=at.sequence,
            )["ShardIterator"]
        except (errors.ResourceNotFoundException, errors.InvalidArgumentException):
            return None  # the shard was closed and has expired, or the record is gone
        found = self._client.get_records(ShardIterator=iterator, Limit=1)["Records"]
        if not found or found[0]["SequenceNumber"] != at.sequence:
            return None
        data: bytes = found[0]["Data"]
        return data
