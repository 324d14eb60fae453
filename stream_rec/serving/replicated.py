"""State every replica folds from whole topics: the catalog, the item-statistics deltas and
(with an embedder process) the catalog's item vectors.

User state is partitioned (each worker owns some users); item state is shared. Every
worker reads *all* partitions of the compacted catalog topic and of the item-deltas topic
with a plain consumer (no group), from the beginning, so all replicas converge on the
same catalog and the same item statistics whatever partitions they own. A worker folds the
deltas of its own events when it applies them (its next event sees them, as in ``stream-rec
eval``) and skips its own records here, recognised by their key (``own_deltas_key``, new
for every process, so a restarted worker folds what its previous run published).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from stream_rec.core import codec
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, parse_catalog_item
from stream_rec.core.item_stats import ItemDelta, ItemStats
from stream_rec.errors import InvalidEvent

__all__ = ["ReplicatedState"]

log = logging.getLogger(__name__)


class ReplicatedState:
    """Folds the catalog and item-deltas topics into a :class:`Catalog` and :class:`ItemStats`."""

    def __init__(
        self,
        *,
        bootstrap: str,
        catalog_topic: str,
        deltas_topic: str | None,
        catalog: Catalog,
        stats: ItemStats,
        client_kwargs: Mapping[str, Any] | None = None,
        on_item: Callable[[CatalogItem, bool], None] | None = None,
        on_delta: Callable[[], None] | None = None,
        folds: Mapping[str, Callable[[bytes], None]] | None = None,
        own_deltas_key: bytes | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.catalog_topic = catalog_topic
        self.deltas_topic = deltas_topic
        self.catalog = catalog
        self.stats = stats
        self.client_kwargs = dict(client_kwargs or {})
        self.on_item = on_item
        self.on_delta = on_delta
        self.folds = dict(folds or {})  # more whole topics: topic -> fold(value)
        # item-delta records with this key are this process's own, folded when it made them
        self.own_deltas_key = own_deltas_key
        self.own_delta_records = 0
        self.caught_up = asyncio.Event()
        self.bad_records = 0
        self._stopping = False
        self._next: dict[TopicPartition, int] = {}

    async def run(self) -> None:
        """Consume until :meth:`stop`; sets :attr:`caught_up` once the start-time ends are read."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_wait_ms=50, **self.client_kwargs)
        await consumer.start()
        try:
            partitions = await self._assign_all(consumer)
            ends = await consumer.end_offsets(partitions) if partitions else {}
            self._check_caught_up(ends)
            while not self._stopping:
                batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                for tp, records in batches.items():
                    for record in records:
                        self.fold(tp.topic, record.value, record.key)
                    if records:
                        self._next[tp] = records[-1].offset + 1
                if not self.caught_up.is_set():
                    self._check_caught_up(ends)
        finally:
            await consumer.stop()

    def stop(self) -> None:
        self._stopping = True

    async def _assign_all(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        topics = tuple(t for t in (self.catalog_topic, self.deltas_topic, *self.folds) if t)
        for _ in range(100):
            try:
                await consumer._client.force_metadata_update()
            except KafkaError as exc:
                log.warning("metadata refresh failed: %s", exc)
            partitions = [TopicPartition(topic, p) for topic in topics
                          for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if {tp.topic for tp in partitions} == set(topics):
                consumer.assign(partitions)
                await consumer.seek_to_beginning(*partitions)
                return partitions
            await asyncio.sleep(0.2)
        raise RuntimeError(f"topics {topics} do not exist: create them with `stream-rec topics "
                           "--broker kafka://HOST:PORT` (a worker creates them when it starts)")

    def _check_caught_up(self, ends: Mapping[TopicPartition, int]) -> None:
        if all(self._next.get(tp, 0) >= end for tp, end in ends.items()):
            self.caught_up.set()

    def fold(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        """One record of a followed topic; never raises on bad input (the record is
        skipped, counted in :attr:`bad_records`). Item deltas under :attr:`own_deltas_key`
        are skipped: this process folded them when it made them."""
        if value is None:
            return
        fold = self.folds.get(topic)
        if fold is not None:
            fold(value)
            return
        if topic == self.catalog_topic:
            try:
                item = parse_catalog_item(value)
            except InvalidEvent as exc:
                self.bad_records += 1
                log.warning("skipping invalid catalog record: %s", exc)
                return
            changed = self.catalog.upsert(item)
            if self.on_item is not None:
                self.on_item(item, changed)
            return
        if key is not None and key == self.own_deltas_key:
            self.own_delta_records += 1
            return
        try:
            rows = codec.loads(value)
            deltas = [ItemDelta.from_list(row) for row in rows]
        except (codec.DecodeError, TypeError, ValueError, OverflowError,
                RecursionError) as exc:
            self.bad_records += 1
            log.warning("skipping invalid item-delta record: %s", exc)
            return
        self.stats.learn_many(deltas)
        if self.on_delta is not None:
            self.on_delta()
