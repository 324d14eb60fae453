"""Reading topics from outside the workers: the last records of a topic, and following
several topics at once (``stream-rec watch``, ``stream-rec dlq``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream_rec.errors import BrokerError

__all__ = ["TopicRecord", "follow", "last_records"]


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One record as read: where it was, its key and value bytes, its timestamp."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


async def _consumer(bootstrap: str, client_kwargs: Mapping[str, Any]) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=100,
                                **dict(client_kwargs))
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()  # releases the client before the error goes up
        raise
    return consumer


async def _partitions(consumer: AIOKafkaConsumer, topic: str,
                      timeout_s: float = 10.0) -> list[TopicPartition]:
    deadline = time.monotonic() + timeout_s
    while True:
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        if time.monotonic() > deadline:
            raise BrokerError(f"topic {topic!r} does not exist on the broker (create the "
                              "topics with `stream-rec topics`, or start a worker)")
        await asyncio.sleep(0.2)


async def last_records(bootstrap: str, topic: str, last: int, *,
                       client_kwargs: Mapping[str, Any] | None = None,
                       idle_ms: int = 1500) -> list[TopicRecord]:
    """Up to ``last`` newest records of ``topic`` (all partitions), oldest first.

    Reads from ``last`` before each partition's end to the end, and on until a fetch brings
    nothing for ``idle_ms`` (end offsets may be under-reported: see FACTS on Tansu).
    """
    consumer = await _consumer(bootstrap, client_kwargs or {})
    try:
        tps = await _partitions(consumer, topic)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(0, ends[tp] - last))
        out: list[TopicRecord] = []
        while True:
            batch = await consumer.getmany(timeout_ms=idle_ms)
            if not batch:
                break
            out.extend(_records(batch))
        out.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
        return out[-last:] if last else out
    finally:
        await consumer.stop()


async def follow(bootstrap: str, *, from_beginning: Sequence[str], from_end: Sequence[str],
                 client_kwargs: Mapping[str, Any] | None = None,
                 poll_ms: int = 200) -> AsyncIterator[list[TopicRecord]]:
    """Batches of records of every partition of the topics, read from the beginning of
    ``from_beginning`` and the current end of ``from_end``, until the caller stops. An
    empty batch means nothing arrived within ``poll_ms``."""
    consumer = await _consumer(bootstrap, client_kwargs or {})
    try:
        starts = [tp for topic in from_beginning for tp in await _partitions(consumer, topic)]
        ends = [tp for topic in from_end for tp in await _partitions(consumer, topic)]
        consumer.assign(starts + ends)
        if starts:
            await consumer.seek_to_beginning(*starts)
        if ends:
            await consumer.seek_to_end(*ends)
            for tp in ends:  # resolve the position now, not at the first fetch
                await consumer.position(tp)
        while True:
            yield _records(await consumer.getmany(timeout_ms=poll_ms))
    finally:
        await consumer.stop()


def _records(batch: Mapping[TopicPartition, Sequence[Any]]) -> list[TopicRecord]:
    return [TopicRecord(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp)
            for tp, messages in batch.items() for m in messages]
