"""What a SIGKILL loses per call while Kinesis throttles 80 % of records (issue 22, item 6).

Run: .venv/bin/python -m bench.sigkill_loss [--cap-ms 3000] [--runs 1]

The real stream server as a process (``python -m stream_server``) behind a proxy in front of
moto that throttles 80 % of each PutRecords' records, as Kinesis does, per record; 10 calls at
real time; SIGKILL at 18 s. Loss per call = frames the caller handed to its socket minus the
frames in Kinesis. It prints the figures and the bound the settings give (the cap, the record
being filled, the socket buffers), the same computation as
``tests/functional/test_stream_server_process.py``, whose helpers it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from local.vobiz_frames import CallAudio, messages
from tests.functional.test_stream_server_process import (
    TONE,
    sigkill_under_throttling,
    start_moto,
)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cap-ms", type=int, default=3000, help="CALLSTREAM_MAX_UNACKED_MS")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")  # moto's; never real credentials
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    frame_json = len(list(messages(CallAudio({"inbound": TONE}, 8000), "mulaw"))[1])
    unread = (2 * (2 * 32_768) + 2 * 8192) // frame_json
    bound = args.cap_ms // 20 + 1120 // 20 + unread
    for run in range(args.runs):
        server, endpoint, kinesis = start_moto()
        try:
            sent, lost = asyncio.run(sigkill_under_throttling(args.cap_ms, (endpoint, kinesis)))
        finally:
            server.stop()
        print(
            f"run {run + 1}, cap {args.cap_ms} ms: loss per call (20 ms frames) {sorted(lost)}; "
            f"max {max(lost)} ({max(lost) * 0.02:.2f} s), mean {sum(lost) / len(lost):.1f} "
            f"({sum(lost) / len(lost) * 0.02:.2f} s); sent up to {max(sent)}; "
            f"bound from the settings {bound} ({bound * 0.02:.2f} s)"
        )


if __name__ == "__main__":
    main()
