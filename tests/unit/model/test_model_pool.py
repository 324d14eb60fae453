"""ModelPool limits with a fake model: load shedding, deadlines, counters, sync API."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from stream_rec.errors import ModelError, ModelTimeout
from stream_rec.model.pool import ModelBusy, ModelPool


class SlowModel:
    """Scores by candidate length after ``delay_s``; records the threads it ran on."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.threads: set[str] = set()
        self.closed = False

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        time.sleep(self.delay_s)
        return np.ones((len(texts), 4), dtype=np.float32)

    def score_candidates(self, prefix: str, candidates: Sequence[str]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        return np.array([-float(len(c)) for c in candidates], dtype=np.float32)

    def close(self) -> None:
        self.closed = True


def test_score_runs_off_the_event_loop_thread() -> None:
    model = SlowModel()
    with ModelPool([model]) as pool:
        scores = asyncio.run(pool.score("p", ["a", "bbb"], deadline_s=5))
    np.testing.assert_array_equal(scores, [-1.0, -3.0])
    assert model.threads and threading.current_thread().name not in model.threads
    assert model.closed


def test_deadline_miss_raises_model_timeout_at_the_deadline() -> None:
    with ModelPool([SlowModel(delay_s=0.5)]) as pool:
        started = time.perf_counter()
        with pytest.raises(ModelTimeout, match="50 ms deadline"):
            asyncio.run(pool.score("p", ["a"], deadline_s=0.05))
        assert time.perf_counter() - started < 0.3
        assert pool.stats().timeouts == 1


def test_full_queue_raises_model_busy_immediately() -> None:
    async def scenario(pool: ModelPool) -> None:
        first = asyncio.ensure_future(pool.score("p", ["a"], deadline_s=5))
        second = asyncio.ensure_future(pool.score("p", ["b"], deadline_s=5))
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        with pytest.raises(ModelBusy, match="max_pending=2"):
            await pool.score("p", ["c"], deadline_s=5)
        assert time.perf_counter() - started < 0.05
        await asyncio.gather(first, second)

    with ModelPool([SlowModel(delay_s=0.2)], max_pending=2) as pool:
        asyncio.run(scenario(pool))
        stats = pool.stats()
    assert stats.busy_rejections == 1 and stats.completed == 2 and stats.pending == 0
    assert issubclass(ModelBusy, ModelError)


def test_queued_request_past_its_deadline_is_dropped_not_run() -> None:
    model = SlowModel(delay_s=0.2)

    async def scenario(pool: ModelPool) -> None:
        running = asyncio.ensure_future(pool.score("p", ["a"], deadline_s=5))
        await asyncio.sleep(0.01)
        with pytest.raises(ModelTimeout):
            await pool.score("p", ["queued"], deadline_s=0.05)
        await running

    with ModelPool([model]) as pool:
        asyncio.run(scenario(pool))
        stats = pool.stats()
    assert stats.completed == 1 and stats.pending == 0


def test_counters_track_calls_batch_sizes_and_queue_depth() -> None:
    with ModelPool([SlowModel(), SlowModel()]) as pool:
        pool.score_many([("p", ["a", "b", "c"]), ("p", ["d"])])
        pool.embed_sync(["x"] * 5, batch_size=2)
        stats = pool.stats()
    assert stats.size == 2 and stats.calls == 5 and stats.completed == 5
    assert stats.items == 9 and stats.max_batch == 3 and stats.pending == 0
    assert stats.max_pending_seen >= 1 and stats.mean_batch == pytest.approx(9 / 5)


def test_sync_api_spreads_work_over_instances_and_keeps_order() -> None:
    models = [SlowModel(delay_s=0.05), SlowModel(delay_s=0.05)]
    with ModelPool(models) as pool:
        started = time.perf_counter()
        results = pool.score_many([("p", ["x" * i]) for i in range(4)])
        elapsed = time.perf_counter() - started
    assert [float(r[0]) for r in results] == [0.0, -1.0, -2.0, -3.0]
    assert elapsed < 0.18  # 4 x 50 ms on two instances
    assert all(m.threads for m in models)


def test_closed_pool_refuses_work_with_a_model_error() -> None:
    pool = ModelPool([SlowModel()])
    pool.close()
    with pytest.raises(ModelError, match="closed"):
        pool.score_sync("p", ["a"])


def test_a_run_of_missed_deadlines_opens_the_circuit_and_calls_fail_fast() -> None:
    from stream_rec.model.breaker import CircuitBreaker
    from stream_rec.model.pool import CircuitOpen

    async def scenario(pool: ModelPool) -> float:
        for _ in range(2):
            with pytest.raises(ModelTimeout):
                await pool.score("p", ["a"], deadline_s=0.02)
        started = time.perf_counter()
        with pytest.raises(CircuitOpen, match="skipping it for 60 s"):
            await pool.score("p", ["a"], deadline_s=0.02)
        return time.perf_counter() - started

    with ModelPool([SlowModel(delay_s=0.2)], max_pending=8,
                   breaker=CircuitBreaker(failures=2, cooldown_s=60)) as pool:
        waited = asyncio.run(scenario(pool))
        assert waited < 0.01  # refused without waiting for the deadline
        assert pool.stats().circuit_rejections == 1
