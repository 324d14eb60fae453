"""Streaming item statistics: decayed popularity, co-visitation and repeat propensity.

Pure and in-memory. The worker derives one :class:`ItemDelta` per applied item event
(from the event and the user's history *before* it), publishes it, and every worker folds
every delta, so all replicas share the same statistics whatever partitions they own.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_rec.core.events import Event
from stream_rec.core.profile import UserProfile

__all__ = ["ItemColumns", "ItemDelta", "ItemStats", "StatsParams", "delta_for"]

_POP_WEIGHT = {"view": 1.0, "rec_click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
_COVISIT_WEIGHT = {"view": 0.5, "rec_click": 0.5, "add_to_cart": 1.0, "purchase": 1.0}


@dataclass(frozen=True, slots=True)
class StatsParams:
    """Decay and bounds for item statistics (built from Settings)."""

    popularity_half_life_s: float = 3 * 86_400.0
    covisit_window: int = 5
    max_neighbours: int = 100
    # the trending list: the this many most popular items, kept exact on every delta
    trending_size: int = 200
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
    bought_before = before.times_bought(item) > 0
    is_purchase = event.type == "purchase"
    return ItemDelta(item, event.type, event.ts_ms, prev,
                     first_purchase=is_purchase and not bought_before,
                     repeat_purchase=is_purchase and bought_before, same_instant=same)


class ItemStats:
    """Item-level statistics folded from deltas; read by candidate generation.

    Per-item numbers live in numpy columns (row 0 is "never seen": all zeros), so the
    ranker reads a whole candidate list's statistics with one gather (:meth:`columns`).
    Decayed popularity is kept as (value, time of last bump); since every item decays at
    the same rate, the popularity order never changes between deltas, and the trending
    list (the ``trending_size`` most popular items) is kept exact by each delta instead of
    re-ranking the catalogue.
    """

    def __init__(self, params: StatsParams = StatsParams()) -> None:
        self.params = params
        self._rate = math.log(2) / (params.popularity_half_life_s * 1000.0)
        self._pop_total: tuple[float, int] = (0.0, 0)  # decayed sum of all popularity
        self._covisit: dict[str, _CovisitRow] = {}
        self._rows: dict[str, int] = {}  # every item ever seen (in a delta or as a neighbour)
        self._ids: list[str] = [""]
        self._cols = _Columns(1024)
        self.total_buyers = 0
        self.total_repeats = 0
        self.counts: dict[str, int] = {}  # interactions per item, never decayed
        self.first_ms: dict[str, int] = {}  # when each item was first seen
        self.now_ms = 0
        self.deltas = 0
        self._top = _TopKeys(params.trending_size)
        # the trending order's item ids, for the order (rows) they were read from
        self._trending_ids: tuple[np.ndarray, list[str]] = (np.zeros(0, np.intp), [])

    def learn_one(self, delta: ItemDelta) -> None:
        """Fold one delta."""
        self.deltas += 1
        self.now_ms = max(self.now_ms, delta.ts_ms)
        item = delta.item_id
        row = self._intern(item)
        cols = self._cols
        if item not in self.counts:
            self.first_ms[item] = delta.ts_ms
            cols.first_ms[row] = delta.ts_ms
        self.counts[item] = self.counts.get(item, 0) + 1
        cols.count[row] += 1.0
        self._bump_popularity(item, row, _POP_WEIGHT.get(delta.type, 1.0), delta.ts_ms)
        if delta.first_purchase:
            cols.buyers[row] += 1.0
            self.total_buyers += 1
        if delta.repeat_purchase:
            cols.repeats[row] += 1.0
            self.total_repeats += 1
        weight = _COVISIT_WEIGHT.get(delta.type, 0.5)
        backward = self.params.covisit_backward
        same = delta.same_instant
        for position, other in enumerate(delta.prev, start=1):
            if position <= same:  # one basket: unordered, adjacent
                self._add_pair(other, item, weight)
                self._add_pair(item, other, weight)
                continue
            w = weight / (position - same)
            self._add_pair(other, item, w)  # earlier → later
            if backward > 0:
                self._add_pair(item, other, w * backward)  # later → earlier

    def learn_many(self, deltas: Iterable[ItemDelta]) -> None:
        for delta in deltas:
            self.learn_one(delta)

    def popularity(self, item_id: str, now_ms: int) -> float:
        row = self._rows.get(item_id)
        if row is None:
            return 0.0
        cols = self._cols
        return float(cols.pop[row]) * math.exp(-self._rate * max(0.0, now_ms - cols.pop_ms[row]))

    def trending(self, now_ms: int) -> list[tuple[str, float]]:
        """The ``trending_size`` most popular items at ``now_ms``, best first (ties: the
        item known first)."""
        rows, (read_from, ids) = self._top.ordered(), self._trending_ids
        if read_from is not rows:  # the order changed since the last call
            ids = [self._ids[r] for r in rows.tolist()]
            self._trending_ids = (rows, ids)
        return list(zip(ids, self._decayed(rows, now_ms).tolist(), strict=True))

    def most_popular(self, now_ms: int, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items at ``now_ms``, best first (ties: the item known first)."""
        if n <= self.params.trending_size:
            return self.trending(now_ms)[:n]
        keys = self._cols.key[1:len(self._ids)]
        order = np.argsort(-keys, kind="stable")[:min(n, len(self.counts))] + 1
        return list(zip([self._ids[r] for r in order], self._decayed(order, now_ms).tolist(),
                        strict=True))

    def rows(self, items: Sequence[str]) -> np.ndarray:
        """Each item's row in the columns (0: never seen)."""
        return np.fromiter(map(self._rows.get, items, itertools.repeat(0)), np.intp,
                           len(items))

    def item_id(self, row: int) -> str:
        return self._ids[row]

    def item_ids(self) -> list[str]:
        """Every row's item id (row 0: ""), indexable by row; read-only, and live: rows
        are only ever appended."""
        return self._ids

    def columns(self, items: Sequence[str], now_ms: int) -> ItemColumns:
        """The statistics of ``items`` at ``now_ms``, one array each (zeros for unseen items)."""
        return self.columns_at(self.rows(items), now_ms)

    def columns_at(self, rows: np.ndarray, now_ms: int) -> ItemColumns:
        """:meth:`columns` of items given by their :meth:`rows`."""
        cols = self._cols
        count = cols.count[rows]
        return ItemColumns(
            popularity=self._decayed(rows, now_ms),
            count=count,
            first_ms=cols.first_ms[rows],
            repeat_propensity=self.repeat_propensities(rows),
            seen=count > 0,
        )

    def repeat_propensities(self, rows: np.ndarray) -> np.ndarray:
        """:meth:`repeat_propensity` of the items at ``rows`` (from :meth:`rows`)."""
        cols = self._cols
        prior = (self.total_repeats + 1.0) / (self.total_buyers + 2.0)
        rates: np.ndarray = (cols.repeats[rows] + 5.0 * prior) / (cols.buyers[rows] + 5.0)
        return rates

    def neighbours(self, item_id: str) -> dict[str, float]:
        """The item's co-visitation row: neighbour -> weight, in the order first paired."""
        row = self._covisit.get(item_id)
        if row is None:
            return {}
        ids = self._ids
        rows, weights = row.arrays()
        return {ids[r]: w for r, w in zip(rows.tolist(), weights.tolist(), strict=True)}

    def neighbour_rows(self, item_id: str) -> tuple[np.ndarray, np.ndarray, float] | None:
        """The item's co-visitation row as arrays: neighbour rows and weights, and the
        weights' sum (None if it has none). Read-only views of the live row: use them
        before the next delta."""
        row = self._covisit.get(item_id)
        return None if row is None else (*row.arrays(), row.total())

    def repeat_propensity(self, item_id: str) -> float:
        """How often buyers of this item buy it again (smoothed toward the shop's rate)."""
        prior = (self.total_repeats + 1.0) / (self.total_buyers + 2.0)
        row = self._rows.get(item_id, 0)
        cols = self._cols
        return (float(cols.repeats[row]) + 5.0 * prior) / (float(cols.buyers[row]) + 5.0)

    def buyers(self, item_id: str) -> int:
        """How many users bought the item at least once."""
        return int(self._cols.buyers[self._rows.get(item_id, 0)])

    def repeats(self, item_id: str) -> int:
        """How many purchases of the item were by someone who had bought it before."""
        return int(self._cols.repeats[self._rows.get(item_id, 0)])

    def known(self, item_id: str) -> bool:
        return item_id in self.counts

    def __len__(self) -> int:
        return len(self.counts)

    def total_popularity(self, now_ms: int) -> float:
        """The decayed popularity of all items together at ``now_ms``."""
        value, ts = self._pop_total
        return value * math.exp(-self._rate * max(0, now_ms - ts))

    def popularity_share(self, item_id: str, now_ms: int) -> float:
        """The item's share of all popularity right now: P(item) for the next event."""
        total = self.total_popularity(now_ms)
        return self.popularity(item_id, now_ms) / total if total > 0 else 0.0

    def _intern(self, item_id: str) -> int:
        """The item's row, allocated (all zeros) on first sight."""
        row = self._rows.get(item_id)
        if row is None:
            row = len(self._ids)
            self._rows[item_id] = row
            self._ids.append(item_id)
            self._cols.ensure(row + 1)
        return row

    def _bump_popularity(self, item_id: str, row: int, weight: float, ts_ms: int) -> None:
        total, total_ts = self._pop_total
        if ts_ms > total_ts:
            total *= math.exp(-self._rate * (ts_ms - total_ts))
            total_ts = ts_ms
        self._pop_total = (total + weight, total_ts)
        cols = self._cols
        value, ts = float(cols.pop[row]), float(cols.pop_ms[row])
        if ts_ms > ts:
            value *= math.exp(-self._rate * (ts_ms - ts))
            ts = ts_ms
        value += weight
        cols.pop[row] = value
        cols.pop_ms[row] = ts
        # log of the value brought to time 0: the same order as the value at any time
        key = math.log(value) + self._rate * ts
        cols.key[row] = key
        self._top.offer(row, key)

    def _decayed(self, rows: np.ndarray | list[int], now_ms: int) -> np.ndarray:
        cols = self._cols
        age = np.maximum(0.0, now_ms - cols.pop_ms[rows])
        return np.asarray(cols.pop[rows] * np.exp(-self._rate * age), np.float64)

    def _add_pair(self, a: str, b: str, weight: float) -> None:
        row = self._covisit.get(a)
        if row is None:
            row = self._covisit[a] = _CovisitRow()
        slot = row.slot.get(b)
        if slot is not None:
            row.add(slot, weight)
            return
        row.append(b, self._intern(b), weight)
        limit = self.params.max_neighbours
        if row.size > limit + limit // 2:
            row.keep_largest(limit)


class _CovisitRow:
    """One item's co-visitation neighbours in the order first paired: ``slot`` (id ->
    position), and growable arrays of their item rows and summed weights, updated in place
    so reading the row is two views (:meth:`ItemStats.neighbour_rows`), not a copy."""

    __slots__ = ("_total", "_views", "rows", "size", "slot", "weights")

    def __init__(self, capacity: int = 8) -> None:
        self.slot: dict[str, int] = {}
        self.rows = np.zeros(capacity, np.intp)
        self.weights = np.zeros(capacity)
        self.size = 0
        self._total: float | None = None  # the weights' sum, until the row changes
        # read-only views of the live part, until it grows or is rebuilt (``add`` writes
        # through them)
        self._views: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, slot: int, weight: float) -> None:
        self.weights[slot] += weight
        self._total = None

    def total(self) -> float:
        """``float(weights.sum())`` of the live row, summed once per change."""
        if self._total is None:
            self._total = float(self.weights[:self.size].sum())
        return self._total

    def append(self, item_id: str, row: int, weight: float) -> None:
        n = self.size
        if n == len(self.rows):
            self.rows = np.concatenate([self.rows, np.zeros(n, np.intp)])
            self.weights = np.concatenate([self.weights, np.zeros(n)])
        self.slot[item_id] = n
        self.rows[n] = row
        self.weights[n] = weight
        self.size = n + 1
        self._total = None
        self._views = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._views is None:
            rows, weights = self.rows[:self.size], self.weights[:self.size]
            rows.flags.writeable = False
            weights.flags.writeable = False
            self._views = rows, weights
        return self._views

    def keep_largest(self, n: int) -> None:
        """Keep the ``n`` heaviest neighbours, heaviest first (ties: the first paired)."""
        order = np.argsort(-self.weights[:self.size], kind="stable")[:n]
        ids = list(self.slot)
        self.slot = {ids[k]: i for i, k in enumerate(order.tolist())}
        rows, weights = np.zeros_like(self.rows), np.zeros_like(self.weights)
        rows[:len(order)] = self.rows[order]
        weights[:len(order)] = self.weights[order]
        self.rows, self.weights, self.size = rows, weights, len(order)
        self._total = None
        self._views = None


@dataclass(frozen=True, slots=True)
class ItemColumns:
    """Statistics of a list of items, aligned with it (see :meth:`ItemStats.columns`)."""

    popularity: np.ndarray  # decayed popularity now
    count: np.ndarray  # interactions ever
    first_ms: np.ndarray  # first seen (0 for unseen items)
    repeat_propensity: np.ndarray  # smoothed repeat-purchase rate
    seen: np.ndarray  # bool: any interaction yet


class _Columns:
    """Growable per-item arrays; row 0 stays all zeros (the unseen item)."""

    def __init__(self, capacity: int) -> None:
        self.pop = np.zeros(capacity)
        self.pop_ms = np.zeros(capacity)
        self.key = np.full(capacity, -np.inf)
        self.count = np.zeros(capacity)
        self.first_ms = np.zeros(capacity)
        self.buyers = np.zeros(capacity)
        self.repeats = np.zeros(capacity)

    def ensure(self, size: int) -> None:
        capacity = len(self.pop)
        if size <= capacity:
            return
        grown = max(size, 2 * capacity)
        for name in ("pop", "pop_ms", "key", "count", "first_ms", "buyers", "repeats"):
            old = getattr(self, name)
            new = np.full(grown, -np.inf) if name == "key" else np.zeros(grown)
            new[:capacity] = old
            setattr(self, name, new)


class _TopKeys:
    """The ``size`` rows with the largest keys, where a row's key only ever grows.

    A row outside the set can only enter by its own increase, so each offer is O(log size):
    a min-heap with lazily dropped stale entries.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.keys: dict[int, float] = {}
        self._heap: list[tuple[float, int]] = []
        self._order: np.ndarray | None = np.zeros(0, np.intp)

    def offer(self, row: int, key: float) -> None:
        if self.size <= 0:
            return
        keys = self.keys
        if row in keys or len(keys) < self.size:
            keys[row] = key
        else:
            heap = self._heap
            while heap[0][1] not in keys or keys[heap[0][1]] != heap[0][0]:
                heapq.heappop(heap)
            if key <= heap[0][0]:
                return
            del keys[heapq.heappop(heap)[1]]
            keys[row] = key
        heapq.heappush(self._heap, (key, row))
        if len(self._heap) > 4 * self.size + 64:
            self._heap = [(k, r) for r, k in keys.items()]
            heapq.heapify(self._heap)
        self._order = None

    def ordered(self) -> np.ndarray:
        """Rows best first (ties: the lower row, i.e. the item known first)."""
        if self._order is None:
            keys = self.keys
            rows = np.fromiter(keys, np.intp, len(keys))
            values = np.fromiter(keys.values(), np.float64, len(keys))
            self._order = rows[np.lexsort((rows, -values))]
        return self._order
