"""Candidate generators: each maps item id → (raw score, anchor) for one source.

Pure functions of the user's profile and the shared item statistics. The anchor is what
the reason will cite (an item the user touched, or a category).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from stream_rec.catalog import Catalog
from stream_rec.item_stats import ItemStats
from stream_rec.profile import UserProfile

__all__ = [
    "Scored",
    "buy_again",
    "category_trending",
    "covisitation",
    "similar_items",
    "trending",
]

Scored = dict[str, tuple[float, str]]
VectorSearch = Callable[[tuple[float, ...], int], list[tuple[str, float]]]


def covisitation(profile: UserProfile, stats: ItemStats, *, n: int, history: int = 10) -> Scored:
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
    best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return {item: (score, anchors[item][1]) for item, score in best}


def buy_again(profile: UserProfile, stats: ItemStats, *, n: int, now_ms: int,
              half_life_s: float) -> Scored:
    """The user's own purchases, by how often and how lately, times the item's repeat rate."""
    rate = math.log(2) / (half_life_s * 1000.0)
    scored = []
    for item, times, last_ts in profile.purchased:
        recency = math.exp(-rate * max(0, now_ms - last_ts))
        score = times * (0.5 + 0.5 * recency) * stats.repeat_propensity(item)
        scored.append((item, score))
    best = sorted(scored, key=lambda kv: (-kv[1], kv[0]))[:n]
    return {item: (score, item) for item, score in best}


def trending(stats: ItemStats, *, n: int, now_ms: int) -> Scored:
    """The shop's most popular items right now."""
    return {item: (score, "") for item, score in stats.trending(now_ms)[:n]}


def category_trending(profile: UserProfile, stats: ItemStats, catalog: Catalog, *, n: int,
                      now_ms: int, top_categories: int = 3) -> Scored:
    """Trending items in the user's favourite categories, weighted by the user's affinity."""
    if not profile.categories or len(catalog) == 0:
        return {}
    favourites = dict(profile.categories[:top_categories])
    total = sum(favourites.values()) or 1.0
    scored: Scored = {}
    for item, popularity in stats.trending(now_ms):
        category = catalog.category(item)
        if category in favourites:
            scored[item] = (popularity * favourites[category] / total, category)
            if len(scored) >= n:
                break
    return scored


def similar_items(profile: UserProfile, search: VectorSearch | None, *, n: int) -> Scored:
    """Nearest items to the user's taste vector (empty without vectors)."""
    if search is None or not profile.vector:
        return {}
    anchor = profile.recent_item_ids(1)
    label = anchor[0] if anchor else ""
    return {item: (max(score, 0.0), label) for item, score in search(profile.vector, n)}
