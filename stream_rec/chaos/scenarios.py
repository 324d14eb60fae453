"""Fault scenarios: each takes a broker, settings and records, and returns a ChaosResult.

Every scenario publishes ``records`` from a background producer while it injects its fault,
then lets the stream finish and checks the run with :meth:`Rig.finish` (user state and
changelog against the oracle, recommendations downstream, dead letters). Randomness (when
to kill) comes from the injected ``rng``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from stream_rec.chaos.harness import ChaosResult, Record, Rig
from stream_rec.config import Settings
from stream_rec.core.events import CatalogItem
from stream_rec.local.brokers import RunningBroker

__all__ = ["SCENARIOS", "StateOnRestart", "broker_restart", "kill_during_catch_up", "kill_loop",
           "model_stall", "slow_consumer", "two_workers_rebalance"]

StateOnRestart = Literal["never", "always", "alternate"]


def kill_loop(broker: RunningBroker, settings: Settings, records: Sequence[Record], *,
              run_dir: Path, rng: random.Random, kills: int = 2,
              delete_state: StateOnRestart = "never", rate: float = 250.0,
              gap_s: tuple[float, float] = (1.5, 4.0), seed: int = 0,
              catalog: Sequence[CatalogItem] = (),
              worker_env: Mapping[str, str] | None = None) -> ChaosResult:
    """SIGKILL one worker ``kills`` times at random moments while events flow, restarting
    it each time (its RocksDB dir deleted ``always``, every other time, or ``never``)."""
    rig = Rig(broker, settings, run_dir, seed=seed, catalog=catalog,
              worker_env=worker_env).prepare()
    try:
        rig.start_worker(0)
        rig.feed(records, rate)
        for n in range(kills):
            time.sleep(rng.uniform(*gap_s))
            rig.kill(0)
            wipe = delete_state == "always" or (delete_state == "alternate" and n % 2 == 1)
            rig.start_worker(0, delete_state=wipe)
        return rig.finish("kill_loop")
    finally:
        rig.stop_all()


def two_workers_rebalance(broker: RunningBroker, settings: Settings,
                          records: Sequence[Record], *, run_dir: Path, rng: random.Random,
                          rate: float = 250.0, gap_s: tuple[float, float] = (1.5, 4.0),
                          seed: int = 0, catalog: Sequence[CatalogItem] = (),
              worker_env: Mapping[str, str] | None = None) -> ChaosResult:
    """Two workers; SIGKILL one mid-stream, let the other take its partitions over, then
    restart it (its local state kept) so the partitions move back."""
    rig = Rig(broker, settings, run_dir, seed=seed, catalog=catalog,
              worker_env=worker_env).prepare()
    try:
        rig.start_worker(0)
        rig.start_worker(1)
        rig.feed(records, rate)
        time.sleep(rng.uniform(*gap_s))
        rig.kill(1)
        takeover_s = _wait_all_partitions_move(rig, timeout_s=120.0)
        if takeover_s is None:
            rig.notes.append("the survivor did not take every partition over in 120 s")
        rig.start_worker(1)
        result = rig.finish("two_workers_rebalance")
        result.notes.append(f"takeover (kill to every partition committing again): "
                            f"{takeover_s:.1f} s" if takeover_s is not None else
                            "takeover not observed")
        return result
    finally:
        rig.stop_all()


def broker_restart(broker: RunningBroker, settings: Settings, records: Sequence[Record], *,
                   run_dir: Path, rng: random.Random, rate: float = 250.0,
                   gap_s: tuple[float, float] = (2.0, 4.0), seed: int = 0,
                   catalog: Sequence[CatalogItem] = (),
                   resume_timeout_s: float = 120.0,
                   worker_env: Mapping[str, str] | None = None) -> ChaosResult:
    """Stop and start the broker mid-stream (real Kafka: it keeps its data); the worker
    must resume producing recommendations, and state must stay exact."""
    if broker.info.kind != "kafka":
        raise ValueError("broker_restart needs a broker that keeps its data (kafka); "
                         f"got {broker.info.kind}")
    rig = Rig(broker, settings, run_dir, seed=seed, catalog=catalog,
              worker_env=worker_env).prepare()
    try:
        rig.start_worker(0)
        rig.feed(records, rate)
        time.sleep(rng.uniform(*gap_s))
        started = time.monotonic()
        broker.restart()
        down_s = time.monotonic() - started
        if broker.pid is not None:
            rig.rss.watch("broker", broker.pid)
        resumed = _wait_recs_grow(rig, timeout_s=resume_timeout_s)
        if not rig.live[0].alive():
            rig.notes.append("the worker exited during the broker restart; restarted it")
            rig.start_worker(0)
        result = rig.finish("broker_restart")
        result.recs_resume_s = None if resumed is None else round(resumed, 2)
        result.notes.append(f"broker stop+start took {down_s:.1f} s")
        return result
    finally:
        rig.stop_all()


def slow_consumer(broker: RunningBroker, settings: Settings, records: Sequence[Record], *,
                  run_dir: Path, rng: random.Random, rate: float = 0.0,
                  reader_per_s: float | None = 5.0, seed: int = 0,
                  catalog: Sequence[CatalogItem] = (),
              worker_env: Mapping[str, str] | None = None) -> ChaosResult:
    """A recommendations consumer that reads ``reader_per_s`` messages a second (0: joins
    and never reads; None: no reader, the baseline) while the worker runs flat out;
    reports the worker's pace and RSS."""
    del rng  # nothing random here; the signature matches the other scenarios
    rig = Rig(broker, settings, run_dir, seed=seed, catalog=catalog,
              worker_env=worker_env).prepare()
    reader = _SlowReader(rig.bootstrap, settings.topics.recs, f"{settings.app_id}-slow",
                         reader_per_s or 0.0, rig.client_kwargs)
    try:
        worker = rig.start_worker(0)
        if reader_per_s is not None:
            reader.start()
        rig.feed(records, rate)
        samples = _sample_progress(worker, rig)
        result = rig.finish("slow_consumer")
        result.processed_per_s = _pace(samples)
        result.notes.append(
            "no reader (baseline)" if reader_per_s is None else
            f"slow reader read {reader.read} recommendations at <= {reader_per_s:g}/s "
            f"while the worker produced {result.recs_messages}")
        return result
    finally:
        reader.stop()
        rig.stop_all()


def kill_during_catch_up(broker: RunningBroker, settings: Settings,
                         records: Sequence[Record], *, run_dir: Path, rng: random.Random,
                         at_fraction: tuple[float, float] = (0.3, 0.7), seed: int = 0,
                         catalog: Sequence[CatalogItem] = (), rate: float = 0.0,
                         worker_env: Mapping[str, str] | None = None) -> ChaosResult:
    """A backlog, a crash in the middle of it, a restart on the kept disk, then a restart on
    an empty disk (a pod moved to another node): the recovered state must still be exact.

    The worker starts on topics already holding every record, is SIGKILLed once it has
    applied a random fraction of them, restarts with its RocksDB dir and finishes the
    backlog; then it is SIGKILLed again and restarted without its RocksDB dir, so its state
    comes from the changelog alone.
    """
    del rate  # the backlog is published before the worker starts
    rig = Rig(broker, settings, run_dir, seed=seed, catalog=catalog,
              worker_env=worker_env).prepare()
    try:
        rig.feed(records, 0.0)
        rig.wait_fed()
        worker = rig.start_worker(0)
        target = rng.uniform(*at_fraction) * len(records)
        deadline = time.monotonic() + 300
        while worker.metric_total("stream_rec_events_total") < target:
            if time.monotonic() > deadline:
                raise TimeoutError("the worker did not get through the backlog")
            time.sleep(0.05)
        rig.kill(0)
        rig.start_worker(0)
        rig.wait_processed()
        rig.kill(0)
        rig.start_worker(0, delete_state=True)
        return rig.finish("kill_during_catch_up")
    finally:
        rig.stop_all()


def model_stall(broker: RunningBroker, settings: Settings, records: Sequence[Record], *,
                run_dir: Path, rng: random.Random, rate: float = 100.0, seed: int = 0,
                catalog: Sequence[CatalogItem] = (),
                worker_env: Mapping[str, str] | None = None) -> ChaosResult:
    """The model slower than its deadline on every rerank (``model_deadline_ms`` below one
    model call): recommendations must keep flowing, tagged ``degraded``, state exact."""
    del rng
    if settings.model_path == "none" or settings.rerank_top_n < 2:
        raise ValueError("model_stall needs the model on (model_path) and rerank_top_n >= 2")
    rig = Rig(broker, settings, run_dir, seed=seed, catalog=catalog,
              worker_env=worker_env).prepare()
    try:
        worker = rig.start_worker(0, timeout_s=600.0)
        rig.feed(records, rate)
        samples = _sample_progress(worker, rig)
        calls = {k: v for k, v in worker.metrics().items()
                 if k.startswith("stream_rec_model_calls_total")}
        result = rig.finish("model_stall")
        result.processed_per_s = _pace(samples)
        result.notes.append(f"model calls: {calls}")
        return result
    finally:
        rig.stop_all()


def _wait_all_partitions_move(rig: Rig, timeout_s: float) -> float | None:
    """Seconds until every events partition commits past its offset at the kill."""
    started = time.monotonic()
    at_kill, _ = asyncio.run(rig.group_offsets())
    while time.monotonic() - started < timeout_s:
        committed, _ = asyncio.run(rig.group_offsets())
        if all(committed.get(p, -1) > at_kill.get(p, -1) for p in range(
                rig.settings.partitions)):
            return time.monotonic() - started
        if not rig.feeding():
            return None
        time.sleep(0.25)
    return None


def _wait_recs_grow(rig: Rig, timeout_s: float) -> float | None:
    """Seconds until the recommendations topic grows (recs resumed), or None."""
    started = time.monotonic()
    before: int | None = None
    while time.monotonic() - started < timeout_s:
        with contextlib.suppress(KafkaError):
            now = rig.recs_end()
            if before is None:
                before = now
            elif now > before:
                return time.monotonic() - started
        time.sleep(0.2)
    return None


def _sample_progress(worker: object, rig: Rig) -> list[tuple[float, float]]:
    """(seconds, events applied) every 0.5 s until the producer is done and events stop."""
    metric: Callable[[str], float] = worker.metric_total  # type: ignore[attr-defined]
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    while True:
        with contextlib.suppress(OSError):
            samples.append((time.monotonic() - started, metric("stream_rec_events_total")))
        settled = len(samples) > 4 and samples[-1][1] == samples[-5][1] > 0
        if not rig.feeding() and settled:
            return samples
        if time.monotonic() - started > 900:
            return samples
        time.sleep(0.5)


def _pace(samples: Sequence[tuple[float, float]]) -> float:
    moving = [(t, n) for t, n in samples if n > 0]
    if len(moving) < 2:
        return 0.0
    last = max(moving, key=lambda s: s[1])
    first_t = moving[0][0]
    top = next(t for t, n in moving if n == last[1])
    return round((last[1] - moving[0][1]) / (top - first_t), 1) if top > first_t else 0.0


class _SlowReader(threading.Thread):
    """A consumer group member that reads one record at a time, slowly (or never)."""

    def __init__(self, bootstrap: str, topic: str, group: str, per_s: float,
                 client_kwargs: dict[str, object]) -> None:
        super().__init__(name="chaos-slow-reader", daemon=True)
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.per_s = per_s
        self.client_kwargs = client_kwargs
        self.read = 0
        self._done = threading.Event()

    def run(self) -> None:
        with contextlib.suppress(Exception):  # a test reader: its failure is not the finding
            asyncio.run(self._main())

    def stop(self) -> None:
        self._done.set()

    async def _main(self) -> None:
        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap,
                                    group_id=self.group, auto_offset_reset="earliest",
                                    max_poll_records=1, fetch_max_bytes=1024,
                                    max_partition_fetch_bytes=1024, **self.client_kwargs)
        await consumer.start()
        try:
            while not self._done.is_set():
                if self.per_s <= 0:
                    await asyncio.sleep(0.2)  # joined, never reads
                    continue
                got = await consumer.getmany(timeout_ms=200, max_records=1)
                self.read += sum(len(v) for v in got.values())
                await asyncio.sleep(1.0 / self.per_s)
        finally:
            await consumer.stop()


SCENARIOS: dict[str, Callable[..., ChaosResult]] = {
    "kill_loop": kill_loop,
    "two_workers_rebalance": two_workers_rebalance,
    "broker_restart": broker_restart,
    "slow_consumer": slow_consumer,
    "kill_during_catch_up": kill_during_catch_up,
    "model_stall": model_stall,
}
