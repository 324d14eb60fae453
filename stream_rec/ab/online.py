"""Online attribution, one message at a time: per-user rec logs and per-arm counters. Pure.

The worker keeps two tables (``stream_rec.serving.app``), written while the message that caused the
write is being processed (the trigger event that served a recommendation, the LLM arm's
decision message, or the feedback event):

* ``ab-recs``, key = user id: a :class:`RecLog`, the user's recent recommendations (rec
  id, arm, items, event time, clicked, converted items), bounded by count and by the
  attribution window, plus clicks and purchases that arrived before the recommendation
  they refer to (events and recs are different topics: their order is not guaranteed);
* ``ab-arms``, key = ``"{arm}|{partition}"``: an :class:`ArmCounters`, written only while
  processing a message of that partition, so each key has exactly one writer.

Rules are those of :class:`stream_rec.ab.Attribution` (docs/ab-testing.md), in event time:
a click counts once per ``rec_id``; a purchase of an item recommended to the same user at
most ``window_ms`` earlier converts the newest such recommendation, once per (rec, item).

Idempotent under redelivery: a log remembers the last applied offset per (topic,
partition) and skips anything at or below it; a rec id already in the log is not served
twice; the clicked flag and converted set make client retries harmless.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stream_rec.ab.stats import wilson_interval
from stream_rec.core.events import Event, Recommendation

__all__ = [
    "LATENCY_BOUNDS_MS",
    "AbParams",
    "ArmCounters",
    "ArmDelta",
    "Attributed",
    "RecLog",
    "ServedRec",
    "histogram_percentile",
    "log_event",
    "log_recommendation",
]

# Upper bounds of the latency buckets (ms), ratio 1.3 from 0.5 ms to ~3.2 min; one more
# bucket holds everything slower. A percentile is interpolated inside its bucket (±15%).
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(round(0.5 * 1.3**i, 3) for i in range(50))
# Offset tags of the log: feedback events, recommendations served while handling their
# trigger (events topic offsets), and LLM-arm recommendations (the internal llm-recs topic).
EVENTS_TOPIC, SERVED_FROM_EVENTS, SERVED_FROM_LLM = "e", "s", "l"


@dataclass(frozen=True, slots=True)
class AbParams:
    """Attribution window (event time) and the bounds of a user's log."""

    window_ms: int = 86_400_000
    max_recs: int = 32
    max_early: int = 16  # clicks/purchases held for a recommendation not yet logged


@dataclass(frozen=True, slots=True)
class ServedRec:
    """A recommendation as attribution remembers it."""

    rec_id: str
    arm: str
    items: tuple[str, ...]
    ts_ms: int
    clicked: bool = False
    converted: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecLog:
    """One user's recent recommendations and early feedback (the ``ab-recs`` value)."""

    user_id: str
    recs: tuple[ServedRec, ...] = ()
    early_clicks: tuple[tuple[str, int], ...] = ()  # (rec_id, ts_ms)
    early_purchases: tuple[tuple[str, int, float], ...] = ()  # (item_id, ts_ms, revenue)
    offsets: tuple[tuple[str, int, int], ...] = ()  # (topic tag, partition, last offset)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "recs": [[r.rec_id, r.arm, list(r.items), r.ts_ms, r.clicked, list(r.converted)]
                     for r in self.recs],
            "early_clicks": [list(c) for c in self.early_clicks],
            "early_purchases": [list(p) for p in self.early_purchases],
            "offsets": [list(o) for o in self.offsets],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecLog:
        return cls(
            user_id=data["user_id"],
            recs=tuple(ServedRec(r, a, tuple(i), ts, c, tuple(cv))
                       for r, a, i, ts, c, cv in data.get("recs", ())),
            early_clicks=tuple((r, ts) for r, ts in data.get("early_clicks", ())),
            early_purchases=tuple((i, ts, v) for i, ts, v in data.get("early_purchases", ())),
            offsets=tuple((t, p, o) for t, p, o in data.get("offsets", ())),
        )

    def applied(self, topic: str, partition: int, offset: int) -> bool:
        """True when ``offset`` of (topic, partition) was already folded in."""
        return any(t == topic and p == partition and offset <= o for t, p, o in self.offsets)

    def _at(self, topic: str, partition: int, offset: int) -> tuple[tuple[str, int, int], ...]:
        kept = [o for o in self.offsets if (o[0], o[1]) != (topic, partition)]
        return tuple(sorted((*kept, (topic, partition, offset))))


@dataclass(frozen=True, slots=True)
class ArmDelta:
    """What one message adds to its arm's counters."""

    served: int = 0
    clicks: int = 0
    conversions: int = 0
    converted_recs: int = 0
    revenue: float = 0.0
    fallback_reason: str | None = None  # set when a degraded recommendation is served
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class ArmCounters:
    """Cumulative counts of one arm (the ``ab-arms`` value); :meth:`plus` and :meth:`merged`
    are the only ways they change."""

    served: int = 0
    clicks: int = 0
    conversions: int = 0
    converted_recs: int = 0
    revenue: float = 0.0
    fallbacks: int = 0
    fallback_reasons: tuple[tuple[str, int], ...] = ()
    latency_counts: tuple[int, ...] = field(
        default_factory=lambda: (0,) * (len(LATENCY_BOUNDS_MS) + 1))

    def plus(self, delta: ArmDelta) -> ArmCounters:
        reasons = dict(self.fallback_reasons)
        fallbacks = self.fallbacks
        if delta.fallback_reason is not None:
            reasons[delta.fallback_reason] = reasons.get(delta.fallback_reason, 0) + 1
            fallbacks += 1
        counts = self.latency_counts
        if delta.latency_ms is not None:
            bucket = _bucket(delta.latency_ms)
            counts = (*counts[:bucket], counts[bucket] + 1, *counts[bucket + 1:])
        return ArmCounters(
            served=self.served + delta.served, clicks=self.clicks + delta.clicks,
            conversions=self.conversions + delta.conversions,
            converted_recs=self.converted_recs + delta.converted_recs,
            revenue=self.revenue + delta.revenue, fallbacks=fallbacks,
            fallback_reasons=tuple(sorted(reasons.items())), latency_counts=counts)

    def merged(self, other: ArmCounters) -> ArmCounters:
        """The sum of two partitions' counters."""
        reasons = dict(self.fallback_reasons)
        for name, n in other.fallback_reasons:
            reasons[name] = reasons.get(name, 0) + n
        return ArmCounters(
            served=self.served + other.served, clicks=self.clicks + other.clicks,
            conversions=self.conversions + other.conversions,
            converted_recs=self.converted_recs + other.converted_recs,
            revenue=self.revenue + other.revenue, fallbacks=self.fallbacks + other.fallbacks,
            fallback_reasons=tuple(sorted(reasons.items())),
            latency_counts=tuple(a + b for a, b in zip(self.latency_counts,
                                                       other.latency_counts, strict=True)))

    def to_dict(self) -> dict[str, Any]:
        return {"served": self.served, "clicks": self.clicks, "conversions": self.conversions,
                "converted_recs": self.converted_recs, "revenue": round(self.revenue, 6),
                "fallbacks": self.fallbacks, "fallback_reasons": dict(self.fallback_reasons),
                "latency_counts": list(self.latency_counts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmCounters:
        counts = tuple(int(n) for n in data.get("latency_counts", ()))
        if len(counts) != len(LATENCY_BOUNDS_MS) + 1:
            raise ValueError(f"latency_counts has {len(counts)} buckets, expected "
                             f"{len(LATENCY_BOUNDS_MS) + 1}: written by another version?")
        return cls(served=int(data["served"]), clicks=int(data["clicks"]),
                   conversions=int(data["conversions"]),
                   converted_recs=int(data["converted_recs"]), revenue=float(data["revenue"]),
                   fallbacks=int(data["fallbacks"]),
                   fallback_reasons=tuple(sorted((str(k), int(v)) for k, v in
                                                 data.get("fallback_reasons", {}).items())),
                   latency_counts=counts)

    def summary(self) -> dict[str, Any]:
        """Counts, rates with Wilson 95% intervals, latency percentiles (the report's row)."""
        served = self.served or math.nan
        ctr_low, ctr_high = wilson_interval(self.clicks, self.served)
        conv_low, conv_high = wilson_interval(self.converted_recs, self.served)
        return {
            "served": self.served,
            "clicks": self.clicks,
            "ctr": {"value": self.clicks / served, "ci_low": ctr_low, "ci_high": ctr_high},
            "conversions": self.conversions,
            "converted_recs": self.converted_recs,
            "conversion_rate": {"value": self.converted_recs / served, "ci_low": conv_low,
                                "ci_high": conv_high},
            "revenue": round(self.revenue, 2),
            "latency_ms_p50": histogram_percentile(self.latency_counts, 0.5),
            "latency_ms_p99": histogram_percentile(self.latency_counts, 0.99),
            "fallbacks": self.fallbacks,
            "fallback_rate": self.fallbacks / served,
            "fallback_reasons": dict(self.fallback_reasons),
        }


@dataclass(frozen=True, slots=True)
class Attributed:
    """The outcome of one message: the new log, and what it adds to which arm."""

    log: RecLog
    applied: bool  # False: a redelivery, nothing changed
    arm: str | None = None
    delta: ArmDelta | None = None
    # what happened (a metric label): served, served_again, click, click_again, click_early,
    # conversion, purchase_again, purchase_early, redelivered, ignored
    note: str = "ignored"


def log_recommendation(log: RecLog, rec: Recommendation, *, partition: int, offset: int,
                       source: str = SERVED_FROM_EVENTS,
                       params: AbParams = AbParams()) -> Attributed:
    """Fold one served recommendation: once per rec id, plus early feedback.

    ``(source, partition, offset)`` is the message being processed when it was served: the
    trigger event (``SERVED_FROM_EVENTS``) or the LLM arm's decision (``SERVED_FROM_LLM``).
    """
    if log.applied(source, partition, offset):
        return Attributed(log, applied=False, note="redelivered")
    offsets = log._at(source, partition, offset)
    if any(r.rec_id == rec.rec_id for r in log.recs):  # emitted twice (a replayed trigger)
        return Attributed(replace(log, offsets=offsets), applied=True, note="served_again")
    ts = rec.trigger_ts_ms
    items = tuple(item.item_id for item in rec.items)
    clicked = any(rec_id == rec.rec_id for rec_id, _ in log.early_clicks)
    converted: list[str] = []
    revenue = 0.0
    purchases = []
    for item, p_ts, value in log.early_purchases:
        if item in items and ts <= p_ts <= ts + params.window_ms and item not in converted:
            converted.append(item)
            revenue += value
        else:
            purchases.append((item, p_ts, value))
    served = ServedRec(rec.rec_id, rec.arm, items, ts, clicked, tuple(converted))
    updated = _pruned(replace(
        log, recs=(*log.recs, served), offsets=offsets, early_purchases=tuple(purchases),
        early_clicks=tuple(c for c in log.early_clicks if c[0] != rec.rec_id)), params)
    delta = ArmDelta(served=1, clicks=int(clicked), conversions=len(converted),
                     converted_recs=int(bool(converted)), revenue=revenue,
                     fallback_reason=(rec.fallback_reason or "unknown") if rec.degraded
                     else None, latency_ms=rec.latency_ms)
    return Attributed(updated, applied=True, arm=rec.arm, delta=delta, note="served")


def log_event(log: RecLog, event: Event, *, partition: int, offset: int,
              params: AbParams = AbParams()) -> Attributed:
    """Fold a ``rec_click`` or ``purchase`` (other types: nothing to do, not applied)."""
    if event.type not in ("rec_click", "purchase"):
        return Attributed(log, applied=False)
    if log.applied(EVENTS_TOPIC, partition, offset):
        return Attributed(log, applied=False, note="redelivered")
    log = replace(log, offsets=log._at(EVENTS_TOPIC, partition, offset))
    if event.type == "rec_click":
        return _click(log, event, params)
    return _purchase(log, event, params)


def histogram_percentile(counts: Iterable[int], q: float) -> float:
    """The ``q``-quantile of a :data:`LATENCY_BOUNDS_MS` histogram (nan when empty),
    interpolated linearly inside its bucket."""
    counts = list(counts)
    total = sum(counts)
    if total == 0:
        return math.nan
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            low = LATENCY_BOUNDS_MS[i - 1] if i > 0 else 0.0
            if i >= len(LATENCY_BOUNDS_MS):
                return low  # the overflow bucket has no upper bound: report its floor
            high = LATENCY_BOUNDS_MS[i]
            return low + (high - low) * max(0.0, rank - seen) / n
        seen += n
    return LATENCY_BOUNDS_MS[-1]


def _click(log: RecLog, event: Event, params: AbParams) -> Attributed:
    rec_id = event.rec_id or ""
    for i, rec in enumerate(log.recs):
        if rec.rec_id == rec_id:
            if rec.clicked:
                return Attributed(log, applied=True, note="click_again")
            recs = (*log.recs[:i], replace(rec, clicked=True), *log.recs[i + 1:])
            return Attributed(replace(log, recs=recs), applied=True, arm=rec.arm,
                              delta=ArmDelta(clicks=1), note="click")
    if any(r == rec_id for r, _ in log.early_clicks):
        return Attributed(log, applied=True, note="click_again")
    # not (yet) in the log: its recommendation is still on its way, or was evicted (older
    # than the window, or beyond max_recs): held until the window passes
    early = (*log.early_clicks, (rec_id, event.ts_ms))
    return Attributed(_pruned(replace(log, early_clicks=early), params, event.ts_ms),
                      applied=True, note="click_early")


def _purchase(log: RecLog, event: Event, params: AbParams) -> Attributed:
    item = event.item_id or ""
    revenue = event.price * event.quantity if event.price is not None else 0.0
    for i in range(len(log.recs) - 1, -1, -1):  # newest first: last touch
        rec = log.recs[i]
        if not (rec.ts_ms <= event.ts_ms <= rec.ts_ms + params.window_ms) or \
                item not in rec.items:
            continue
        if item in rec.converted:  # the last touch already earned this item
            return Attributed(log, applied=True, note="purchase_again")
        recs = (*log.recs[:i], replace(rec, converted=(*rec.converted, item)), *log.recs[i + 1:])
        delta = ArmDelta(conversions=1, converted_recs=int(not rec.converted), revenue=revenue)
        return Attributed(_pruned(replace(log, recs=recs), params, event.ts_ms), applied=True,
                          arm=rec.arm, delta=delta, note="conversion")
    early = (*log.early_purchases, (item, event.ts_ms, revenue))
    return Attributed(_pruned(replace(log, early_purchases=early), params, event.ts_ms),
                      applied=True, note="purchase_early")


def _pruned(log: RecLog, params: AbParams, now_ms: int | None = None) -> RecLog:
    """Drop what fell out of the window (relative to the newest time seen) or the bounds."""
    newest = max([now_ms or 0, *(r.ts_ms for r in log.recs),
                  *(ts for _, ts in log.early_clicks), *(ts for _, ts, _ in log.early_purchases)])
    horizon = newest - params.window_ms
    return replace(
        log,
        recs=tuple(r for r in log.recs if r.ts_ms >= horizon)[-params.max_recs:],
        early_clicks=tuple(c for c in log.early_clicks if c[1] >= horizon)[-params.max_early:],
        early_purchases=tuple(p for p in log.early_purchases
                              if p[1] >= horizon)[-params.max_early:])


def _bucket(latency_ms: float) -> int:
    for i, bound in enumerate(LATENCY_BOUNDS_MS):
        if latency_ms <= bound:
            return i
    return len(LATENCY_BOUNDS_MS)
