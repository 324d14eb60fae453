"""Candidate generators: each maps item id → (raw score, anchor) for one source.

Pure functions of the user's profile and the shared item statistics. The anchor is what
the reason will cite (an item the user touched, or a category).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass

from stream_rec.catalog import Catalog
from stream_rec.item_stats import ItemStats
from stream_rec.profile import UserProfile

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
VectorSearch = Callable[[tuple[float, ...], int], list[tuple[str, float]]]
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
    """The ``n`` best (item, score) pairs not in ``exclude``, best first, ties by id."""
    kept = [kv for kv in scores if kv[0] not in exclude]
    return sorted(kept, key=lambda kv: (-kv[1], kv[0]))[:n]


def covisitation(profile: UserProfile, stats: ItemStats, *, n: int, history: int = 10,
                 exclude: ItemFilter = _NOTHING) -> Scored:
    """Items often seen after/with what the user touched recently (newer anchors weigh more)."""
    scores: dict[str, float] = {}
    anchors: dict[str, tuple[float, str]] = {}
    for age, anchor in enumerate(profile.recent_item_ids(history)):
        anchor_weight = 1.0 / (1.0 + age)
        row = stats.neighbours(anchor)
        if not row:
            continue
        norm = 1.0 / math.sqrt(sum(row.values()))
        for item, weight in row.items():
            contribution = anchor_weight * weight * norm
            scores[item] = scores.get(item, 0.0) + contribution
            if contribution > anchors.get(item, (0.0, ""))[0]:
                anchors[item] = (contribution, anchor)
    best = _best(scores.items(), n, exclude)
    return {item: (score, anchors[item][1]) for item, score in best}


def buy_again(profile: UserProfile, stats: ItemStats, *, n: int, now_ms: int,
              half_life_s: float, exclude: ItemFilter = _NOTHING) -> Scored:
    """The user's own purchases: P(rebuy) of the item, firmed up by how often and how lately.

    Scores are absolute in [0, 1] (not rescaled by the ranker): an item nobody re-buys
    stays near 0 however often this user bought it once.
    """
    rate = math.log(2) / (half_life_s * 1000.0)
    scored = []
    for item, times, last_ts in profile.purchased:
        recency = math.exp(-rate * max(0, now_ms - last_ts))
        habit = 1.0 - math.exp(-times / 2.0)
        score = stats.repeat_propensity(item) * (0.5 + 0.5 * habit) * (0.5 + 0.5 * recency)
        scored.append((item, score))
    best = _best(scored, n, exclude)
    return {item: (score, item) for item, score in best}


def trending(stats: ItemStats, *, n: int, now_ms: int, exclude: ItemFilter = _NOTHING
             ) -> Scored:
    """The shop's ``n`` most popular items right now that are not in ``exclude``.

    Reads the cached trending list; only when exclusions eat into it does it rank deeper.
    """
    out: Scored = {}
    top = stats.trending(now_ms)
    for item, score in top:
        if item not in exclude:
            out[item] = (score, "")
            if len(out) >= n:
                return out
    if len(top) < len(stats):
        for item, score in stats.most_popular(now_ms, len(stats)):
            if item not in exclude and item not in out:
                out[item] = (score, "")
                if len(out) >= n:
                    break
    return out


def popular_among(stats: ItemStats, items: Iterable[str], *, now_ms: int) -> Scored:
    """Every one of ``items`` scored by its popularity right now (for a fixed candidate set)."""
    return {item: (stats.popularity(item, now_ms), "") for item in items}


def category_trending(profile: UserProfile, stats: ItemStats, catalog: Catalog, *, n: int,
                      now_ms: int, top_categories: int = 3,
                      exclude: ItemFilter = _NOTHING) -> Scored:
    """Trending items in the user's favourite categories, weighted by the user's affinity."""
    if not profile.categories or len(catalog) == 0:
        return {}
    favourites = dict(profile.categories[:top_categories])
    total = sum(favourites.values()) or 1.0
    scored: Scored = {}
    for item, popularity in stats.trending(now_ms):
        if item in exclude:
            continue
        category = catalog.category(item)
        if category in favourites:
            scored[item] = (popularity * favourites[category] / total, category)
            if len(scored) >= n:
                break
    return scored


def similar_items(profile: UserProfile, search: VectorSearch | None, *, n: int,
                  exclude: ItemFilter = _NOTHING) -> Scored:
    """Nearest items to the user's taste vector (empty without vectors)."""
    if search is None or not profile.vector:
        return {}
    anchor = profile.recent_item_ids(1)
    label = anchor[0] if anchor else ""
    extra = len(exclude) if isinstance(exclude, frozenset | set) else n
    found = [(item, score) for item, score in search(profile.vector, n + extra)
             if item not in exclude][:n]
    return {item: (max(score, 0.0), label) for item, score in found}
