"""LoopWatch: how long the worker's event loop was blocked (its Kafka heartbeats wait)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from stream_rec.serving.loop_watch import LoopWatch
from stream_rec.serving.metrics import WorkerMetrics


async def _watch_while(watch: LoopWatch, block_s: float) -> list[float]:
    """The lags ``watch`` reports while the loop is blocked once for ``block_s``."""
    lags: list[float] = []
    task = asyncio.ensure_future(watch.run(lags.append))
    await asyncio.sleep(0)  # the watch schedules its first wake-up
    time.sleep(block_s)  # synchronous work on the loop: nothing else runs meanwhile
    while len(lags) < 2:
        await asyncio.sleep(watch.interval_s / 2)
    task.cancel()
    return lags


def test_a_blocked_loop_shows_as_the_lag_of_the_next_wake_up(
        caplog: pytest.LogCaptureFixture) -> None:
    watch = LoopWatch(interval_s=0.02, warn_s=0.1)
    with caplog.at_level(logging.WARNING, logger="stream_rec.serving.loop_watch"):
        lags = asyncio.run(_watch_while(watch, 0.25))
    # the wake-up due 0.02 s after the start ran only after the 0.25 s block
    assert lags[0] >= 0.25 - 0.02
    assert "event loop was blocked" in caplog.text and "session timeout" in caplog.text


def test_a_short_lag_is_recorded_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    watch = LoopWatch(interval_s=0.02, warn_s=5.0)
    with caplog.at_level(logging.WARNING, logger="stream_rec.serving.loop_watch"):
        lags = asyncio.run(_watch_while(watch, 0.0))
    assert len(lags) >= 2 and all(lag >= 0.0 for lag in lags)
    assert caplog.text == ""


def test_the_workers_histogram_counts_a_blocked_wake_up_above_its_bucket() -> None:
    metrics = WorkerMetrics()

    async def scenario() -> None:
        watch = LoopWatch(interval_s=0.02, warn_s=5.0)
        task = asyncio.ensure_future(watch.run(metrics.loop_lag.observe))  # as the worker
        await asyncio.sleep(0)
        time.sleep(0.3)
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(scenario())
    sample = metrics.registry.get_sample_value
    count = sample("stream_rec_event_loop_lag_seconds_count")
    within = sample("stream_rec_event_loop_lag_seconds_bucket", {"le": "0.25"})
    # the alert StreamRecEventLoopBlocked counts late wake-ups this way (count - bucket)
    assert count is not None and within is not None
    assert count >= 2 and count - within >= 1


def test_an_interval_not_below_the_warning_is_refused() -> None:
    with pytest.raises(ValueError, match="interval_s < warn_s"):
        LoopWatch(interval_s=1.0, warn_s=1.0)
