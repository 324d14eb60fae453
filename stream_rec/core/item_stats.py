"""Streaming item statistics: decayed popularity, co-visitation and repeat propensity.

Pure and in-memory. The worker derives one :class:`ItemDelta` per applied item event
(from the event and the user's history *before* it), publishes it, and every worker folds
every delta, so all replicas share the same statistics whatever partitions they own.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stream_rec.core.events import Event
from stream_rec.core.profile import UserProfile

__all__ = ["ItemDelta", "ItemStats", "StatsParams", "delta_for"]

_POP_WEIGHT = {"view": 1.0, "rec_click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
_COVISIT_WEIGHT = {"view": 0.5, "rec_click": 0.5, "add_to_cart": 1.0, "purchase": 1.0}


@dataclass(frozen=True, slots=True)
class StatsParams:
    """Decay and bounds for item statistics (built from Settings)."""

    popularity_half_life_s: float = 3 * 86_400.0
    covisit_window: int = 5
    max_neighbours: int = 100
    trending_size: int = 200
    # the trending list is recomputed after this many new deltas, or once this much event
    # time has passed with any new delta (so it is never staler than a minute under traffic)
    trending_refresh_deltas: int = 256
    trending_refresh_ms: int = 60_000
    # co-visitation direction: an item seen after another (at a later instant) adds weight w
    # to earlier→later and covisit_backward * w to later→earlier; items touched at the same
    # instant (one basket) are unordered and count both ways at distance 1
    covisit_backward: float = 0.25
    # pair an item with up to this many items touched at the same instant (a basket), on
    # top of covisit_window items from earlier instants; 0 = no basket rule
    instant_window: int = 20


@dataclass(frozen=True, slots=True)
class ItemDelta:
    """What one applied item event teaches the item statistics."""

    item_id: str
    type: str
    ts_ms: int
    prev: tuple[str, ...]  # the user's distinct recent items before this event, newest first
    first_purchase: bool  # a purchase of an item this user had not bought before
    repeat_purchase: bool  # a purchase of an item this user had bought before
    same_instant: int = 0  # how many leading ``prev`` items were touched at ``ts_ms`` too

    def to_list(self) -> list[Any]:
        row = [self.item_id, self.type, self.ts_ms, list(self.prev),
               int(self.first_purchase), int(self.repeat_purchase)]
        return [*row, self.same_instant] if self.same_instant else row

    @classmethod
    def from_list(cls, row: list[Any]) -> ItemDelta:
        """Inverse of :meth:`to_list` (also reads the older six-field rows)."""
        item_id, event_type, ts_ms, prev, first, repeat = row[:6]
        same = int(row[6]) if len(row) > 6 else 0
        return cls(str(item_id), str(event_type), int(ts_ms), tuple(map(str, prev)),
                   bool(first), bool(repeat), same)


def delta_for(before: UserProfile, event: Event, window: int, *,
              instant_window: int = 0) -> ItemDelta | None:
    """The delta of ``event`` given the user's profile before it (None if it has no item).

    ``prev`` holds up to ``instant_window`` items touched at the event's own instant (its
    basket), then up to ``window`` items from earlier instants, each part newest first.
    """
    if event.item_id is None or event.type not in _POP_WEIGHT:
        return None
    item = event.item_id
    if instant_window <= 0:
        prev = tuple(i for i in before.recent_item_ids(window + 1) if i != item)[:window]
        same = 0
    else:
        now: list[str] = []
        earlier: list[str] = []
        seen = {item}
        for touch in reversed(before.recent):
            if touch.item_id in seen:
                continue
            seen.add(touch.item_id)
            if touch.ts_ms == event.ts_ms:
                if len(now) < instant_window:
                    now.append(touch.item_id)
            elif len(earlier) < window:
                earlier.append(touch.item_id)
        prev, same = (*now, *earlier), len(now)
    bought_before = item in before.purchase_counts()
    is_purchase = event.type == "purchase"
    return ItemDelta(item, event.type, event.ts_ms, prev,
                     first_purchase=is_purchase and not bought_before,
                     repeat_purchase=is_purchase and bought_before, same_instant=same)


class ItemStats:
    """Item-level statistics folded from deltas; read by candidate generation."""

    def __init__(self, params: StatsParams = StatsParams()) -> None:
        self.params = params
        self._rate = math.log(2) / (params.popularity_half_life_s * 1000.0)
        self._pop: dict[str, tuple[float, int]] = {}
        self._pop_total: tuple[float, int] = (0.0, 0)  # decayed sum of all popularity
        self._covisit: dict[str, dict[str, float]] = {}
        self.buyers: dict[str, int] = {}
        self.repeats: dict[str, int] = {}
        self.total_buyers = 0
        self.total_repeats = 0
        self.counts: dict[str, int] = {}  # interactions per item, never decayed
        self.first_ms: dict[str, int] = {}  # when each item was first seen
        self.now_ms = 0
        self.deltas = 0
        self._trending: list[tuple[str, float]] = []
        self._trending_at_ms = -1
        self._trending_at_deltas = 0

    def learn_one(self, delta: ItemDelta) -> None:
        """Fold one delta."""
        self.deltas += 1
        self.now_ms = max(self.now_ms, delta.ts_ms)
        self.counts[delta.item_id] = self.counts.get(delta.item_id, 0) + 1
        self.first_ms.setdefault(delta.item_id, delta.ts_ms)
        self._bump_popularity(delta.item_id, _POP_WEIGHT.get(delta.type, 1.0), delta.ts_ms)
        if delta.first_purchase:
            self.buyers[delta.item_id] = self.buyers.get(delta.item_id, 0) + 1
            self.total_buyers += 1
        if delta.repeat_purchase:
            self.repeats[delta.item_id] = self.repeats.get(delta.item_id, 0) + 1
            self.total_repeats += 1
        weight = _COVISIT_WEIGHT.get(delta.type, 0.5)
        backward = self.params.covisit_backward
        same = delta.same_instant
        for position, other in enumerate(delta.prev, start=1):
            if position <= same:  # one basket: unordered, adjacent
                self._add_pair(other, delta.item_id, weight)
                self._add_pair(delta.item_id, other, weight)
                continue
            w = weight / (position - same)
            self._add_pair(other, delta.item_id, w)  # earlier → later
            if backward > 0:
                self._add_pair(delta.item_id, other, w * backward)  # later → earlier

    def learn_many(self, deltas: Iterable[ItemDelta]) -> None:
        for delta in deltas:
            self.learn_one(delta)

    def popularity(self, item_id: str, now_ms: int) -> float:
        value, ts = self._pop.get(item_id, (0.0, now_ms))
        return value * math.exp(-self._rate * max(0, now_ms - ts))

    def trending(self, now_ms: int, *, refresh: bool = True) -> list[tuple[str, float]]:
        """The most popular items right now, best first (refreshed lazily; with
        ``refresh=False`` only by delta count, not by time: for the ranker's training lists)."""
        fresh = self.deltas - self._trending_at_deltas
        if (self._trending_at_ms < 0 or fresh >= self.params.trending_refresh_deltas
                or (refresh and fresh and abs(now_ms - self._trending_at_ms)
                    >= self.params.trending_refresh_ms)):
            scored = ((item, v * math.exp(-self._rate * max(0, now_ms - ts)))
                      for item, (v, ts) in self._pop.items())
            self._trending = heapq.nlargest(self.params.trending_size, scored,
                                            key=lambda kv: kv[1])
            self._trending_at_ms = now_ms
            self._trending_at_deltas = self.deltas
        return self._trending

    def most_popular(self, now_ms: int, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items at ``now_ms``, best first (uncached, O(items))."""
        scored = ((item, v * math.exp(-self._rate * max(0, now_ms - ts)))
                  for item, (v, ts) in self._pop.items())
        return heapq.nlargest(n, scored, key=lambda kv: kv[1])

    def neighbours(self, item_id: str) -> dict[str, float]:
        return self._covisit.get(item_id, {})

    def repeat_propensity(self, item_id: str) -> float:
        """How often buyers of this item buy it again (smoothed toward the shop's rate)."""
        prior = (self.total_repeats + 1.0) / (self.total_buyers + 2.0)
        buyers = self.buyers.get(item_id, 0)
        return (self.repeats.get(item_id, 0) + 5.0 * prior) / (buyers + 5.0)

    def known(self, item_id: str) -> bool:
        return item_id in self._pop

    def __len__(self) -> int:
        return len(self._pop)

    def total_popularity(self, now_ms: int) -> float:
        """The decayed popularity of all items together at ``now_ms``."""
        value, ts = self._pop_total
        return value * math.exp(-self._rate * max(0, now_ms - ts))

    def popularity_share(self, item_id: str, now_ms: int) -> float:
        """The item's share of all popularity right now: P(item) for the next event."""
        total = self.total_popularity(now_ms)
        return self.popularity(item_id, now_ms) / total if total > 0 else 0.0

    def _bump_popularity(self, item_id: str, weight: float, ts_ms: int) -> None:
        total, total_ts = self._pop_total
        if ts_ms > total_ts:
            total *= math.exp(-self._rate * (ts_ms - total_ts))
            total_ts = ts_ms
        self._pop_total = (total + weight, total_ts)
        value, ts = self._pop.get(item_id, (0.0, ts_ms))
        if ts_ms > ts:
            value *= math.exp(-self._rate * (ts_ms - ts))
            ts = ts_ms
        self._pop[item_id] = (value + weight, ts)

    def _add_pair(self, a: str, b: str, weight: float) -> None:
        row = self._covisit.setdefault(a, {})
        row[b] = row.get(b, 0.0) + weight
        limit = self.params.max_neighbours
        if len(row) > limit + limit // 2:
            kept = heapq.nlargest(limit, row.items(), key=lambda kv: kv[1])
            self._covisit[a] = dict(kept)
