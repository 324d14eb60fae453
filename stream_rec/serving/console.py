"""The console's numbers: what one worker measured (:class:`LiveStats`, a JSON snapshot per
worker) and their sum over the workers (:func:`cluster_view`). No faust here.

Rates are per worker, over the last ``window_s`` seconds of samples taken every second, and
add up across workers. Latency percentiles come from the ``latency_ms`` of the latest
recommendations this worker sent (:mod:`stream_rec.serving.latest_recs`), pooled across
workers. CPU is the worker process's CPU time; arms share a process, so each arm is
charged the worker's CPU in proportion to the recommendations it served there. Money and
energy are estimates: CPU seconds x ``price_per_vcpu_hour`` / 3600, and x ``watts_per_core``
(the cost model of ``stream-rec eval``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_rec.ab.online import ArmCounters
from stream_rec.core.percentiles import percentile

__all__ = ["Counters", "LiveStats", "cluster_view", "cost_estimates"]


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative counts of one worker at one instant (from its Prometheus counters)."""

    events: float = 0.0
    dlq: float = 0.0
    cpu_s: float = 0.0
    recs_by_arm: Mapping[str, float] = field(default_factory=dict)

    @property
    def recs(self) -> float:
        return sum(self.recs_by_arm.values())


class LiveStats:
    """One worker's recent recommendations, latency samples and counter samples."""

    def __init__(self, *, window_s: float = 15.0, keep_recs: int = 20,
                 keep_latencies: int = 1000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self.latest: deque[dict[str, Any]] = deque(maxlen=keep_recs)
        self.latencies: dict[str, deque[float]] = {}
        self._keep_latencies = keep_latencies
        self._samples: deque[tuple[float, Counters]] = deque()

    def on_rec(self, rec: Mapping[str, Any]) -> None:
        """A recommendation this worker sent (acknowledged by the broker)."""
        arm = str(rec.get("arm", "?"))
        ring = self.latencies.setdefault(arm, deque(maxlen=self._keep_latencies))
        ring.append(float(rec.get("latency_ms", 0.0)))
        self.latest.append(dict(rec))

    def sample(self, counters: Counters) -> None:
        """Record the counters now (a timer calls this every second)."""
        now = self.clock()
        self._samples.append((now, counters))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()

    def rates(self) -> dict[str, Any]:
        """Per-second rates over the window: events, recs (and per arm), DLQ, CPU ms."""
        if len(self._samples) < 2:
            return {"events_per_s": 0.0, "recs_per_s": 0.0, "dlq_per_s": 0.0,
                    "cpu_ms_per_s": 0.0, "recs_per_s_by_arm": {}, "window_s": 0.0}
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        span = max(t1 - t0, 1e-9)
        arms = set(first.recs_by_arm) | set(last.recs_by_arm)
        return {
            "events_per_s": max(0.0, last.events - first.events) / span,
            "recs_per_s": max(0.0, last.recs - first.recs) / span,
            "dlq_per_s": max(0.0, last.dlq - first.dlq) / span,
            "cpu_ms_per_s": max(0.0, last.cpu_s - first.cpu_s) * 1000.0 / span,
            "recs_per_s_by_arm": {
                arm: max(0.0, last.recs_by_arm.get(arm, 0.0) - first.recs_by_arm.get(arm, 0.0))
                / span for arm in sorted(arms)},
            "window_s": span,
        }

    def snapshot(self, now: Counters, *, worker: Mapping[str, Any], lag: int | None,
                 ab: Mapping[str, ArmCounters] | None,
                 title: Callable[[str], str]) -> dict[str, Any]:
        """This worker's part of the console, as JSON-ready values (``/api/worker``):
        totals as of ``now``, rates over the sampled window."""
        last = now
        return {
            "worker": dict(worker),
            "at_ms": int(time.time() * 1000),
            "totals": {"events": last.events, "recs": last.recs, "dlq": last.dlq,
                       "recs_by_arm": dict(last.recs_by_arm)},
            "rates": self.rates(),
            "lag": lag,
            "latencies_ms": {arm: list(ring) for arm, ring in self.latencies.items()},
            "ab": {arm: c.to_dict() for arm, c in ab.items()} if ab is not None else None,
            "latest": [_with_titles(rec, title) for rec in reversed(self.latest)],
        }


def cost_estimates(cpu_ms_per_rec: float | None, *, price_per_vcpu_hour: float,
                   watts_per_core: float) -> dict[str, float | None]:
    """USD per million recs and joules per rec from CPU milliseconds per rec.

    >>> cost_estimates(3.6, price_per_vcpu_hour=0.04, watts_per_core=10.0)["usd_per_million"]
    0.04
    """
    if cpu_ms_per_rec is None:
        return {"usd_per_million": None, "joules_per_rec": None}
    cpu_s = cpu_ms_per_rec / 1000.0
    return {"usd_per_million": round(cpu_s * 1e6 / 3600.0 * price_per_vcpu_hour, 6),
            "joules_per_rec": round(cpu_s * watts_per_core, 6)}


def cluster_view(snapshots: Sequence[Mapping[str, Any]], *, price_per_vcpu_hour: float,
                 watts_per_core: float, dlq: Sequence[Mapping[str, Any]] = (),
                 unreachable: Sequence[Mapping[str, str]] = (),
                 arm_order: Sequence[str] = (), latest: int = 20) -> dict[str, Any]:
    """The sum over workers' snapshots: what the console page shows (``/api/console``)."""
    rates = {name: sum(s["rates"][name] for s in snapshots)
             for name in ("events_per_s", "recs_per_s", "dlq_per_s", "cpu_ms_per_s")}
    totals = {name: sum(s["totals"][name] for s in snapshots)
              for name in ("events", "recs", "dlq")}
    lags = [s["lag"] for s in snapshots if s.get("lag") is not None]
    recs = sorted((rec for s in snapshots for rec in s["latest"]),
                  key=lambda rec: rec.get("generated_at_ms", 0), reverse=True)
    workers = [{**s["worker"], "rates": s["rates"], "lag": s.get("lag")} for s in snapshots]
    return {
        "at_ms": int(time.time() * 1000),
        "workers": workers,
        "unreachable": list(unreachable),
        "rates": rates,
        "totals": totals,
        "lag": sum(lags) if lags else None,
        "arms": _arms(snapshots, arm_order, price_per_vcpu_hour, watts_per_core),
        "latest": _dedupe(recs)[:latest],
        "dlq": list(dlq),
        "cost_model": {"price_per_vcpu_hour": price_per_vcpu_hour,
                       "watts_per_core": watts_per_core},
    }


def _arms(snapshots: Sequence[Mapping[str, Any]], arm_order: Sequence[str],
          price: float, watts: float) -> list[dict[str, Any]]:
    names: list[str] = list(arm_order)
    for s in snapshots:
        for arm in [*s["totals"]["recs_by_arm"], *s["latencies_ms"], *(s["ab"] or {})]:
            if arm not in names:
                names.append(arm)
    rows = []
    for arm in names:
        latencies = [x for s in snapshots for x in s["latencies_ms"].get(arm, ())]
        recs_per_s = sum(s["rates"]["recs_per_s_by_arm"].get(arm, 0.0) for s in snapshots)
        # the worker's CPU, charged to arms in proportion to the recs they served there
        cpu_ms_per_s = sum(s["rates"]["cpu_ms_per_s"] * s["rates"]["recs_per_s_by_arm"]
                           .get(arm, 0.0) / s["rates"]["recs_per_s"]
                           for s in snapshots if s["rates"]["recs_per_s"] > 0)
        cpu_ms_per_rec = cpu_ms_per_s / recs_per_s if recs_per_s > 0 else None
        serving = [s for s in snapshots if s["totals"]["recs_by_arm"].get(arm, 0) > 0]
        row: dict[str, Any] = {
            "arm": arm,
            "recs": sum(s["totals"]["recs_by_arm"].get(arm, 0.0) for s in snapshots),
            "recs_per_s": recs_per_s,
            "latency_ms_p50": _finite(percentile(latencies, 0.5)),
            "latency_ms_p99": _finite(percentile(latencies, 0.99)),
            "latency_samples": len(latencies),
            "rss_bytes": sum(s["worker"].get("rss_bytes", 0) for s in serving) or None,
            "workers": len(serving),
            "cpu_ms_per_rec": cpu_ms_per_rec,
            **cost_estimates(cpu_ms_per_rec, price_per_vcpu_hour=price, watts_per_core=watts),
            "online": _online(arm, snapshots),
        }
        rows.append(row)
    return rows


def _online(arm: str, snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    total: ArmCounters | None = None
    for s in snapshots:
        data = (s["ab"] or {}).get(arm)
        if data is not None:
            counters = ArmCounters.from_dict(data)
            total = counters if total is None else total.merged(counters)
    if total is None:
        return None
    summary = total.summary()
    return {"served": summary["served"], "clicks": summary["clicks"],
            "ctr": _interval(summary["ctr"]),
            "converted_recs": summary["converted_recs"],
            "conversion_rate": _interval(summary["conversion_rate"])}


def _interval(value: Mapping[str, float]) -> dict[str, float | None]:
    return {k: _finite(v) for k, v in value.items()}


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _dedupe(recs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for rec in recs:
        if rec.get("rec_id") not in seen:
            seen.add(rec.get("rec_id", ""))
            out.append(rec)
    return out


def _with_titles(rec: Mapping[str, Any], title: Callable[[str], str]) -> dict[str, Any]:
    items = [{**item, "title": title(item["item_id"])} for item in rec.get("items", ())]
    return {**rec, "items": items}
