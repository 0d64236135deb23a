"""An asyncio loop in a thread of its own, shared by the simulator and the embedded stack."""

from __future__ import annotations

import asyncio
import threading


def stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Stop a loop running in ``thread``, then release its executor threads and close it."""
    if thread.is_alive():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
    if not loop.is_closed() and not loop.is_running():
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
