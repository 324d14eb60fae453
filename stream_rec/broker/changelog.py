"""Read one user's state straight from the users table's changelog topic."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from stream_rec.broker.security import client_security_kwargs
from stream_rec.config import Settings
from stream_rec.core import codec

__all__ = ["changelog_topic", "read_user_state"]


def changelog_topic(settings: Settings) -> str:
    """faust's name for the users table's changelog."""
    return f"{settings.app_id}-users-changelog"


async def read_user_state(bootstrap: str, settings: Settings,
                          user_id: str) -> dict[str, Any] | None:
    """The latest value for ``user_id`` in the changelog (None if the user has no state).

    The user's partition is the one the default partitioner picks for its key (murmur2), as
    for the events topic, so only that partition is read.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, **client_security_kwargs(settings))
    try:
        await consumer.start()
        topic = changelog_topic(settings)
        partitions = sorted(await consumer._client._wait_on_metadata(topic))
        key = user_id.encode()
        tp = TopicPartition(topic, (murmur2(key) & 0x7FFFFFFF) % len(partitions))
        wanted = codec.dumps(user_id)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        latest: bytes | None = None
        while (await consumer.position(tp)) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for message in batch.get(tp, []):
                if message.key == wanted:
                    latest = message.value
            if not batch:
                break
        return codec.loads(latest) if latest else None
    finally:
        await consumer.stop()
