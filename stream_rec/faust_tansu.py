"""A faust transport for Tansu: the aiokafka driver with a short fetch wait.

Tansu 0.6 ignores ``fetch.min.bytes``: a fetch waits the full ``fetch.max.wait.ms``
even when records are there, and faust hard-codes that wait at 1,500 ms. Measured on this
machine (bench-free check, 40 sends 50 ms apart): consumer latency p50 417 ms at a 1,500 ms
wait, 15 ms at 100 ms; real Kafka answers in 4 ms with either. Registered as the
``tansu://`` scheme, so ``broker="tansu://host:port"`` picks it.
"""

from __future__ import annotations

from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["TANSU_FETCH_MAX_WAIT_MS", "Transport", "register"]

TANSU_FETCH_MAX_WAIT_MS = 20


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):  # type: ignore[misc]
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = TANSU_FETCH_MAX_WAIT_MS  # read when the fetcher starts
        return consumer


class _Consumer(faust_aiokafka.Consumer):  # type: ignore[misc]
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):  # type: ignore[misc]
    """faust's aiokafka transport with :data:`TANSU_FETCH_MAX_WAIT_MS`."""

    Consumer = _Consumer


def register() -> None:
    """Make ``tansu://`` URLs resolve to :class:`Transport` (idempotent)."""
    drivers.TRANSPORTS.aliases["tansu"] = f"{__name__}:Transport"
