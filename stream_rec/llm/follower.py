"""Follow the rerank-results topic for one SLM worker (a plain consumer, no group).

A result must reach the worker that holds the pending recommendation, which is the
worker that *sent* the request, whatever partitions it owns by the time the answer comes
back (faust may have rebalanced in between). So every SLM worker reads every partition
of the results topic from its end at start-up and keeps only results whose ``reply_to``
is its own id. Results are small and as many as LLM-arm triggers, so each worker
decoding all of them is cheap; co-partitioning would break at every rebalance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from stream_rec.errors import InvalidEvent
from stream_rec.llm.messages import RerankResult, parse_rerank_result

__all__ = ["RerankResultsFollower"]

log = logging.getLogger(__name__)


class RerankResultsFollower:
    """Calls ``on_result`` for every result addressed to ``worker_id``, in arrival order."""

    def __init__(self, *, bootstrap: str, topic: str, worker_id: str,
                 on_result: Callable[[RerankResult], Awaitable[None]],
                 client_kwargs: Mapping[str, Any] | None = None,
                 fetch_max_wait_ms: int = 100) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.worker_id = worker_id
        self.on_result = on_result
        self.client_kwargs = dict(client_kwargs or {})
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.ready = asyncio.Event()
        self.seen = 0
        self.mine = 0
        self.bad_records = 0

    async def run(self) -> None:
        """Read from the current end until cancelled."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False,
                                    fetch_max_wait_ms=self.fetch_max_wait_ms,
                                    **self.client_kwargs)
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:  # resolve the positions now: results sent from here on are ours
                await consumer.position(tp)
            self.ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        await self._handle(message)
        finally:
            await consumer.stop()

    async def _handle(self, message: Any) -> None:
        self.seen += 1
        try:
            result = parse_rerank_result(message.value or b"")
        except InvalidEvent as exc:
            self.bad_records += 1
            log.warning("skipping invalid rerank result %s[%s]@%s: %s", message.topic,
                        message.partition, message.offset, exc)
            return
        if result.reply_to != self.worker_id:
            return
        self.mine += 1
        await self.on_result(result)

    async def _partitions(self, consumer: AIOKafkaConsumer) -> set[int]:
        for _ in range(60):
            try:
                partitions = await consumer._client._wait_on_metadata(self.topic)
                if partitions:
                    return set(partitions)
            except KafkaError as exc:
                log.info("waiting for topic %s: %s", self.topic, exc)
            await asyncio.sleep(0.5)
        raise KafkaError(f"topic {self.topic} does not exist: create it with "
                         "`stream-rec topics` (workers create it at start)")
