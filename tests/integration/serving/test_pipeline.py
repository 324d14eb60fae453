"""End to end on real brokers (Tansu and Apache Kafka), real RocksDB, real worker processes.

Every test compares the worker's user state with an oracle: the same events replayed
through the pure core in one clean pass. Exact equality means nothing was lost and
nothing was counted twice, whatever the broker redelivered.
"""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Sequence
from typing import Any

import pytest
from pipeline_support import DEMO, Pipeline

from stream_rec.broker.publisher import event_records
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import Event
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import Recommender
from stream_rec.local.hostile import KINDS, bad_events
from stream_rec.local.processes import WorkerProcess

pytestmark = pytest.mark.integration

COMPARED = ("user_id", "recent", "purchased", "cart", "counts", "recent_event_ids",
            "first_ts_ms", "last_ts_ms")


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


@pytest.mark.chaos  # bug E in docs/reliability.md: a restarted worker skipped events (fixed)
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
