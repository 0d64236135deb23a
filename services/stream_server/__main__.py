"""Run the stream server: ``python -m stream_server``.

Reads ``CALLSTREAM_*`` settings, wires boto3-backed Kinesis, DynamoDB and Secrets Manager (AWS,
or a moto server through ``AWS_ENDPOINT_URL``), serves until SIGTERM or SIGINT, then drains
(health 503, live calls kept up to ``CALLSTREAM_DRAIN_DEADLINE_S``, everything flushed) and exits
0, or 1 if records could not be delivered.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

from stream_server.logs import configure_logging
from stream_server.wiring import build_server

log = logging.getLogger("callstream.main")


def tune_gc() -> None:
    """Fewer, cheaper garbage collections once the server is up.

    Hundreds of sessions allocate a few small objects per frame; the default gen-0 threshold
    (700) runs a collection every few milliseconds, and each full one walks every long-lived
    object. Freezing what startup made and collecting less often cut CPU and the lag p99 at 400
    streams (bench/RESULTS.md); cycles are still collected, only less often.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def serve() -> int:
    """Serve until a stop signal; return the process exit code."""
    server = build_server()
    await server.start()
    tune_gc()
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
