"""Per-arm online metrics from real feedback: which arm earned each click and purchase.

Pure and bounded: feed it every recommendation message (as on the recs topic) and every
user event, in time order; it keeps only recommendations still inside the attribution
window. Rules (docs/ab-testing.md):

* a ``rec_click`` whose ``rec_id`` names a known recommendation is a click for that
  recommendation's arm, counted once per ``rec_id``;
* a ``purchase`` of an item that was in a recommendation shown to the same user at most
  ``window_ms`` earlier is a conversion for the newest such recommendation's arm (last
  touch), counted once per (``rec_id``, item); revenue is price * quantity when priced.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_rec.ab.stats import wilson_interval
from stream_rec.core.events import Event
from stream_rec.core.percentiles import percentile

__all__ = ["DEFAULT_WINDOW_MS", "LATENCY_RESERVOIR", "ArmStats", "Attribution"]

DEFAULT_WINDOW_MS = 24 * 3_600_000
LATENCY_RESERVOIR = 4096
DEFAULT_MAX_RECS = 1_000_000


@dataclass(slots=True)
class ArmStats:
    """Running counters of one arm; latency is a bounded uniform reservoir sample."""

    served: int = 0
    clicks: int = 0
    conversions: int = 0  # (rec_id, item) pairs bought within the window
    converted_recs: int = 0  # recommendations with at least one conversion
    revenue: float = 0.0
    fallbacks: int = 0  # degraded recommendations (the model was slow or missing)
    latency_seen: int = 0
    latency_ms: list[float] = field(default_factory=list)

    def add_latency(self, value_ms: float, rng: random.Random,
                    capacity: int = LATENCY_RESERVOIR) -> None:
        """Reservoir sampling (algorithm R): every sample kept with equal probability."""
        self.latency_seen += 1
        if len(self.latency_ms) < capacity:
            self.latency_ms.append(value_ms)
            return
        slot = rng.randrange(self.latency_seen)
        if slot < capacity:
            self.latency_ms[slot] = value_ms

    def summary(self) -> dict[str, Any]:
        """Counts, rates with Wilson 95% intervals, latency percentiles."""
        ctr_low, ctr_high = wilson_interval(self.clicks, self.served)
        conv_low, conv_high = wilson_interval(self.converted_recs, self.served)
        served = self.served or math.nan
        return {
            "served": self.served,
            "clicks": self.clicks,
            "ctr": self.clicks / served,
            "ctr_ci": [ctr_low, ctr_high],
            "conversions": self.conversions,
            "converted_recs": self.converted_recs,
            "conversion_rate": self.converted_recs / served,
            "conversion_rate_ci": [conv_low, conv_high],
            "revenue": round(self.revenue, 2),
            "latency_ms_p50": percentile(self.latency_ms, 0.5),
            "latency_ms_p99": percentile(self.latency_ms, 0.99),
            "fallbacks": self.fallbacks,
            "fallback_rate": self.fallbacks / served,
        }


@dataclass(slots=True)
class _Rec:
    rec_id: str
    arm: str
    user_id: str
    items: frozenset[str]
    ts_ms: int
    clicked: bool = False
    converted: set[str] = field(default_factory=set)


class Attribution:
    """Attributes clicks and purchases to the arm whose recommendation earned them."""

    def __init__(self, *, window_ms: int = DEFAULT_WINDOW_MS, arms: Iterable[str] = (),
                 max_recs: int = DEFAULT_MAX_RECS, rng: random.Random | None = None) -> None:
        if window_ms <= 0 or max_recs <= 0:
            raise ValueError(f"Attribution: window_ms and max_recs must be > 0, got "
                             f"{window_ms} and {max_recs}")
        self.window_ms = window_ms
        self.max_recs = max_recs
        self.arms: dict[str, ArmStats] = {name: ArmStats() for name in arms}
        self._rng = rng or random.Random(0)
        self._recs: dict[str, _Rec] = {}
        self._order: deque[str] = deque()  # rec ids, oldest first
        self._by_user: dict[str, deque[str]] = {}
        self._now_ms = -(2**62)

    def __len__(self) -> int:
        """Recommendations currently held (inside the window)."""
        return len(self._recs)

    def on_recommendation(self, rec: Mapping[str, Any]) -> None:
        """Record one recommendation message (rec_id, user_id, items, arm, latency_ms,
        degraded, generated_at_ms); a repeated rec_id is ignored."""
        rec_id = str(rec["rec_id"])
        if rec_id in self._recs:
            return
        arm = str(rec.get("arm") or "default")
        ts_ms = int(rec["generated_at_ms"])
        stats = self.arms.setdefault(arm, ArmStats())
        stats.served += 1
        if rec.get("degraded"):
            stats.fallbacks += 1
        latency = rec.get("latency_ms")
        if latency is not None:
            stats.add_latency(float(latency), self._rng)
        items = frozenset(str(it["item_id"]) for it in rec.get("items", ()))
        user_id = str(rec["user_id"])
        self._recs[rec_id] = _Rec(rec_id, arm, user_id, items, ts_ms)
        self._order.append(rec_id)
        self._by_user.setdefault(user_id, deque()).append(rec_id)
        self._advance(ts_ms)
        while len(self._recs) > self.max_recs:
            self._evict_oldest()

    def on_event(self, event: Event) -> None:
        """Attribute a ``rec_click`` or ``purchase``; other events only advance time."""
        self._advance(event.ts_ms)
        if event.type == "rec_click":
            rec = self._recs.get(event.rec_id or "")
            if rec is not None and not rec.clicked:
                rec.clicked = True
                self.arms[rec.arm].clicks += 1
        elif event.type == "purchase" and event.item_id:
            self._attribute_purchase(event, event.item_id)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per-arm summary (see :meth:`ArmStats.summary`), arms sorted by name."""
        return {name: self.arms[name].summary() for name in sorted(self.arms)}

    def _attribute_purchase(self, event: Event, item_id: str) -> None:
        for rec_id in reversed(self._by_user.get(event.user_id, ())):
            rec = self._recs[rec_id]
            if rec.ts_ms > event.ts_ms or event.ts_ms - rec.ts_ms > self.window_ms:
                continue
            if item_id not in rec.items:
                continue
            if item_id in rec.converted:
                return  # the last touch already earned this item
            stats = self.arms[rec.arm]
            if not rec.converted:
                stats.converted_recs += 1
            rec.converted.add(item_id)
            stats.conversions += 1
            if event.price is not None:
                stats.revenue += event.price * event.quantity
            return

    def _advance(self, ts_ms: int) -> None:
        self._now_ms = max(self._now_ms, ts_ms)
        horizon = self._now_ms - self.window_ms
        while self._order and self._recs[self._order[0]].ts_ms < horizon:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        rec = self._recs.pop(self._order.popleft())
        user_recs = self._by_user[rec.user_id]
        if user_recs and user_recs[0] == rec.rec_id:
            user_recs.popleft()
        else:
            user_recs.remove(rec.rec_id)
        if not user_recs:
            del self._by_user[rec.user_id]
