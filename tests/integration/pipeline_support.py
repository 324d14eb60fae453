"""Shared by the integration tests: a Pipeline of unique topics on a session broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from stream_rec.ab.online import ArmCounters
from stream_rec.ab.report import read_arm_counters
from stream_rec.broker.publisher import catalog_records, publish
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.events import Event
from stream_rec.datasets import load_demo
from stream_rec.local.brokers import RunningBroker
from stream_rec.local.processes import WorkerProcess

DEMO = load_demo()
WARMUP = DEMO.events[:300]  # real purchases: item statistics for the fast scorer
VIEWS_ONLY = ("view", "rec_request")  # trigger types under which the warm-up triggers nothing


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

    def start_worker(self, **overrides: Any) -> WorkerProcess:
        """Start a worker (settings ``overrides`` on top) and wait until it is ready."""
        settings = replace(self.settings, **overrides)
        worker = WorkerProcess(settings,
                               log_path=self.run_dir / f"worker-{len(self.workers)}.log")
        self.workers.append(worker.start())
        worker.wait_ready(timeout_s=120)
        return worker

    def start_embedder(self, **overrides: Any) -> WorkerProcess:
        """Start the ``--role embedder`` process (the model) and wait until it has
        published the catalog's vectors."""
        embedder = WorkerProcess.embedder(replace(self.settings, **overrides),
                                          log_path=self.run_dir / "embedder.log")
        self.workers.append(embedder.start())
        embedder.wait_ready(timeout_s=180)
        return embedder

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


def open_pipeline(broker: RunningBroker, tmp_path: Path, prefix: str,
                  **overrides: Any) -> Iterator[Pipeline]:
    """A Pipeline on unique topics with the demo catalog published; kills its workers after.

    Use from a fixture: ``yield from open_pipeline(tansu_broker, tmp_path, "t", …)``.
    """
    tag = uuid.uuid4().hex[:8]
    scheme = "tansu" if broker.info.kind == "tansu" else "kafka"
    settings = Settings(broker=f"{scheme}://{broker.info.bootstrap}",
                        topic_prefix=f"{prefix}{tag}", app_id=f"{prefix}-app-{tag}",
                        partitions=4, data_dir=tmp_path / "state", **overrides)
    pipe = Pipeline(broker, settings, tmp_path)
    asyncio.run(ensure_topics(broker.info.bootstrap, settings))
    pipe.publish(list(catalog_records(DEMO.catalog)), settings.topics.catalog)
    yield pipe
    for worker in pipe.workers:
        worker.kill()


def fresh_views(prefix: str, users: int, per_user: int = 1) -> list[Event]:
    """Views of real, already-bought items by fresh users, after :data:`WARMUP`."""
    ts = WARMUP[-1].ts_ms + 60_000
    out = []
    for round_ in range(per_user):
        for n in range(users):
            item = WARMUP[(n * 7 + round_) % len(WARMUP)].item_id
            out.append(Event(f"{prefix}-v{round_}-{n}", "view", f"{prefix}-user-{n}",
                             ts + round_ * 1000 + n, item_id=item))
    return out


def arm_counters(pipeline: Pipeline) -> dict[str, ArmCounters]:
    """Per-arm totals of the ab-arms table, read as ``stream-rec ab report`` reads them."""
    return asyncio.run(read_arm_counters(pipeline.bootstrap, pipeline.settings, timeout_s=20))


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``check`` every second until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1.0)
