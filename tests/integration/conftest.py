"""Integration fixtures: a unique set of topics per test on the session brokers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import DEMO, Pipeline

from stream_rec.broker.publisher import catalog_records
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.local.brokers import RunningBroker


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
