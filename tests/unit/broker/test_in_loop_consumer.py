"""faust's consumer runs on the worker's own event loop (faust_transport point 5)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import faust
import pytest
from aiokafka.errors import KafkaConnectionError

from stream_rec.broker import faust_transport


def _consumer_service(scheme: str) -> Any:
    """The consumer service of a faust app on ``scheme`` (nothing connects yet)."""
    faust_transport.register()
    app = faust.App("test-in-loop", broker=f"{scheme}://127.0.0.1:1", autodiscover=False,
                    web_enabled=False)
    return app.consumer._thread


@pytest.mark.parametrize("scheme", [faust_transport.KAFKA_SCHEME, faust_transport.TANSU_SCHEME])
def test_both_transports_run_the_consumer_on_the_callers_loop(scheme: str) -> None:
    async def scenario() -> None:
        service = _consumer_service(scheme)
        loop = asyncio.get_running_loop()
        assert service.thread_loop is loop and service.parent_loop is loop

        def where(value: int) -> tuple[int, asyncio.AbstractEventLoop, int]:
            return threading.get_ident(), asyncio.get_running_loop(), value

        # a call into the consumer is a plain call on this thread and loop, with its result
        assert await service.call_thread(where, 5) == (threading.get_ident(), loop, 5)

    asyncio.run(scenario())


def test_an_error_in_a_consumer_call_reaches_the_caller() -> None:
    async def fails() -> None:
        raise ValueError("no such partition")

    async def scenario() -> None:
        with pytest.raises(ValueError, match="no such partition"):
            await _consumer_service(faust_transport.KAFKA_SCHEME).call_thread(fails)

    asyncio.run(scenario())


def test_a_consumer_that_cannot_start_leaves_the_workers_other_tasks_running() -> None:
    # faust's thread service sweeps every task of its loop when it ends; on the worker's
    # own loop those are the worker's tasks, which must survive
    async def scenario() -> bool:
        service = _consumer_service(faust_transport.KAFKA_SCHEME)
        other = asyncio.ensure_future(asyncio.sleep(30))
        with pytest.raises(KafkaConnectionError):
            await service.start()  # nothing listens on port 1
        await service.stop()
        await asyncio.sleep(0)
        alive = not other.done()
        other.cancel()
        return alive

    assert asyncio.run(scenario())
