"""A serving worker logs at its configured level, and no lower."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from stream_rec.worker import faust_worker


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("level", ["warning", "error", "info"])
def test_debug_records_are_not_built_above_debug(level: str, restored_logging: None) -> None:
    app = faust.App("stream-rec-logging-test", broker="kafka://127.0.0.1:1",
                    autodiscover=False)
    worker = faust_worker(app, level)
    worker._setup_logging()  # what execute_from_commandline does first
    assert logging.getLogger().level == logging.getLevelName(level.upper())
    # the hot path's libraries: a debug call returns before building a record
    for name in ("aiokafka.producer.producer", "aiokafka.consumer.fetcher", "faust.topics"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
