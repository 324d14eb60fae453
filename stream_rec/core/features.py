"""Candidates with features: what the learned ranker reads for one user right now.

Pure (numpy only). For one profile, every candidate source runs (co-visitation, the
user's own purchases, text neighbours from the model's item vectors, category trending,
trending), the union is taken, and each candidate gets one row of :data:`FEATURES`:
co-visitation at all recent anchors and at the last one, buy-again count, recency and
repeat rate, popularity now and over all time (and their ratio, the trend), category
match, the item's age and interaction count, the user's history length, the model's
similarity to the user's taste and to the last item, and each source's rank.

Model features (:data:`MODEL_FEATURES`) are zero when no :class:`TextSpace` is given, so
the same ranker runs with or without the model (the ablation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from stream_rec.core import candidates as cands
from stream_rec.core.catalog import Catalog
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.profile import UserProfile
from stream_rec.core.text_space import TextSpace

__all__ = ["FEATURES", "MODEL_FEATURES", "PRIOR_WEIGHTS", "CandidateSet", "FeatureParams",
           "build_candidates"]

FEATURES: tuple[str, ...] = (
    "prior",  # log of the fixed blend (co-visit + buy-again + 0.1 trending + 0.03 category)
    "covisit",  # log P(item | recent anchors), the co-visitation mixture
    "covisit_last",  # log P(item | the last item)
    "covisit_anchors",  # share of the recent anchors that lead to the item
    "buy_again",  # 1 - exp(-repeat rate x times) x recency (the repeat source)
    "bought",  # log(1 + times this user bought it)
    "touched",  # the user touched it before
    "touch_recency",  # 1 / (1 + instants since the user last touched it)
    "repeat_rate",  # log of the item's shop-wide repeat propensity
    "popularity",  # log of its decayed popularity share
    "count",  # log(1 + interactions ever)
    "trend",  # log(decayed share / all-time share)
    "category",  # the user's affinity share for the item's category
    "age",  # log(1 + days since the item was first seen)
    "unseen",  # nobody interacted with it yet
    "covisit_x_history",  # covisit x log(1 + user events) / 5
    "sim",  # model: centred cosine with the user's taste vector
    "sim_last",  # model: centred cosine with the last item
    "sim_neighbours",  # model: text-neighbour mixture score (the similar source)
    "sim_x_cold",  # model: sim for items with < 5 interactions
    "sim_x_history",  # model: sim x log(1 + user events) / 5
    "rank_covisit",  # 1 / (1 + rank) in each source's list, 0 when absent
    "rank_buy_again",
    "rank_similar",
    "rank_category",
    "rank_trending",
)
MODEL_FEATURES = frozenset({"sim", "sim_last", "sim_neighbours", "sim_x_cold",
                            "sim_x_history", "rank_similar"})
# Before any label the ranker is the fixed blend, score = log(blend), with the model's
# text-neighbour score as a small tie-breaker: where the blend knows nothing (a new item,
# a new shop) the items nearest by text come first, as the fixed blend's similar source did.
PRIOR_WEIGHTS: Mapping[str, float] = {"prior": 1.0, "sim_neighbours": 0.05}

_COL = {name: i for i, name in enumerate(FEATURES)}
_EPS = 1e-5
_DAY_MS = 86_400_000.0
_ACTION = {"view": 1.0, "rec_click": 1.5, "add_to_cart": 3.0, "purchase": 5.0}
_ITEM_TYPES = ("view", "rec_click", "add_to_cart", "purchase")
_COLD = 5


@dataclass(frozen=True, slots=True)
class FeatureParams:
    """How many candidates per source, and how the user's recent items are weighted."""

    per_source: int = 50
    covisit_history: int = 10
    buy_again_half_life_s: float = 30 * 86_400.0
    taste_history: int = 10
    taste_half_life_items: float = 5.0


@dataclass(frozen=True, slots=True)
class CandidateSet:
    """Candidates (no duplicates), their feature rows, and the best source + anchor of each."""

    items: list[str]
    x: np.ndarray  # (len(items), len(FEATURES)) float32
    why: list[tuple[str, str]]  # (source, anchor) for the reason

    def __len__(self) -> int:
        return len(self.items)


def build_candidates(profile: UserProfile, stats: ItemStats, catalog: Catalog, *,
                     now_ms: int, params: FeatureParams = FeatureParams(),
                     space: TextSpace | None = None,
                     blocked: frozenset[str] = frozenset(),
                     allow: frozenset[str] | None = None,
                     refresh: bool = True) -> CandidateSet:
    """Every source's candidates for ``profile`` at ``now_ms`` with their features
    (``refresh=False``: read the cached trending list as it is, for training lists)."""
    n = params.per_source
    skip: cands.ItemFilter = blocked if allow is None else cands.OutsideOf(allow, blocked)
    instants = cands._recent_instants(profile, params.covisit_history)
    covisit, covisit_last, covisit_frac, covisit_anchor = _covisit(instants, stats)
    covisit_list = cands._best(covisit.items(), n, skip)
    buy = cands.buy_again(profile, stats, n=n, now_ms=now_ms,
                          half_life_s=params.buy_again_half_life_s, exclude=skip)
    category = cands.category_trending(profile, stats, catalog, n=n, now_ms=now_ms,
                                       exclude=skip, refresh=refresh)
    trending = (cands.trending(stats, n=n, now_ms=now_ms, exclude=skip, refresh=refresh)
                if allow is None
                else cands.popular_among(stats, allow - blocked, now_ms=now_ms))
    taste = _taste(profile, params) if space is not None else {}
    similar: list[tuple[str, float, str]] = []
    if space is not None and taste:
        block = blocked if allow is None else frozenset()
        similar = [s for s in space.neighbours_mix(taste, n + 10, block) if s[0] not in skip][:n]

    ranks: dict[str, list[tuple[str, int]]] = {}
    why: dict[str, tuple[float, str, str]] = {}

    def note(source: str, ordered: list[tuple[str, float, str]], weight: float) -> None:
        for r, (item, score, anchor) in enumerate(ordered):
            ranks.setdefault(item, []).append((source, r))
            part = weight * score
            if part > why.get(item, (-1.0, "", ""))[0]:
                why[item] = (part, source, anchor)

    note("covisit", [(i, s, covisit_anchor.get(i, "")) for i, s in covisit_list], 1.0)
    note("buy_again", [(i, s, a) for i, (s, a) in buy.items()], 1.0)
    note("similar", similar, 0.03)
    note("category", [(i, s, a) for i, (s, a) in category.items()], 0.03)
    note("trending", [(i, s, a) for i, (s, a) in trending.items()], 0.1)
    items = list(ranks)
    x = np.zeros((len(items), len(FEATURES)), np.float32)
    if not items:
        return CandidateSet([], x, [])

    touched_age = _touch_ages(profile)
    bought = profile.purchase_counts()
    cat_aff = dict(profile.categories)
    cat_total = sum(cat_aff.values()) or 1.0
    history = math.log1p(sum(c for t, c in profile.counts if t in _ITEM_TYPES)) / 5.0
    pop_total = stats.total_popularity(now_ms) or 1.0
    count_total = float(stats.deltas) or 1.0
    counts = stats.counts
    first_ms = stats.first_ms
    log = math.log
    log1p = math.log1p
    cv = [covisit.get(i, 0.0) for i in items]
    ba = [buy[i][0] if i in buy else 0.0 for i in items]
    popularity = stats.popularity
    tr = [popularity(i, now_ms) / pop_total for i in items]
    cat = [category[i][0] if i in category else 0.0 for i in items]
    cnt = [counts.get(i, 0) for i in items]
    times = [bought.get(i, 0) for i in items]
    ages = [touched_age.get(i) for i in items]
    firsts = [first_ms.get(i) for i in items]
    cat_of = catalog.category
    columns: dict[str, list[float]] = {
        "prior": [log(_EPS + a + b + 0.1 * c + 0.03 * d)
                  for a, b, c, d in zip(cv, ba, tr, cat, strict=True)],
        "covisit": [log(_EPS + a) for a in cv],
        "covisit_last": [log(_EPS + covisit_last.get(i, 0.0)) for i in items],
        "covisit_anchors": [covisit_frac.get(i, 0.0) for i in items],
        "buy_again": ba,
        "bought": [log1p(t) for t in times],
        "touched": [1.0 if a is not None or t else 0.0 for a, t in zip(ages, times, strict=True)],
        "touch_recency": [1.0 / (1.0 + a) if a is not None else (0.05 if t else 0.0)
                          for a, t in zip(ages, times, strict=True)],
        "repeat_rate": [log(stats.repeat_propensity(i)) for i in items],
        "popularity": [log(1e-7 + t) for t in tr],
        "count": [log1p(c) for c in cnt],
        "trend": [log((1e-7 + t) / (1e-7 + c / count_total)) for t, c in zip(tr, cnt, strict=True)],
        "category": [cat_aff.get(cat_of(i), 0.0) / cat_total for i in items] if cat_aff
        else [0.0] * len(items),
        "age": [log1p(max(0.0, now_ms - f) / _DAY_MS) if f is not None else 0.0 for f in firsts],
        "unseen": [1.0 if f is None else 0.0 for f in firsts],
    }
    for name, values in columns.items():
        x[:, _COL[name]] = values
    x[:, _COL["covisit_x_history"]] = x[:, _COL["covisit"]] * history
    col = _COL
    rank_cols = {s: col["rank_" + s] for s in ("covisit", "buy_again", "similar", "category",
                                               "trending")}
    for k, item in enumerate(items):
        row = x[k]
        for source, r in ranks[item]:
            row[rank_cols[source]] = 1.0 / (1.0 + r)
    if space is not None and taste:
        sim = space.cosine(space.query(taste), items)
        last = space.query({instants[0][0]: 1.0}) if instants else None
        x[:, col["sim"]] = sim
        x[:, col["sim_last"]] = space.cosine(last, items)
        by_item = {item: score for item, score, _ in similar}
        x[:, col["sim_neighbours"]] = [by_item.get(item, 0.0) for item in items]
        cold = np.array([counts.get(item, 0) < _COLD for item in items], np.float32)
        x[:, col["sim_x_cold"]] = sim * cold
        x[:, col["sim_x_history"]] = sim * history
    return CandidateSet(items, x, [(why[i][1], why[i][2]) for i in items])


def _covisit(instants: list[tuple[str, int]], stats: ItemStats
             ) -> tuple[dict[str, float], dict[str, float], dict[str, float], dict[str, str]]:
    """The co-visitation mixture (as :func:`candidates.covisitation`), P(item | last
    anchor), the share of anchors leading to each item, and each item's best anchor."""
    rows: list[tuple[str, float, dict[str, float]]] = []
    age, instant = -1, None
    for anchor, ts_ms in instants:
        if ts_ms != instant:
            age, instant = age + 1, ts_ms
        row = stats.neighbours(anchor)
        if row:
            rows.append((anchor, 1.0 / (1.0 + age), row))
    scores: dict[str, float] = {}
    last: dict[str, float] = {}
    hits: dict[str, float] = {}
    anchors: dict[str, str] = {}
    if not rows:
        return scores, last, hits, anchors
    total = sum(w for _, w, _ in rows)
    top_part: dict[str, float] = {}
    share = 1.0 / len(rows)
    for position, (anchor, anchor_weight, row) in enumerate(rows):
        row_total = sum(row.values()) or 1.0
        scale = anchor_weight / total / row_total
        for item, weight in row.items():
            part = weight * scale
            scores[item] = scores.get(item, 0.0) + part
            hits[item] = hits.get(item, 0.0) + share
            if part > top_part.get(item, 0.0):
                top_part[item] = part
                anchors[item] = anchor
            if position == 0 and instants and anchor == instants[0][0]:
                last[item] = weight / row_total
    return scores, last, hits, anchors


def _touch_ages(profile: UserProfile) -> dict[str, int]:
    """Each recently touched item's age in distinct instants (0 = the latest instant)."""
    ages: dict[str, int] = {}
    age, instant = -1, None
    for touch in reversed(profile.recent):
        if touch.ts_ms != instant:
            age, instant = age + 1, touch.ts_ms
        ages.setdefault(touch.item_id, age)
    return ages


def _taste(profile: UserProfile, params: FeatureParams) -> dict[str, float]:
    """The weight of each recent item in the user's taste (action x recency)."""
    weights: dict[str, float] = {}
    for age, touch in enumerate(reversed(profile.recent[-params.taste_history:])):
        w = _ACTION.get(touch.type, 0.0) * 0.5 ** (age / params.taste_half_life_items)
        if w > 0:
            weights[touch.item_id] = weights.get(touch.item_id, 0.0) + w
    return weights
