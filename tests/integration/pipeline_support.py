"""Shared by the integration tests: a Pipeline of unique topics on a session broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from stream_rec import codec
from stream_rec.broker import RunningBroker
from stream_rec.config import Settings
from stream_rec.datasets import load_demo
from stream_rec.publisher import publish
from stream_rec.workerproc import WorkerProcess

DEMO = load_demo()


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
