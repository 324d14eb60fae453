"""Integration fixtures: a unique set of topics per test on the session brokers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import Pipeline, open_pipeline

from stream_rec.local.brokers import RunningBroker


@pytest.fixture
def pipeline(broker: RunningBroker, tmp_path: Path) -> Iterator[Pipeline]:
    yield from open_pipeline(broker, tmp_path, "t", commit_interval_s=0.5)
