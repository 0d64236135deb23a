"""S3 storage of recordings: segments, events, the assembled WAV (multipart) and sidecars.

Layout in the recordings bucket::

    segments/{stream_id}/{seq:010d}_{track}_{start_sample}_{samples}   one encoded audio record
    events/{stream_id}/{seq:010d}.json                                 one session event
    recordings/{call_uuid}/{stream_id}.wav | .json                     the recording and sidecar

Segment keys carry their place on the timeline, so a recording is planned from one listing
without reading a byte of audio. Every key is derived from ``(stream_id, seq)``: a redelivered
record rewrites the same object with the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from callstream.analytics.recording import parse_segment_key
from callstream.audio.wav import Segment
from callstream.exceptions import SinkError

PART_BYTES = 8 * 1024 * 1024  # multipart parts (S3 needs ≥ 5 MiB but for the last)


class S3Recordings:
    """Reads and writes the recordings bucket through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str) -> None:
        """Use ``bucket`` through a boto3 S3 client."""
        self._s3 = client
        self.bucket = bucket

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        """Write one object (idempotent: same key, same bytes)."""
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def get(self, key: str) -> bytes:
        """Read one object."""
        return bytes(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def find(self, key: str) -> bytes | None:
        """Read one object, or None if there is none (one GET, no listing first)."""
        try:
            return self.get(key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, in key order."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])

    def segments(self, stream_id: str) -> list[Segment]:
        """The stream's audio segments, from one listing."""
        return [parse_segment_key(k) for k in self.keys(f"segments/{stream_id}/")]

    def events(self, stream_id: str) -> list[dict[str, Any]]:
        """The stream's session events, in order."""
        return [json.loads(self.get(k)) for k in self.keys(f"events/{stream_id}/")]

    def presign(self, key: str, expires_s: int) -> str:
        """A pre-signed GET URL of one object (the console's player reads the WAV with it)."""
        url: str = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
        )
        return url

    def write_streaming(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        """Write an object from chunks with bounded memory (multipart above one part).

        Returns:
            The object's size in bytes.

        Raises:
            SinkError: the upload failed (the multipart upload is aborted).
        """
        buffer = bytearray()
        parts: list[dict[str, Any]] = []
        upload_id: str | None = None
        size = 0
        try:
            for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= PART_BYTES:
                    if upload_id is None:
                        upload_id = self._s3.create_multipart_upload(
                            Bucket=self.bucket, Key=key, ContentType=content_type
                        )["UploadId"]
                    parts.append(self._part(key, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if upload_id is None:
                self.put(key, bytes(buffer), content_type)
                return size
            if buffer:
                parts.append(self._part(key, upload_id, len(parts) + 1, bytes(buffer)))
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            return size
        except Exception as error:
            if upload_id is not None:
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise SinkError(f"writing s3://{self.bucket}/{key} failed: {error}") from error

    def _part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        answer = self._s3.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}
