"""A delivery started by hand in the drain loop goes on as a task when it has to wait."""

from __future__ import annotations

import asyncio

import pytest

from stream_rec.broker.faust_transport import _resumed


def test_a_delivery_that_waits_finishes_in_its_task_with_its_result() -> None:
    asyncio.run(_a_delivery_that_waits_finishes_in_its_task_with_its_result())


async def _a_delivery_that_waits_finishes_in_its_task_with_its_result() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[object] = []

    async def delivery() -> int:
        await asyncio.sleep(0)  # a bare yield first, as a loop turn
        value = await gate
        seen.append(value)
        return value * 2

    steps = delivery().__await__()
    rest = asyncio.ensure_future(_resumed(steps, steps.send(None)))
    await asyncio.sleep(0.01)
    assert not rest.done()
    gate.set_result(21)
    assert await rest == 42
    assert seen == [21]


def test_cancelling_the_task_cancels_the_delivery_inside_it() -> None:
    asyncio.run(_cancelling_the_task_cancels_the_delivery_inside_it())


async def _cancelling_the_task_cancels_the_delivery_inside_it() -> None:
    """A rebalance cuts a waiting delivery short: its own cleanup runs, nothing follows."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def delivery() -> None:
        try:
            await gate
            seen.append("delivered")
        finally:
            seen.append("cleaned up")

    steps = delivery().__await__()
    rest = asyncio.ensure_future(_resumed(steps, steps.send(None)))
    await asyncio.sleep(0)
    rest.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rest
    assert seen == ["cleaned up"]


def test_an_error_in_a_waiting_delivery_reaches_the_task() -> None:
    asyncio.run(_an_error_in_a_waiting_delivery_reaches_the_task())


async def _an_error_in_a_waiting_delivery_reaches_the_task() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def delivery() -> None:
        await gate
        raise KeyError("partition revoked")

    steps = delivery().__await__()
    rest = asyncio.ensure_future(_resumed(steps, steps.send(None)))
    gate.set_result(None)
    with pytest.raises(KeyError):
        await rest
