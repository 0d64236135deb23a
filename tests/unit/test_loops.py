"""local.loops: a loop stopped mid-work leaves no task pending behind it."""

from __future__ import annotations

import asyncio
import threading

from local.loops import stop_loop


def test_a_loop_stopped_under_running_tasks_cancels_them_even_one_whose_finally_waits() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    finished: list[str] = []

    async def call() -> None:  # as the simulator's: its finally waits out the call
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(3600)
            finished.append("never")

    async def plain() -> None:
        await asyncio.Event().wait()

    tasks = [asyncio.run_coroutine_threadsafe(c(), loop) for c in (call, plain)]
    while len(asyncio.all_tasks(loop)) < 2:
        threading.Event().wait(0.01)
    pending = list(asyncio.all_tasks(loop))
    stop_loop(loop, thread)
    assert loop.is_closed() and not thread.is_alive()
    assert all(t.done() and t.cancelled() for t in pending), "none left to be destroyed pending"
    assert all(f.cancelled() for f in tasks) and finished == []
