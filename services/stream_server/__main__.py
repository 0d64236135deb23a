"""Run the stream server: ``python -m stream_server``.

Reads ``CALLSTREAM_*`` settings, wires boto3-backed Kinesis, DynamoDB and Secrets Manager (AWS,
or a moto server through ``AWS_ENDPOINT_URL``), serves until SIGTERM or SIGINT, then drains
(health 503, live calls kept up to ``CALLSTREAM_DRAIN_DEADLINE_S``, everything flushed) and exits
0, or 1 if records could not be delivered.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from stream_server.logs import configure_logging
from stream_server.wiring import build_server

log = logging.getLogger("callstream.main")


async def serve() -> int:
    """Serve until a stop signal; return the process exit code."""
    server = build_server()
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"callstream stream server ready on port {server.port}", flush=True)
    await stop.wait()
    log.info("stop signal: draining")
    lost = await server.drain()
    log.info("drained: %d records undelivered", lost)
    return 0 if lost == 0 else 1


def main() -> None:
    """Entry point."""
    configure_logging()
    sys.exit(asyncio.run(serve()))


if __name__ == "__main__":
    main()
