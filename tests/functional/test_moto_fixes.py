"""The AWS stand-in keeps what Kinesis keeps when puts come at once (local/moto_fixes.py)."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from moto import mock_aws

from local.aws import REGION
from tests.conftest import read_stream


def test_puts_from_many_threads_at_once_are_each_kept_once(aws_env):
    """Threads switched as often as the interpreter can (a busy host does it by chance)."""
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _put_from_threads()
    finally:
        sys.setswitchinterval(switch)


def _put_from_threads() -> None:
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name=REGION)
        kinesis.create_stream(StreamName="s", ShardCount=1)

        def put(thread: int) -> None:
            for batch in range(25):
                records = [
                    {"Data": f"{thread}:{batch}:{i}".encode(), "PartitionKey": "k"}
                    for i in range(20)
                ]
                kinesis.put_records(StreamName="s", Records=records)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(8)))
        kept = [data for _, data in read_stream(kinesis, "s")]
        assert len(kept) == len(set(kept)) == 8 * 25 * 20, "none lost, none twice"
