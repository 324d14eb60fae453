"""A worker as operations see it: /healthz, /readyz, /metrics over HTTP, then SIGTERM.

On each session broker (the embedded Tansu, and real Apache Kafka where it can run):
create the topics, start one ``stream-rec worker`` subprocess, publish a few valid events
(one record per batch, so Tansu's ListOffsets reports true end offsets; see FACTS), scrape
the worker, stop it with SIGTERM and check that it exited 0 having committed exactly the
events topic's end offsets. The commit interval is set far beyond the test's length, so
only the shutdown commit can explain it. Then the same in mid-stream, with a restart: the
second worker must apply exactly the events the first had not committed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from stream_rec.broker.publisher import event_records, publish
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.core.events import Event
from stream_rec.local.brokers import RunningBroker
from stream_rec.local.processes import WorkerProcess

pytestmark = pytest.mark.integration

USERS = [f"ops-user-{i}" for i in range(8)]  # these keys hash onto all 4 partitions
EVENTS_PER_USER = 3
NO_PERIODIC_COMMIT_S = 600.0


def ops_settings(broker: RunningBroker, data_dir: Path) -> Settings:
    """Settings of a worker on its own topics and group (the broker is shared)."""
    name = f"test-ops-{uuid.uuid4().hex[:8]}"
    scheme = "tansu" if broker.info.kind == "tansu" else "kafka"
    return Settings(broker=f"{scheme}://{broker.info.bootstrap}", topic_prefix=name, app_id=name,
                    data_dir=data_dir, commit_interval_s=NO_PERIODIC_COMMIT_S)


def events(now_ms: int) -> list[Event]:
    return [Event(event_id=f"ops-{u}-{n}", type="view", user_id=u, item_id=f"item-{n}",
                  ts_ms=now_ms + n)
            for n in range(EVENTS_PER_USER) for u in USERS]


def http_get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type(), exc.read()


async def group_offsets(bootstrap: str, settings: Settings
                        ) -> tuple[dict[int, int], dict[int, int]]:
    """(committed offset, end offset) per events partition; -1 = nothing committed."""
    partitions = [TopicPartition(settings.topics.events, p) for p in range(settings.partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Tansu drops the connection on OffsetFetch without a partition list: name them
        committed = await admin.list_consumer_group_offsets(settings.app_id,
                                                            partitions=partitions)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return ({tp.partition: meta.offset for tp, meta in committed.items()},
            {tp.partition: end for tp, end in ends.items()})


def wait_for_metric(worker: WorkerProcess, name: str, at_least: float,
                    timeout_s: float = 60.0) -> float:
    deadline = time.monotonic() + timeout_s
    value = worker.metric_total(name)
    while value < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
        value = worker.metric_total(name)
    return value


def test_users_cover_every_partition() -> None:
    assert {(murmur2(u.encode()) & 0x7FFFFFFF) % Settings().partitions for u in USERS} == {
        0, 1, 2, 3}


def test_worker_serves_health_and_metrics_and_commits_on_sigterm(
        broker: RunningBroker, tmp_path: Path) -> None:
    bootstrap = broker.info.bootstrap
    settings = ops_settings(broker, tmp_path / "data")
    asyncio.run(ensure_topics(bootstrap, settings))
    worker = WorkerProcess(settings, log_path=tmp_path / "worker.log").start()
    try:
        worker.wait_ready(timeout_s=120)

        status, content_type, body = http_get(worker.url + "/healthz")
        assert (status, content_type, json.loads(body)) == (200, "application/json",
                                                            {"status": "ok"})
        status, content_type, body = http_get(worker.url + "/readyz")
        assert (status, content_type) == (200, "application/json")
        assert json.loads(body)["ready"] is True

        sent = events(int(time.time() * 1000))
        asyncio.run(publish(bootstrap, settings.topics.events, list(event_records(sent)),
                            one_record_batches=True))
        assert wait_for_metric(worker, "stream_rec_events_total", len(sent)) == len(sent)

        status, content_type, body = http_get(worker.url + "/metrics")
        assert (status, content_type) == (200, "text/plain")
        text = body.decode()
        assert f'stream_rec_events_total{{type="view"}} {float(len(sent))}' in text
        assert "stream_rec_ready 1.0" in text
        assert worker.metric_total("stream_rec_recs_total") == len(sent)  # views trigger
        assert worker.metric_total("stream_rec_dlq_total") == 0
    finally:
        code = worker.stop(timeout_s=60)
    log_tail = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
    assert code == 0, f"worker exited with {code}:\n{log_tail}"

    committed, ends = asyncio.run(group_offsets(bootstrap, settings))
    per_partition = {p: sum(1 for u in USERS
                            if (murmur2(u.encode()) & 0x7FFFFFFF) % settings.partitions == p)
                     * EVENTS_PER_USER for p in range(settings.partitions)}
    assert ends == per_partition  # on Tansu only right with one record per batch
    assert committed == ends, f"SIGTERM did not commit what was processed:\n{log_tail}"


def test_sigterm_mid_stream_then_restart_applies_every_event_exactly_once(
        broker: RunningBroker, tmp_path: Path) -> None:
    bootstrap = broker.info.bootstrap
    settings = ops_settings(broker, tmp_path / "data")
    asyncio.run(ensure_topics(bootstrap, settings))
    per_user = 50  # below the dedupe window: a replayed event would show as a duplicate
    now_ms = int(time.time() * 1000)
    sent = [Event(event_id=f"mid-{u}-{n}", type="view", user_id=u, item_id=f"item-{n % 13}",
                  ts_ms=now_ms + n) for n in range(per_user) for u in USERS]
    first = WorkerProcess(settings, log_path=tmp_path / "first.log").start()
    producer = threading.Thread(target=lambda: asyncio.run(publish(
        bootstrap, settings.topics.events, list(event_records(sent)), rate=400.0,
        one_record_batches=True)))
    try:
        first.wait_ready(timeout_s=120)
        producer.start()
        wait_for_metric(first, "stream_rec_events_total", len(sent) // 4)
    finally:
        code = first.stop(timeout_s=60)  # SIGTERM while events still arrive
        producer.join(60)
    assert code == 0
    committed, ends = asyncio.run(group_offsets(bootstrap, settings))
    assert sum(ends.values()) == len(sent)
    left = sum(ends.values()) - sum(max(offset, 0) for offset in committed.values())

    second = WorkerProcess(settings, log_path=tmp_path / "second.log").start()
    try:
        second.wait_ready(timeout_s=120)
        assert wait_for_metric(second, "stream_rec_events_total", left) == left
        time.sleep(1.0)  # a replay of committed events, if there were one, would show now
        assert second.metric_total("stream_rec_events_total") == left
        assert second.metric_total("stream_rec_events_duplicate_total") == 0
        # the first worker's updates survived in data_dir and nothing was lost or doubled
        for user in USERS:
            state = second.state(user)
            assert state is not None and state["counts"] == {"view": per_user}, user
    finally:
        assert second.stop(timeout_s=60) == 0
