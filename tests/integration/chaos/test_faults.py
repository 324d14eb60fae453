"""Faults on real brokers and real worker processes: nothing lost, nothing doubled.

Each test runs one scenario of :mod:`stream_rec.chaos` on its own topics: a producer keeps
publishing (with client retries and hostile records mixed in) while workers are SIGKILLed,
the broker restarts, or a reader lags. :meth:`Rig.finish` then replays the events topic as
stored through the pure core (the oracle) and requires every live worker's user state and
the changelog (what an empty disk recovers) to equal it, every trigger to have a
recommendation with one stable ``rec_id``, and every invalid record to be dead-lettered.
Longer versions with more kills and events: ``python bench/soak.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream_rec.broker.publisher import publish
from stream_rec.chaos import (
    ChaosResult,
    Rig,
    broker_restart,
    chaos_settings,
    kill_during_catch_up,
    kill_loop,
    slow_consumer,
    two_workers_rebalance,
    workload,
)
from stream_rec.chaos.harness import read_topic
from stream_rec.chaos.hostile_cases import hostile_cases
from stream_rec.core import codec
from stream_rec.datasets import load_demo
from stream_rec.local.brokers import RunningBroker

# Part of the default run (bounded: a few thousand events, at most 3 kills each);
# `make chaos` runs only these, `make soak` the longer versions (docs/reliability.md).
pytestmark = [pytest.mark.integration, pytest.mark.chaos]

CATALOG = load_demo().catalog[:600]
ITEMS = [item.item_id for item in CATALOG]


def records(n: int, seed: int, *, users: int = 120) -> list[tuple[bytes | None, bytes]]:
    """``n`` valid events, a hostile record every 100 and a client retry every 97."""
    return workload(n, rng=random.Random(seed), items=ITEMS, users=users, hostile_every=100,
                    client_dup_every=97)


def show(result: ChaosResult) -> None:
    """The figures, printed (``pytest -s`` or a failure shows them)."""
    print(json.dumps(result.to_dict(), default=str))


def assert_exact(result: ChaosResult) -> None:
    """Nothing lost, nothing counted twice, nothing missing downstream, no worker down."""
    facts = f"{result.examples} {result.notes}"
    assert result.users_compared > 0
    assert (result.users_missing, result.events_lost) == (0, 0), facts
    assert result.events_double_counted == 0, facts
    assert result.users_mismatched == 0, facts
    assert (result.changelog_events_lost, result.changelog_users_mismatched) == (0, 0), facts
    assert (result.recs_missing, result.recs_unstable) == (0, 0), facts
    assert (result.dlq_missing, result.dlq_unexpected) == (0, 0), facts
    assert result.dlq_distinct == result.invalid_in_log > 0
    assert result.workers_alive, facts


@pytest.mark.parametrize("seed", [11])
def test_two_sigkills_mid_stream_with_rocksdb_deleted_lose_and_double_count_nothing(
        broker: RunningBroker, tmp_path: Path, seed: int) -> None:
    result = kill_loop(broker, chaos_settings(broker, tmp_path), records(2000, seed),
                       run_dir=tmp_path, rng=random.Random(seed), kills=2,
                       delete_state="always", rate=100.0, catalog=CATALOG)
    show(result)
    assert_exact(result)
    assert result.kills_mid_stream == 2
    assert [r.local_state for r in result.restarts] == ["fresh", "deleted", "deleted"]


def test_a_crash_during_catch_up_then_an_empty_disk_loses_nothing(
        tansu_broker: RunningBroker, tmp_path: Path) -> None:
    # most users have one event: an update that reached RocksDB but not the changelog
    # before the crash is never repaired by a later event of the same user
    result = kill_during_catch_up(tansu_broker, chaos_settings(tansu_broker, tmp_path),
                                  records(3000, 12, users=3000), run_dir=tmp_path,
                                  rng=random.Random(12), catalog=CATALOG)
    show(result)
    assert [r.local_state for r in result.restarts] == ["fresh", "kept", "deleted"]
    assert_exact(result)


def test_two_workers_one_sigkilled_the_other_takes_over_then_both_exact(
        broker: RunningBroker, tmp_path: Path) -> None:
    result = two_workers_rebalance(broker, chaos_settings(broker, tmp_path),
                                   records(2500, 13), run_dir=tmp_path,
                                   rng=random.Random(13), rate=100.0, catalog=CATALOG)
    show(result)
    assert_exact(result)
    assert any(note.startswith("takeover (") for note in result.notes), result.notes
    assert len(result.restarts) == 3  # two workers, then the killed one again


def test_kafka_restarting_mid_stream_recs_resume_and_state_is_exact(
        start_own_broker: Any, tmp_path: Path) -> None:
    kafka: RunningBroker = start_own_broker("kafka")
    result = broker_restart(kafka, chaos_settings(kafka, tmp_path), records(2000, 14),
                            run_dir=tmp_path, rng=random.Random(14), rate=100.0,
                            catalog=CATALOG)
    show(result)
    assert result.recs_resume_s is not None and result.recs_resume_s < 60.0, result.notes
    assert not any("exited" in note for note in result.notes), result.notes
    assert_exact(result)


def test_a_slow_recs_reader_neither_stalls_nor_bloats_the_worker(
        tansu_broker: RunningBroker, tmp_path: Path) -> None:
    result = slow_consumer(tansu_broker, chaos_settings(tansu_broker, tmp_path),
                           records(4000, 15), run_dir=tmp_path, rng=random.Random(15),
                           rate=0.0, reader_per_s=5.0, catalog=CATALOG)
    show(result)
    assert_exact(result)
    assert result.processed_per_s > 100.0
    assert result.worker_peak_rss_mb < 300.0, result.worker_rss_mb
    assert any("slow reader read" in note for note in result.notes)


# ----- exactly-once on Kafka ----------------------------------------------------------------
@pytest.fixture(scope="module")
def exactly_once_run(kafka_broker: RunningBroker,
                     tmp_path_factory: pytest.TempPathFactory) -> ChaosResult:
    run_dir = tmp_path_factory.mktemp("exactly-once")
    result = kill_loop(kafka_broker, chaos_settings(kafka_broker, run_dir,
                                                    processing_guarantee="exactly_once"),
                       records(1500, 16), run_dir=run_dir, rng=random.Random(16), kills=1,
                       delete_state="never", rate=100.0, catalog=CATALOG)
    show(result)
    return result


@pytest.mark.kafka
def test_exactly_once_on_kafka_runs_loses_no_recommendation_and_keeps_rec_ids_stable(
        exactly_once_run: ChaosResult) -> None:
    result = exactly_once_run
    assert result.guarantee == "exactly_once" and result.workers_alive
    assert (result.recs_missing, result.recs_unstable) == (0, 0)
    assert (result.dlq_missing, result.dlq_unexpected) == (0, 0)


@pytest.mark.kafka
@pytest.mark.xfail(strict=False, reason=(
    "faust 0.15.3 exactly_once on Kafka 4.4: recommendations are sent outside the "
    "transactions (read_committed consumers see the duplicates) and user state lost "
    "events across SIGKILL; measured and explained in docs/reliability.md"))
def test_exactly_once_on_kafka_shows_read_committed_consumers_no_duplicates(
        exactly_once_run: ChaosResult) -> None:
    result = exactly_once_run
    assert result.recs_duplicates == 0
    assert (result.events_lost, result.events_double_counted) == (0, 0)


# ----- hostile messages through a real worker ------------------------------------------------
@pytest.fixture(scope="module")
def hostile_rig(tansu_broker: RunningBroker,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    run_dir = tmp_path_factory.mktemp("hostile")
    rig = Rig(tansu_broker, chaos_settings(tansu_broker, run_dir), run_dir,
              catalog=CATALOG[:20]).prepare()
    rig.start_worker(0)
    yield rig
    rig.stop_all()


def _publish(rig: Rig, topic: str, recs: list[tuple[bytes | None, bytes]]) -> None:
    asyncio.run(publish(rig.bootstrap, topic, recs, one_record_batches=True))


def _view(user: str, n: int, **extra: Any) -> tuple[bytes, bytes]:
    event = {"event_id": f"{user}-{n}", "type": "view", "user_id": user, "item_id": ITEMS[n],
             "ts_ms": int(time.time() * 1000) - 1000, **extra}
    return user.encode(), codec.dumps(event)


def test_hostile_field_names_do_not_grow_the_metrics(hostile_rig: Rig) -> None:
    rig = hostile_rig
    _publish(rig, rig.settings.topics.events,
             [_view("names-u", 1, **{f"x{n:04d}" * 8: 1}) for n in range(200)])
    assert rig.wait_processed(60)
    worker = rig.live[0]
    series = [name for name in worker.metrics() if name.startswith("stream_rec_dlq_total")]
    assert worker.metric_total("stream_rec_dlq_total") >= 200
    assert len(series) <= 16, f"{len(series)} dead-letter series: labels come from input"


def test_a_message_nested_1000_deep_is_dead_lettered_and_the_worker_goes_on(
        hostile_rig: Rig) -> None:
    # last in the module: before the fix in errors.py, it stopped the shared worker
    rig, topics = hostile_rig, hostile_rig.settings.topics
    deep = next(case for case in hostile_cases() if case.name == "deep_in_field")
    deep_item = b'{"item_id":' + b"[" * 1000 + b"]" * 1000 + b',"title":"X"}'
    _publish(rig, topics.catalog, [(b"deep", deep_item),
                                   (b"ZZ-NEW", b'{"item_id":"ZZ-NEW","title":"NEW ITEM"}')])
    _publish(rig, topics.events, [(deep.key, deep.raw)] + [_view("deep-u", n) for n in range(5)])
    assert rig.wait_processed(60)
    worker = rig.live[0]
    assert worker.alive(), "a hostile catalog or event record stopped the worker"
    dead = asyncio.run(read_topic(rig.bootstrap, topics.dlq))
    assert deep.raw in {base64.b64decode(codec.loads(d.value)["original_b64"]) for d in dead}
    state = worker.state("deep-u")
    assert state is not None and state["counts"] == {"view": 5}
    with urllib.request.urlopen(worker.url + "/readyz", timeout=5) as response:
        assert codec.loads(response.read())["catalog_items"] == 21
    assert "Crashed" not in (rig.run_dir / "worker0-1.log").read_text(errors="replace")
