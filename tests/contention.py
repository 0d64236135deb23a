"""A loaded host for tests (issue 22): busy processes on every core, and the stream server's own
event loop stalled now and then, as a Fargate task at 70 % CPU with a slow callback would be.

Tests marked ``contention`` run twice: on this host as it is (``idle``) and loaded (``busy``).
Nothing in them changes between the two: no timeout is raised for the loaded run.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: The server's loop blocks this long, this often: longer than any window the lease decisions
#: once rested on (a socket "talking" 1.0-1.5 s after a newcomer, "silent" 2 s).
STALL_S = 1.5
STALL_EVERY_S = 2.5
FIRST_STALL_S = 0.3  # early: most of these tests last a few seconds


@contextmanager
def busy_cores() -> Iterator[None]:
    """One spinning process per core, for as long as the block runs."""
    spin = "import time\nend = time.monotonic() + 900\nwhile time.monotonic() < end: pass"
    burners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


async def stall_forever(stall_s: float = STALL_S, every_s: float = STALL_EVERY_S) -> None:
    """Block the running loop for ``stall_s``, first soon, then every ``every_s``."""
    await asyncio.sleep(FIRST_STALL_S)
    while True:
        time.sleep(stall_s)  # noqa: ASYNC251 - blocking the loop is the point
        await asyncio.sleep(every_s)
