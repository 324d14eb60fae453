"""A delivery that waited is finished as a task (faust_transport._Started), unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stream_rec.broker.faust_transport import _Started


async def _put_when_room(queue: asyncio.Queue[int], item: int) -> str:
    await queue.put(item)  # waits while the queue is full
    return f"put {item}"


def _start(coro: Any) -> _Started:
    """Run ``coro`` to its first wait, as the drain loop does, and wrap the rest."""
    return _Started(coro, coro.send(None))


def test_a_delivery_that_waited_finishes_as_a_task_with_its_result() -> None:
    async def scenario() -> tuple[str, list[int]]:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(1)
        task = asyncio.ensure_future(_start(_put_when_room(queue, 2)))
        await asyncio.sleep(0)
        assert not task.done()  # still waiting for room
        taken = [queue.get_nowait()]
        result = await task
        return result, [*taken, queue.get_nowait()]

    assert asyncio.run(scenario()) == ("put 2", [1, 2])


def test_cancelling_the_task_cancels_the_waiting_delivery() -> None:
    async def scenario() -> tuple[bool, int]:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(1)
        task = asyncio.ensure_future(_start(_put_when_room(queue, 2)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled(), queue.qsize()

    # the delivery never happened: only the first item is in the queue
    assert asyncio.run(scenario()) == (True, 1)


def test_an_error_after_the_wait_reaches_the_awaiting_task() -> None:
    async def fails_after_waiting(event: asyncio.Event) -> None:
        await event.wait()
        raise ValueError("bad message")

    async def scenario() -> None:
        event = asyncio.Event()
        task = asyncio.ensure_future(_start(fails_after_waiting(event)))
        await asyncio.sleep(0)
        event.set()
        await task

    with pytest.raises(ValueError, match="bad message"):
        asyncio.run(scenario())


def test_it_is_awaitable_where_faust_races_deliveries() -> None:
    async def scenario() -> bool:
        event = asyncio.Event()

        async def wait_then_answer() -> int:
            await event.wait()
            return 7

        started = _start(wait_then_answer())
        race = asyncio.ensure_future(started)  # as mode's Service.wait_first wraps it
        event.set()
        done, _ = await asyncio.wait({race}, timeout=1)
        return race in done and race.result() == 7

    assert asyncio.run(scenario())
