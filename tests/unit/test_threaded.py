"""A blocking stream handed over to the loop: a cancel always ends the reader."""

import asyncio

import pytest

from callstream.adapters.threaded import handed_over
from callstream.exceptions import ModelError


async def test_a_cancel_that_meets_a_piece_is_not_swallowed():
    """A barge-in cancels a reply just as the voice hands over a piece. Python 3.11's
    asyncio.wait_for returned the piece and dropped the cancel: the voice agent's player then
    waited forever for a sentence that never came (a unit test hung once in 30 runs)."""
    queue: asyncio.Queue = asyncio.Queue()
    read: list[str] = []

    async def reader() -> None:
        async for piece in handed_over(queue, 5.0, "the voice"):
            read.append(piece)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)  # it waits for a piece
    queue.put_nowait("piece")
    task.cancel()  # in the same turn of the loop
    await asyncio.wait([task], timeout=2.0)
    assert task.cancelled(), "the reader ended by its cancel"


async def test_a_producers_error_comes_after_its_pieces_and_silence_is_an_error():
    queue: asyncio.Queue = asyncio.Queue()
    for item in ("one", "two", ConnectionResetError("reset")):
        queue.put_nowait(item)
    got: list[str] = []
    with pytest.raises(ModelError, match="the voice failed: reset"):
        async for piece in handed_over(queue, 1.0, "the voice"):
            got.append(piece)
    assert got == ["one", "two"]
    with pytest.raises(ModelError, match=r"the voice sent nothing for 0\.05 s"):
        async for _ in handed_over(asyncio.Queue(), 0.05, "the voice"):
            pass
