"""End to end on real brokers (Tansu and Apache Kafka), real RocksDB, real worker processes.

Every test compares the worker's user state with an oracle: the same events replayed
through the pure core in one clean pass. Exact equality means nothing was lost and
nothing was counted twice, whatever the broker redelivered.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from stream_rec import codec
from stream_rec.broker import RunningBroker
from stream_rec.catalog import Catalog
from stream_rec.config import Settings
from stream_rec.datasets import load_demo
from stream_rec.events import Event
from stream_rec.hostile import KINDS, bad_events
from stream_rec.item_stats import ItemStats
from stream_rec.profile import UserProfile
from stream_rec.publisher import catalog_records, event_records, publish
from stream_rec.recommender import Recommender
from stream_rec.topics import ensure_topics
from stream_rec.workerproc import WorkerProcess

pytestmark = pytest.mark.integration

DEMO = load_demo()
COMPARED = ("user_id", "recent", "purchased", "cart", "counts", "recent_event_ids",
            "first_ts_ms", "last_ts_ms")


@dataclass
class Pipeline:
    """A unique set of topics and an app id on a shared broker, plus the workers started."""

    broker: RunningBroker
    settings: Settings
    run_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.broker.info.bootstrap

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.settings, log_path=self.run_dir / f"worker-{len(self.workers)}.log")
        self.workers.append(worker.start())
        worker.wait_ready(timeout_s=120)
        return worker

    def publish(self, records: Sequence[tuple[bytes | None, bytes]], topic: str | None = None,
                ) -> None:
        asyncio.run(publish(self.bootstrap, topic or self.settings.topics.events, records,
                            one_record_batches=True))

    def read(self, topic: str, *, until: int, timeout_s: float = 120.0,
             key: str = "rec_id") -> list[dict[str, Any]]:
        """Messages of ``topic`` (deduplicated by ``key``) once there are ``until`` of them."""
        return asyncio.run(_read(self.bootstrap, topic, until, timeout_s, key))


async def _read(bootstrap: str, topic: str, until: int, timeout_s: float,
                key: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    seen: dict[Any, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < until and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    value = codec.loads(message.value)
                    seen.setdefault(value.get(key, (message.partition, message.offset)), value)
    finally:
        await consumer.stop()
    assert len(seen) >= until, f"only {len(seen)} of {until} messages on {topic}"
    return list(seen.values())


@pytest.fixture
def pipeline(broker: RunningBroker, tmp_path: Path) -> Iterator[Pipeline]:
    tag = uuid.uuid4().hex[:8]
    scheme = "tansu" if broker.info.kind == "tansu" else "kafka"
    settings = Settings(broker=f"{scheme}://{broker.info.bootstrap}", topic_prefix=f"t{tag}",
                        app_id=f"app-{tag}", partitions=4, data_dir=tmp_path / "state",
                        commit_interval_s=0.5)
    pipe = Pipeline(broker, settings, tmp_path)
    asyncio.run(ensure_topics(broker.info.bootstrap, settings))
    pipe.publish(list(catalog_records(DEMO.catalog)), settings.topics.catalog)
    yield pipe
    for worker in pipe.workers:
        worker.kill()


def oracle(events: Sequence[Event]) -> dict[str, dict[str, Any]]:
    """Each user's state after one clean pass of ``events`` through the pure core."""
    recommender = Recommender(Catalog(DEMO.catalog), ItemStats())
    profiles: dict[str, UserProfile] = {}
    for event in events:
        before = profiles.get(event.user_id, UserProfile.new(event.user_id))
        profiles[event.user_id] = recommender.observe(before, event).profile
    return {user: _comparable(p.to_dict()) for user, p in profiles.items()}


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    return {key: state[key] for key in COMPARED}


def worker_states(worker: WorkerProcess, users: Sequence[str]) -> dict[str, dict[str, Any]]:
    found = {}
    for user in users:
        state = worker.state(user)
        assert state is not None, f"worker has no state for {user}"
        found[user] = _comparable(state)
    return found


def test_events_in_become_user_state_and_explained_recommendations(pipeline: Pipeline) -> None:
    events = DEMO.events[:300]
    worker = pipeline.start_worker()
    pipeline.publish(list(event_records(events)))
    recs = pipeline.read(pipeline.settings.topics.recs, until=len(events))
    titles = {item.item_id for item in DEMO.catalog}
    assert {r["trigger_event_id"] for r in recs} == {e.event_id for e in events}
    with_items = [r for r in recs if r["items"]]
    assert len(with_items) >= 0.9 * len(recs)
    for rec in with_items:
        assert all(item["item_id"] in titles and item["reason"] for item in rec["items"])
        assert rec["arm"] == "slm" and rec["latency_ms"] >= 0
    users = sorted({e.user_id for e in events})
    assert worker_states(worker, users) == oracle(events)
    assert worker.metric_total("stream_rec_events_total") == len(events)


def test_hostile_events_go_to_the_dlq_with_reason_and_bytes_and_valid_ones_all_apply(
        pipeline: Pipeline) -> None:
    events = DEMO.events[300:500]
    hostile = bad_events(len(KINDS), ts_ms=events[0].ts_ms)
    records = list(event_records(events))
    for n, bad in enumerate(hostile):
        records.insert(n * 10, (bad.key, bad.value))
    worker = pipeline.start_worker()
    pipeline.publish(records)
    dead = pipeline.read(pipeline.settings.topics.dlq, until=len(hostile), key="original_b64")
    by_bytes = {base64.b64decode(d["original_b64"]): d for d in dead}
    for bad in hostile:
        record = by_bytes[bad.value]
        assert record["field"] == bad.field, bad.kind
        assert record["reason"] and record["rule"]
        assert record["source"]["topic"] == pipeline.settings.topics.events
        assert record["source"]["offset"] >= 0
    pipeline.read(pipeline.settings.topics.recs, until=len(events))
    users = sorted({e.user_id for e in events})
    assert worker_states(worker, users) == oracle(events)
    assert worker.alive()


def test_a_killed_worker_with_its_rocksdb_deleted_recovers_exact_state(
        pipeline: Pipeline) -> None:
    first, second = DEMO.events[500:800], DEMO.events[800:1100]
    worker = pipeline.start_worker()
    pipeline.publish(list(event_records(first)))
    pipeline.read(pipeline.settings.topics.recs, until=len(first))
    worker.kill()
    shutil.rmtree(pipeline.settings.data_dir)
    pipeline.publish(list(event_records(second)))
    restarted = pipeline.start_worker()
    pipeline.read(pipeline.settings.topics.recs, until=len(first) + len(second))
    users = sorted({e.user_id for e in (*first, *second)})
    assert worker_states(restarted, users) == oracle((*first, *second))


def test_client_retries_of_the_same_event_do_not_double_count(pipeline: Pipeline) -> None:
    events = DEMO.events[1100:1300]
    worker = pipeline.start_worker()
    # a retrying client: every event sent twice, the retry within the dedupe window
    pipeline.publish([record for record in event_records(events) for _ in range(2)])
    pipeline.read(pipeline.settings.topics.recs, until=len(events))
    deadline = time.monotonic() + 60
    while worker.metric_total("stream_rec_events_duplicate_total") < len(events):
        assert time.monotonic() < deadline, "duplicates were not all seen"
        time.sleep(0.2)
    users = sorted({e.user_id for e in events})
    assert worker_states(worker, users) == oracle(events)
    assert worker.metric_total("stream_rec_events_total") == len(events)
