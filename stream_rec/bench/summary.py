"""Turn one benchmark run's raw observations into its summary (pure, no I/O).

Latency of a recommendation = its arrival time at the separate reader process minus the
time its trigger event was handed to the producer (both wall clock, one machine).
Throughput counts recommendations that arrived inside the measured window (the run after
its warm-up, until publishing stopped); CPU per rec divides the workers' CPU time in that
window by the same count, and splits it by the workers' per-stage CPU counters.

A point is **sustained** when all of these hold (:func:`is_sustained`): recs/s ≥ 95 % of
the offered rate; the lag (events produced minus taken) at the end is at most one second
of input (or 100 events) and not growing (the last sample ≤ the first half's largest
sample + 1 s of input); and p99 latency ≤ :data:`SUSTAINED_P99_MS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_rec.core.percentiles import percentile

__all__ = ["STAGES", "SUMMARY_KEYS", "SUSTAINED_P99_MS", "RunObservations", "is_sustained",
           "summarize"]

#: a queue that grows shows up as seconds of latency; a point above this is not sustained
SUSTAINED_P99_MS = 500.0
#: the worker's per-stage CPU counters (``stream_rec_stage_cpu_seconds``)
STAGES = ("state", "ranking", "output")

#: Keys every summary has, in this order (results.json, the Markdown table, the plot).
SUMMARY_KEYS = ("broker", "workers", "offered_rate", "users", "duration_s", "events_sent",
                "recs_received", "recs_per_s", "latency_ms_p50", "latency_ms_p90",
                "latency_ms_p99", "latency_ms_max", "lag_max", "lag_end", "sustained",
                "rss_mb_max", "cpu_ms_per_rec", "cpu_util", "load_avg_1m_start",
                "load_avg_1m_end")


@dataclass
class RunObservations:
    """What one run saw, in raw form."""

    broker: str
    workers: int
    offered_rate: float | None  # None: as fast as possible
    users: int
    produced: Mapping[str, float]  # trigger event id -> produce time (unix s)
    arrivals: Mapping[str, float]  # trigger event id -> arrival time at the reader (unix s)
    window: tuple[float, float]  # measured window (unix s): after warm-up, until the end
    worker_cpu_s: Sequence[float]  # CPU seconds each worker spent inside the window
    worker_rss_peak_mb: Sequence[float]
    lag_samples: Sequence[int] = ()  # events produced minus applied by the workers, 1/s
    load_avg: tuple[float, float] = (math.nan, math.nan)  # 1-min load at start and end
    stage_cpu_s: Mapping[str, float] = field(default_factory=dict)  # per stage, in window
    extra: dict[str, Any] = field(default_factory=dict)


def is_sustained(offered: float | None, recs_per_s: float, lag_samples: Sequence[int],
                 p99_ms: float) -> bool:
    """The sustained criterion (module docstring); never at ``--rate max``."""
    if offered is None or recs_per_s < 0.95 * offered:
        return False
    if math.isnan(p99_ms) or p99_ms > SUSTAINED_P99_MS:
        return False
    if not lag_samples:
        return True
    one_second = max(offered, 100.0)
    first_half = lag_samples[: max(1, len(lag_samples) // 2)]
    return (lag_samples[-1] <= one_second
            and lag_samples[-1] <= max(first_half) + one_second)


def summarize(obs: RunObservations) -> dict[str, Any]:
    """The summary dict (keys :data:`SUMMARY_KEYS`, then ``obs.extra``)."""
    start, end = obs.window
    length = max(end - start, 1e-9)
    in_window = sum(1 for t in obs.arrivals.values() if start <= t <= end)
    latencies = [(obs.arrivals[event_id] - sent) * 1000.0
                 for event_id, sent in obs.produced.items()
                 if sent >= start and event_id in obs.arrivals]
    recs_per_s = in_window / length
    cpu_s = sum(obs.worker_cpu_s)
    lag_end = obs.lag_samples[-1] if obs.lag_samples else 0
    offered = obs.offered_rate
    p99 = percentile(latencies, 0.99)
    sustained = is_sustained(offered, recs_per_s, obs.lag_samples, p99)
    summary: dict[str, Any] = {
        "broker": obs.broker,
        "workers": obs.workers,
        "offered_rate": offered if offered is not None else "max",
        "users": obs.users,
        "duration_s": round(length, 2),
        "events_sent": len(obs.produced),
        "recs_received": len(obs.arrivals),
        "recs_per_s": round(recs_per_s, 1),
        "latency_ms_p50": _ms(percentile(latencies, 0.50)),
        "latency_ms_p90": _ms(percentile(latencies, 0.90)),
        "latency_ms_p99": _ms(p99),
        "latency_ms_max": _ms(max(latencies) if latencies else math.nan),
        "lag_max": max(obs.lag_samples, default=0),
        "lag_end": lag_end,
        "sustained": sustained,
        "rss_mb_max": round(max(obs.worker_rss_peak_mb, default=0.0), 1),
        "cpu_ms_per_rec": round(cpu_s * 1000.0 / in_window, 3) if in_window else None,
        "cpu_util": round(cpu_s / length, 3),
        "load_avg_1m_start": round(obs.load_avg[0], 2),
        "load_avg_1m_end": round(obs.load_avg[1], 2),
    }
    if obs.stage_cpu_s and in_window:
        staged = sum(obs.stage_cpu_s.get(stage, 0.0) for stage in STAGES)
        split = {f"cpu_ms_per_rec_{stage}": round(obs.stage_cpu_s.get(stage, 0.0) * 1000.0
                                                  / in_window, 3) for stage in STAGES}
        split["cpu_ms_per_rec_broker_io"] = round(max(0.0, cpu_s - staged) * 1000.0
                                                  / in_window, 3)
        for name in ("_broker", "_loadgen"):  # outside the workers: the embedded broker and
            if name in obs.stage_cpu_s:        # the load generator (this machine's costs)
                split[f"{name[1:]}_cpu_ms_per_rec"] = round(
                    obs.stage_cpu_s[name] * 1000.0 / in_window, 3)
        summary.update(split)
    return {**summary, **obs.extra}


def _ms(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 2)
