"""Publish events and catalog items to the broker at a given rate (demo, replay, bench)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from stream_rec.core import codec
from stream_rec.core.events import CatalogItem, Event

__all__ = ["PublishResult", "catalog_records", "event_records", "publish"]

Record = tuple[bytes | None, bytes]


@dataclass(frozen=True, slots=True)
class PublishResult:
    """How many records went out and how long it took."""

    sent: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def event_records(events: Iterable[Event]) -> Iterable[Record]:
    """Events as (key = user id, value = JSON) records."""
    for event in events:
        yield event.user_id.encode(), codec.dumps(event.to_dict())


def catalog_records(items: Iterable[CatalogItem]) -> Iterable[Record]:
    """Catalog items as (key = item id, value = JSON) records for the compacted topic."""
    for item in items:
        yield item.item_id.encode(), codec.dumps(item.to_dict())


async def publish(
    bootstrap: str,
    topic: str,
    records: Iterable[Record],
    *,
    rate: float = 0.0,
    client_kwargs: Mapping[str, Any] | None = None,
    one_record_batches: bool = False,
    on_sent: Callable[[int], None] | None = None,
) -> PublishResult:
    """Send every record; ``rate`` > 0 paces to that many records per second.

    ``one_record_batches`` puts each record in its own batch (Tansu reports wrong end
    offsets after multi-record batches; readers that wait for "caught up" need this).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_batch_size=16 if one_record_batches else 65_536,
                                **dict(client_kwargs or {}))
    try:
        await producer.start()
    except BaseException:
        await producer.stop()  # releases the client: no "Unclosed AIOKafkaProducer"
        raise
    sent = 0
    started = time.monotonic()
    try:
        for key, value in records:
            if rate > 0:
                due = started + sent / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await producer.send(topic, value=value, key=key)
            sent += 1
            if on_sent is not None:
                on_sent(sent)
        await producer.flush()
    finally:
        await producer.stop()
    return PublishResult(sent, time.monotonic() - started)
