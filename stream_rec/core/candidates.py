"""Candidate generators: each maps item id → (raw score, anchor) for one source.

Pure functions of the user's profile and the shared item statistics. The anchor is what
the reason will cite (an item the user touched, or a category).
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
from collections.abc import Callable, Collection, Container, Iterable
from dataclasses import dataclass

import numpy as np

from stream_rec.core import _features
from stream_rec.core.catalog import Catalog
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.mixture import best_of
from stream_rec.core.profile import UserProfile

__all__ = [
    "ItemFilter",
    "OutsideOf",
    "Scored",
    "buy_again",
    "category_trending",
    "covisitation",
    "popular_among",
    "similar_items",
    "trending",
]

Scored = dict[str, tuple[float, str]]
# (profile, n, exclude) -> [(item, similarity, the recent item it is closest to)]
VectorSearch = Callable[[UserProfile, int, Collection[str]], list[tuple[str, float, str]]]
ItemFilter = Container[str]  # items a source must skip (``item in skip``)
_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class OutsideOf:
    """Skip everything outside ``allowed``, and everything in ``also``."""

    allowed: frozenset[str]
    also: frozenset[str] = _NOTHING

    def __contains__(self, item: object) -> bool:
        return item not in self.allowed or item in self.also


def _best(scores: Iterable[tuple[str, float]], n: int, exclude: ItemFilter
          ) -> list[tuple[str, float]]:
    """The ``n`` best (item, score) pairs not in ``exclude``, best first, ties by id.

    Only the candidates scoring at least the ``n``-th best score are fully sorted (with
    ties at that cut all kept, so the id tie-break is exact).
    """
    kept = [kv for kv in scores if kv[0] not in exclude]
    if len(kept) > 2 * n > 0:
        cut = heapq.nlargest(n, kept, key=_score)[-1][1]
        kept = [kv for kv in kept if kv[1] >= cut]
    kept.sort(key=_rank)
    return kept[:n]


_score = operator.itemgetter(1)


def _rank(kv: tuple[str, float]) -> tuple[float, str]:
    return -kv[1], kv[0]


_first, _second, _third = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)


def covisitation(profile: UserProfile, stats: ItemStats, *, n: int, history: int = 10,
                 exclude: ItemFilter = _NOTHING) -> Scored:
    """Items often seen after/with what the user touched recently (newer anchors weigh more).

    The score is a mixture of the anchors' neighbour distributions, P(item | anchor) =
    co-visits(anchor, item) / co-visits(anchor, anything), weighted 1 / (1 + age) and
    normalised, so it is absolute in [0, 1]. An anchor's age counts the user's distinct
    instants since it was touched: the items of one basket share an age.
    """
    rows: list[tuple[str, float, dict[str, float]]] = []
    age, instant = -1, None
    for anchor, ts_ms in _recent_instants(profile, history):
        if ts_ms != instant:
            age, instant = age + 1, ts_ms
        row = stats.neighbours(anchor)
        if row:
            rows.append((anchor, 1.0 / (1.0 + age), row))
    total = sum(w for _, w, _ in rows)
    scores: dict[str, float] = {}
    top_part: dict[str, float] = {}  # each item's largest single contribution ...
    anchors: dict[str, str] = {}  # ... and the anchor it came from (first on ties)
    get_score = scores.get
    get_part = top_part.get
    for anchor, anchor_weight, row in rows:
        scale = anchor_weight / total / (sum(row.values()) or 1.0)
        for item, weight in row.items():
            contribution = weight * scale
            scores[item] = get_score(item, 0.0) + contribution
            if contribution > get_part(item, 0.0):
                top_part[item] = contribution
                anchors[item] = anchor
    best = _best(scores.items(), n, exclude)
    return {item: (score, anchors[item]) for item, score in best}


def _recent_instants(profile: UserProfile, n: int) -> list[tuple[str, int]]:
    """Up to ``n`` distinct recently touched items with their latest time, newest first."""
    seen: set[str] = set()
    out: list[tuple[str, int]] = []
    for touch in reversed(profile.recent):
        if touch.item_id not in seen:
            seen.add(touch.item_id)
            out.append((touch.item_id, touch.ts_ms))
            if len(out) >= n:
                break
    return out


def buy_again(profile: UserProfile, stats: ItemStats, *, n: int, now_ms: int,
              half_life_s: float, exclude: ItemFilter = _NOTHING) -> Scored:
    """The user's own purchases, by expected re-purchases: the item's repeat rate times how
    often this user bought it, firmed up by how lately.

    Scores are absolute in [0, 1) (not rescaled by the ranker): ``1 - exp(-rate * times)``,
    so an item nobody re-buys stays near 0 however often this user bought it once.
    """
    purchased = profile.purchased
    if exclude is not _NOTHING:
        purchased = tuple(itertools.compress(purchased, map(operator.not_, map(
            exclude.__contains__, map(_first, purchased)))))
    if not purchased:
        return {}
    rate = math.log(2) / (half_life_s * 1000.0)
    items = list(map(_first, purchased))
    times = np.fromiter(map(_second, purchased), np.float64, len(items))
    last_ms = np.fromiter(map(_third, purchased), np.float64, len(items))
    recency = np.exp(-rate * np.maximum(0.0, now_ms - last_ms))
    expected = stats.repeat_propensities(stats.rows(items)) * times
    scores = (1.0 - np.exp(-expected)) * (0.5 + 0.5 * recency)
    best = best_of(scores, items, np.arange(len(items)), n, _NOTHING)
    return {item: (score, item) for item, score, _ in best}


def trending(stats: ItemStats, *, n: int, now_ms: int, exclude: ItemFilter = _NOTHING,
             top: list[tuple[str, float]] | None = None) -> Scored:
    """The shop's ``n`` most popular items right now that are not in ``exclude``, scored by
    their share of all popularity (absolute: P(item) for the next event).

    Reads the trending list (``top``: ``stats.trending(now_ms)`` when the caller has it);
    only when exclusions eat into it does it rank deeper.
    """
    total = stats.total_popularity(now_ms) or 1.0
    out: Scored = {}
    if top is None:
        top = stats.trending(now_ms)
    for item, score in top:
        if item not in exclude:
            out[item] = (score / total, "")
            if len(out) >= n:
                return out
    if len(top) < len(stats):
        for item, score in stats.most_popular(now_ms, len(stats)):
            if item not in exclude and item not in out:
                out[item] = (score / total, "")
                if len(out) >= n:
                    break
    return out


def popular_among(stats: ItemStats, items: Iterable[str], *, now_ms: int) -> Scored:
    """Every one of ``items`` scored by its popularity share right now (a fixed candidate
    set, as in sampled evaluation)."""
    return {item: (stats.popularity_share(item, now_ms), "") for item in items}


def category_trending(profile: UserProfile, stats: ItemStats, catalog: Catalog, *, n: int,
                      now_ms: int, top_categories: int = 3,
                      exclude: ItemFilter = _NOTHING,
                      top: list[tuple[str, float]] | None = None) -> Scored:
    """Trending items in the user's favourite categories: P(category) from the user's
    decayed affinity times P(item | category) from the trending list (absolute; ``top``:
    ``stats.trending(now_ms)`` when the caller has it)."""
    if not profile.categories or len(catalog) == 0:
        return {}
    favourites = dict(profile.categories[:top_categories])
    if top is None:
        top = stats.trending(now_ms)
    return _features.category_trending(top, catalog.categories, favourites,
                                       float(sum(favourites.values()) or 1.0), exclude, n)


def similar_items(profile: UserProfile, search: VectorSearch | None, *, n: int,
                  exclude: ItemFilter = _NOTHING) -> Scored:
    """Nearest items to the user's taste vector, each citing its closest recent item."""
    if search is None or not profile.recent:
        return {}
    blocked = exclude if isinstance(exclude, frozenset | set) else ()
    extra = 0 if blocked else n
    found = [(item, score, anchor) for item, score, anchor in search(profile, n + extra, blocked)
             if item not in exclude][:n]
    return {item: (max(score, 0.0), anchor) for item, score, anchor in found}
