"""One benchmark run, and a sweep of them: real broker, worker processes, real events.

A run: fresh topics on the broker, the catalog, the embedder process holding the model
(unless configured off; its RSS is reported apart), ``workers`` serving worker processes,
the recs reader in its own process (:class:`~stream_rec.bench.probe.RecsProbe`), then
the load generator publishes replicated real events (:mod:`stream_rec.bench.workload`) at
``rate`` per second (or as fast as the workers drain, with at most ``backlog`` events
outstanding) for ``warmup_s + duration_s``, while the workers' RSS, CPU time and
consumer-group lag are sampled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from stream_rec.bench.probe import RecsProbe
from stream_rec.bench.summary import RunObservations, summarize
from stream_rec.bench.workload import due_count, replicate
from stream_rec.broker.publisher import catalog_records, publish
from stream_rec.broker.security import client_security_kwargs
from stream_rec.broker.target import BrokerTarget
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.core.events import CatalogItem, Event
from stream_rec.datasets import load_demo
from stream_rec.local.brokers import kafka_available, resolve_broker
from stream_rec.local.processes import WorkerProcess, needs_embedder

__all__ = ["BenchOptions", "find_ceiling", "run_once", "run_sweep"]

log = logging.getLogger(__name__)

_TANSU_PROBE_WAIT_MS = 5  # Tansu holds every fetch for the full wait (see faust_transport)
_KAFKA_PROBE_WAIT_MS = 100


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """One run's shape; ``rate`` None means as fast as the workers drain."""

    workers: int = 1
    rate: float | None = None
    users: int = 5_000
    duration_s: float = 30.0
    warmup_s: float = 5.0
    drain_s: float = 15.0
    backlog: int = 2_000


def run_once(settings: Settings, target: BrokerTarget, broker_name: str, options: BenchOptions,
             run_dir: Path, *, events: Sequence[Event] | None = None,
             catalog: Sequence[CatalogItem] | None = None) -> dict[str, Any]:
    """One run on a running broker; returns its summary (see :mod:`~stream_rec.bench.summary`)."""
    if events is None or catalog is None:
        demo = load_demo()
        events, catalog = demo.events, demo.catalog
    tag = uuid.uuid4().hex[:8]
    scheme = "tansu" if target.tansu else "kafka"
    settings = replace(settings, broker=f"{scheme}://{target.bootstrap}",
                       topic_prefix=f"bench-{tag}", app_id=f"bench-{tag}")
    client = client_security_kwargs(settings)
    point_dir = run_dir / f"{broker_name}-w{options.workers}-{tag}"
    point_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(target.bootstrap, settings, client))
    asyncio.run(publish(target.bootstrap, settings.topics.catalog, catalog_records(catalog),
                        client_kwargs=client, one_record_batches=target.tansu))
    with ExitStack() as stack:
        embedder = None
        if needs_embedder(settings):  # the model's process, measured apart from the workers
            embedder = WorkerProcess.embedder(replace(settings, data_dir=point_dir),
                                              log_path=point_dir / "embedder.log").start()
            stack.callback(embedder.stop)
            embedder.wait_ready(timeout_s=180)
        workers = []
        for n in range(options.workers):
            worker = WorkerProcess(replace(settings, data_dir=point_dir / f"worker-{n}"),
                                   log_path=point_dir / f"worker-{n}.log")
            workers.append(worker.start())
            stack.callback(worker.stop)
        started = time.monotonic()
        for _ in range(2 if options.workers > 1 else 1):  # again after the group settles
            for worker in workers:
                worker.wait_ready(timeout_s=180)
        ready_s = time.monotonic() - started
        probe = RecsProbe(target.bootstrap, settings.topics.recs, point_dir / "arrivals.txt",
                          client, fetch_max_wait_ms=(_TANSU_PROBE_WAIT_MS if target.tansu
                                                     else _KAFKA_PROBE_WAIT_MS)).start()
        stack.callback(probe.stop)
        procs = [psutil.Process(worker.pid) for worker in workers]
        sampler = _RssSampler(procs).start()
        stack.callback(sampler.stop)
        load_start = os.getloadavg()[0]
        load = asyncio.run(_load(target.bootstrap, settings.topics.events, settings.app_id,
                                 replicate(events, options.users), options, probe, workers,
                                 procs, client, tansu=target.tansu))
        load_end = os.getloadavg()[0]
        sampler.stop()
        arrivals = probe.stop()
        rss_peak = [max(sampler.peak_mb.get(p.pid, 0.0), _vm_hwm_mb(p.pid)) for p in procs]
        events_in = [worker.metric_total("stream_rec_events_total") for worker in workers]
        embedder_rss = _vm_hwm_mb(embedder.pid) if embedder is not None else None
    (point_dir / "arrivals.txt").unlink(missing_ok=True)
    obs = RunObservations(
        broker=broker_name, workers=options.workers, offered_rate=options.rate,
        users=options.users, produced=load.produced, arrivals=arrivals, window=load.window,
        worker_cpu_s=load.cpu_s, worker_rss_peak_mb=rss_peak, lag_samples=load.lag,
        load_avg=(load_start, load_end), stage_cpu_s=load.stage_cpu_s,
        extra={"group_lag_max": max(load.group_lag) if load.group_lag else None,
               "group_lag_end": load.group_lag[-1] if load.group_lag else None,
               "events_applied": int(sum(events_in)), "workers_ready_s": round(ready_s, 1),
               "worker_cpu_s": [round(c, 2) for c in load.cpu_s],
               "worker_rss_mb": [round(r, 1) for r in rss_peak],
               "embedder_rss_mb": round(embedder_rss, 1) if embedder_rss else None,
               "producer_rate": round(load.produced_in_window / max(
                   load.window[1] - load.window[0], 1e-9), 1),
               "model": settings.model_path or "default"})
    return summarize(obs)


def find_ceiling(run: Callable[[float], dict[str, Any]], start_rate: float, *,
                 max_points: int = 7, resolution: float = 0.1) -> dict[str, Any] | None:
    """The highest offered rate that is sustained, searched with ``run(rate)`` (a summary).

    A ramp (times 1.5 while sustained, halved while not) until one rate holds and a higher one does
    not, then bisection until they are within ``resolution`` of each other or
    ``max_points`` runs were made. Returns the best sustained summary (None if none was).
    """
    best: dict[str, Any] | None = None
    failed: float | None = None
    rate = start_rate
    for _ in range(max_points):
        row = run(rate)
        if row.get("sustained"):
            best = row if best is None or rate > float(best["offered_rate"]) else best
        else:
            failed = rate if failed is None else min(failed, rate)
        low = float(best["offered_rate"]) if best is not None else None
        if low is not None and failed is not None:
            if failed <= low * (1 + resolution):
                break
            rate = round((low + failed) / 2.0, -1)
        elif low is not None:
            rate = round(rate * 1.5, -1)
        else:
            rate = round(rate / 2.0, -1)
        if rate < 10:
            break
    return best


def run_sweep(settings: Settings, brokers: Sequence[str], workers: Sequence[int],
              rates: Sequence[float | None], base: BenchOptions, run_dir: Path,
              on_result: Callable[[dict[str, Any]], None] | None = None, *,
              ceiling_from: float | None = None) -> list[dict[str, Any]]:
    """Every (broker, workers, rate) point; a broker that cannot start yields skipped rows.

    With ``ceiling_from``, each (broker, workers) also gets a ceiling search from that rate
    (:func:`find_ceiling`): its points are rows marked ``"search": "ceiling"``, and one
    more row ``{"ceiling": rate, ...}`` names the highest sustained point.
    """
    demo = load_demo()
    results: list[dict[str, Any]] = []
    for broker in brokers:
        if broker == "kafka":
            ok, why = kafka_available()
            if not ok:
                for n in workers:
                    for rate in rates:
                        row = {"broker": broker, "workers": n,
                               "offered_rate": rate if rate is not None else "max",
                               "skipped": f"real Kafka unavailable: {why}"}
                        results.append(row)
                        if on_result:
                            on_result(row)
                continue
        with ExitStack() as stack:
            target = resolve_broker(broker, stack, run_dir=run_dir / f"broker-{broker}")
            for n in workers:
                def point(rate: float | None, n: int = n, search: bool = False,
                          target: BrokerTarget = target, broker: str = broker,
                          ) -> dict[str, Any]:
                    options = replace(base, workers=n, rate=rate)
                    row = run_once(settings, target, _broker_name(broker), options, run_dir,
                                   events=demo.events, catalog=demo.catalog)
                    if search:
                        row["search"] = "ceiling"
                    results.append(row)
                    if on_result:
                        on_result(row)
                    return row

                for rate in rates:
                    point(rate)
                if ceiling_from is not None:
                    best = find_ceiling(partial(point, search=True), ceiling_from)
                    row = {"broker": _broker_name(broker), "workers": n,
                           "ceiling": best["offered_rate"] if best else None,
                           "ceiling_recs_per_s": best["recs_per_s"] if best else None,
                           "ceiling_p99_ms": best["latency_ms_p99"] if best else None,
                           "ceiling_cpu_ms_per_rec": best["cpu_ms_per_rec"] if best else None}
                    results.append(row)
                    if on_result:
                        on_result(row)
    return results


def _broker_name(spec: str) -> str:
    return spec if spec in ("tansu", "kafka") else "external"


@dataclass
class _LoadResult:
    produced: dict[str, float]
    window: tuple[float, float]
    cpu_s: list[float]
    lag: list[int]
    group_lag: list[int]
    produced_in_window: int
    stage_cpu_s: dict[str, float]


async def _load(bootstrap: str, topic: str, group: str,
                stream: Iterator[tuple[Event, bytes, bytes]], options: BenchOptions,
                probe: RecsProbe, workers: Sequence[WorkerProcess],
                procs: Sequence[psutil.Process], client: dict[str, Any], *,
                tansu: bool) -> _LoadResult:

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2,
                                max_batch_size=65_536, **client)
    await producer.start()
    produced: dict[str, float] = {}
    lag: list[int] = []
    group_lag: list[int] = []
    sent = 0
    t0 = time.time()
    window = (t0 + options.warmup_s, t0 + options.warmup_s + options.duration_s)
    cpu_start: list[float] = []
    stages_start: dict[str, float] = {}
    broker_procs: list[psutil.Process] = []
    others_start: list[float] = []
    others_end: list[float] = []
    stages_end: dict[str, float] = {}
    sent_at_window = 0
    lag_task = asyncio.create_task(_sample_lag(bootstrap, topic, group, client,
                                               lambda: len(produced), workers, lag, group_lag,
                                               window[1], group_offsets=not tansu))
    try:
        while True:
            now = time.time()
            if now >= window[1]:
                break
            if not cpu_start and now >= window[0]:
                cpu_start = [_cpu_s(p) for p in procs]
                broker_procs = _embedded_broker_procs()
                others_start = [_cpu_s(p) for p in broker_procs] + [_cpu_s(psutil.Process())]
                stages_start = await asyncio.to_thread(_stage_cpu, workers)
                sent_at_window = sent
            if options.rate is not None:
                target = due_count(now - t0, options.rate)
            else:
                target = probe.count + options.backlog
            budget = 500  # then let the lag sampler run
            while sent < target and budget:
                event, key, value = next(stream)
                produced[event.event_id] = time.time()
                await producer.send(topic, value=value, key=key)
                sent += 1
                budget -= 1
            await asyncio.sleep(0.002 if budget else 0)
        cpu_end = [_cpu_s(p) for p in procs]
        others_end = [_cpu_s(p) for p in broker_procs] + [_cpu_s(psutil.Process())]
        stages_end = await asyncio.to_thread(_stage_cpu, workers)
        await producer.flush()
        # drain: every event's rec, or until drain_s runs out
        deadline = time.time() + options.drain_s
        while probe.count < sent and time.time() < deadline:
            await asyncio.sleep(0.1)
    finally:
        lag_task.cancel()
        await asyncio.gather(lag_task, return_exceptions=True)
        await producer.stop()
    if not cpu_start:
        cpu_start = [0.0 for _ in procs]
    stage_cpu = {stage: stages_end[stage] - stages_start.get(stage, 0.0)
                 for stage in stages_end}
    others = [b - a for a, b in zip(others_start, others_end, strict=False)]
    if others:  # the embedded broker(s), then this process (load generator + lag sampler)
        stage_cpu["_broker"] = sum(others[:-1])
        stage_cpu["_loadgen"] = others[-1]
    return _LoadResult(produced, window, [b - a for a, b in zip(cpu_start, cpu_end, strict=True)],
                       lag, group_lag, sent - sent_at_window, stage_cpu)


async def _sample_lag(bootstrap: str, topic: str, group: str, client: dict[str, Any],
                      produced: Callable[[], int], workers: Sequence[WorkerProcess],
                      lag: list[int], group_lag: list[int], until: float, *,
                      group_offsets: bool) -> None:
    """Once a second: events produced minus applied by the workers (their /metrics), and,
    with ``group_offsets``, produced minus the group's committed offsets on the events
    topic (admin OffsetFetch: Tansu 0.6 answers it in a form aiokafka cannot decode)."""

    admin: AIOKafkaAdminClient | None = None
    if group_offsets:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client)
        try:
            await admin.start()
        except Exception as exc:
            log.debug("no admin client for group lag: %r", exc)
            admin = None
    try:
        while time.time() < until:
            await asyncio.sleep(1.0)
            sent = produced()
            applied = await asyncio.to_thread(_applied, workers)
            if applied is not None:
                lag.append(max(0, sent - applied))
            if admin is not None:
                try:
                    offsets = await admin.list_consumer_group_offsets(group)
                except Exception as exc:  # a sampler must not end the run
                    log.debug("group lag unavailable: %r", exc)
                    await admin.close()
                    admin = None
                    continue
                committed = sum(max(meta.offset, 0) for tp, meta in offsets.items()
                                if tp.topic == topic)
                group_lag.append(max(0, sent - committed))
    finally:
        if admin is not None:
            await admin.close()


def _applied(workers: Sequence[WorkerProcess]) -> int | None:
    """Events the workers have taken off the events topic (applied, duplicate or dead)."""
    total = 0.0
    try:
        for worker in workers:
            metrics = worker.metrics()
            total += sum(v for k, v in metrics.items()
                         if k.startswith(("stream_rec_events_total", "stream_rec_dlq_total",
                                          "stream_rec_events_duplicate_total")))
    except OSError:
        return None
    return int(total)


def _stage_cpu(workers: Sequence[WorkerProcess]) -> dict[str, float]:
    """The workers' per-stage CPU counters, summed (empty where they cannot be read)."""
    prefix = "stream_rec_stage_cpu_seconds_total{stage="
    total: dict[str, float] = {}
    try:
        for worker in workers:
            for key, value in worker.metrics().items():
                if key.startswith(prefix):
                    stage = key[len(prefix):-1]
                    total[stage] = total.get(stage, 0.0) + value
    except OSError:
        return {}
    return total


def _embedded_broker_procs() -> list[psutil.Process]:
    """The embedded broker started by this process (a Kafka JVM or Tansu), if any."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            exe = " ".join(child.cmdline()[:1])
        except psutil.Error:
            continue
        if exe.endswith(("java", "tansu")):
            found.append(child)
    return found


def _cpu_s(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _vm_hwm_mb(pid: int) -> float:
    """Peak RSS (Linux VmHWM) of a process, 0 where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return 0.0


class _RssSampler:
    """Samples the workers' RSS twice a second in a thread; ``peak_mb`` by pid."""

    def __init__(self, procs: Sequence[psutil.Process], interval_s: float = 0.5) -> None:
        self.procs = list(procs)
        self.interval_s = interval_s
        self.peak_mb: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> _RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for proc in self.procs:
                try:
                    rss = proc.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak_mb[proc.pid] = max(self.peak_mb.get(proc.pid, 0.0), rss)
            self._stop.wait(self.interval_s)
