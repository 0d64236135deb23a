"""An asyncio loop in a thread of its own, shared by the simulator and the embedded stack."""

from __future__ import annotations

import asyncio
import contextlib
import threading

#: How many times, and how long each, the tasks still running are cancelled and waited for:
#: a task's ``finally`` may await again (the simulator's hang-up waits out the call's length).
CANCEL_ROUNDS = 3
CANCEL_WAIT_S = 1.0


async def _cancel_all() -> None:
    for _ in range(CANCEL_ROUNDS):
        running = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not running:
            return
        for task in running:
            task.cancel()
        await asyncio.wait(running, timeout=CANCEL_WAIT_S)


def stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Stop a loop running in ``thread``, then release its executor threads and close it.

    Its tasks still running are cancelled and let finish first: a loop closed under them
    leaves "Task was destroyed but it is pending!" on stderr (make up's Ctrl-C mid-call).
    """
    if thread.is_alive():
        cancelling = asyncio.run_coroutine_threadsafe(_cancel_all(), loop)
        with contextlib.suppress(Exception):  # a loop that cannot even cancel is stopped anyway
            cancelling.result(timeout=CANCEL_ROUNDS * CANCEL_WAIT_S + 5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
    if not loop.is_closed() and not loop.is_running():
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
