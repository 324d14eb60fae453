"""The serving worker's producer for its outputs: send a batch's records, then wait once.

Recommendations, dead letters, rerank requests and item deltas go out through this plain
aiokafka producer rather than faust's: no per-record faust bookkeeping, and on Tansu the
records are batched (faust's own producer puts every record in its own batch there, for
the changelogs' sake: see ``faust_transport``). The worker acks a batch of events only
after :meth:`OutputProducer.wait_sent` has returned, so a commit never passes an event
whose outputs were not acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer

__all__ = ["OutputProducer"]


class OutputProducer:
    """Queue records with :meth:`send`, then :meth:`wait_sent` on the futures it returned."""

    def __init__(self, bootstrap: str, client_kwargs: Mapping[str, Any] | None = None, *,
                 linger_ms: int = 1, max_batch_bytes: int = 262_144) -> None:
        self._kwargs = {"bootstrap_servers": bootstrap, "linger_ms": linger_ms,
                        "max_batch_size": max_batch_bytes, "acks": "all",
                        **dict(client_kwargs or {})}
        self._producer: AIOKafkaProducer | None = None  # made on the event loop, at start
        self._started = False
        self._stopped = False
        self._lock: asyncio.Lock | None = None

    async def start(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._stopped:
                raise RuntimeError("the output producer has been stopped")
            if not self._started:
                self._producer = AIOKafkaProducer(**self._kwargs)
                await self._producer.start()
                self._started = True

    async def stop(self) -> None:
        self._stopped = True
        if self._started and self._producer is not None:
            self._started = False
            await self._producer.stop()

    async def send(self, topic: str, value: bytes,
                   key: bytes | None = None) -> asyncio.Future[Any]:
        """Queue one record (starts the producer on first use); the future resolves when
        the broker has acknowledged it."""
        if not self._started:
            await self.start()
        assert self._producer is not None
        future: asyncio.Future[Any] = await self._producer.send(topic, value=value, key=key)
        return future

    @staticmethod
    async def wait_sent(futures: list[asyncio.Future[Any]]) -> None:
        """Wait until the broker has acknowledged these records; raises the first send
        error (a KafkaError)."""
        if futures:
            await asyncio.gather(*futures)
