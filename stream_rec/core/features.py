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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from stream_rec.core import _features
from stream_rec.core import candidates as cands
from stream_rec.core.catalog import Catalog
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.mixture import Mixture, best_of, mix_lists
from stream_rec.core.profile import UserProfile
from stream_rec.core.text_space import TextSpace

__all__ = ["FEATURES", "MODEL_FEATURES", "PRIOR_WEIGHTS", "SOURCES", "CandidateSet",
           "FeatureParams", "build_candidates", "taste_weights"]

FEATURES: tuple[str, ...] = (
    "prior",  # log of the fixed blend (co-visit + buy-again + 0.1 trending + 0.03 category)
    "covisit",  # log P(item | recent anchors), the co-visitation mixture
    "covisit_last",  # log P(item | the last item)
    "covisit_anchors",  # share of the recent anchors that lead to the item
    "buy_again",  # 1 - exp(-repeat rate x times) x recency (the repeat source)
    "bought",  # log(1 + times this user bought it)
    "touched",  # the user touched it before
    "touch_recency",  # 1 / (1 + instants since the user last touched it)
    "bought_days",  # log(1 + days since this user last bought it), 0 when never bought
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
    """Candidates (no duplicates), their feature rows, and what each source said of them."""

    items: list[str]
    x: np.ndarray  # (len(items), len(FEATURES)) float32
    parts: np.ndarray  # (len(items), len(SOURCES)): source weight x score, -1 when absent
    anchors: tuple[dict[str, str], ...]  # per source: item -> the anchor it cites

    def __len__(self) -> int:
        return len(self.items)

    def reasons(self) -> Callable[[int], tuple[str, str]]:
        """``reasons()(k)``: (source, anchor) of candidate ``k``, the source contributing most to
        the blend (the first on ties), for the recommendation's reason; every candidate's
        source is picked in one pass."""
        best = np.argmax(self.parts, axis=1).tolist()
        items, anchors = self.items, self.anchors

        def why(k: int) -> tuple[str, str]:
            return SOURCES[best[k]], anchors[best[k]].get(items[k], "")

        return why


# the candidate sources, in the order their candidates enter the set, and each one's weight
# in the fixed blend (what picks the reason's source)
SOURCES = ("covisit", "buy_again", "similar", "category", "trending")
_SOURCE_WEIGHT = (1.0, 1.0, 0.03, 0.03, 0.1)
_RANK_COLUMNS = tuple(_COL["rank_" + s] for s in SOURCES)
_USER_COLUMNS = (_COL["bought"], _COL["bought_days"], _COL["touched"], _COL["touch_recency"])


def build_candidates(profile: UserProfile, stats: ItemStats, catalog: Catalog, *,
                     now_ms: int, params: FeatureParams = FeatureParams(),
                     space: TextSpace | None = None,
                     blocked: frozenset[str] = frozenset(),
                     allow: frozenset[str] | None = None) -> CandidateSet:
    """Every source's candidates for ``profile`` at ``now_ms`` with their features."""
    n = params.per_source
    skip: cands.ItemFilter = blocked if allow is None else cands.OutsideOf(allow, blocked)
    instants = cands._recent_instants(profile, params.covisit_history)
    covisit = _covisit(instants, stats)
    buy = cands.buy_again(profile, stats, n=n, now_ms=now_ms,
                          half_life_s=params.buy_again_half_life_s, exclude=skip)
    top = stats.trending(now_ms)
    category = cands.category_trending(profile, stats, catalog, n=n, now_ms=now_ms,
                                       exclude=skip, top=top)
    trending = (cands.trending(stats, n=n, now_ms=now_ms, exclude=skip, top=top)
                if allow is None else cands.popular_among(stats, allow - blocked, now_ms=now_ms))
    taste = taste_weights(profile, params) if space is not None else {}
    similar: list[tuple[str, float, str]] = []
    if space is not None and taste:
        block = blocked if allow is None else frozenset()
        similar = [s for s in space.neighbours_mix(taste, n + 10, block) if s[0] not in skip][:n]
    covisit_list, covisit_anchor = covisit.best(stats, n, skip)
    # each a list of (item, score, ...) or a dict item -> (score, anchor), best first
    sources = (covisit_list, buy, similar, category, trending)
    anchors: tuple[dict[str, str], ...] = (covisit_anchor, {i: a for i, (_, a) in buy.items()},
               {i: a for i, _, a in similar}, {i: a for i, (_, a) in category.items()}, {})
    # the union of the sources, each source's raw score, weighted part and rank in its rows
    n_all = sum(map(len, sources))
    x = np.zeros((n_all, len(FEATURES)), np.float32)
    parts = np.full((n_all, len(SOURCES)), -1.0)
    scores = np.zeros((n_all, len(SOURCES)))  # each source's raw score (0 when absent)
    items, pos = _features.assemble(sources, _SOURCE_WEIGHT, _RANK_COLUMNS, x, parts, scores)
    m = len(items)
    x, parts, scores = x[:m], parts[:m], scores[:m]
    if not m:
        return CandidateSet([], x, parts, anchors)
    ba, sim_nb, cat = scores[:, 1], scores[:, 2], scores[:, 3]
    rows = stats.rows(items)
    mixed = covisit.mixture
    read = mixed.reader(rows)
    cv = read(mixed.score)
    col = stats.columns_at(rows, now_ms)
    tr = col.popularity / (stats.total_popularity(now_ms) or 1.0)
    count_total = float(stats.deltas) or 1.0
    history = math.log1p(sum(c for t, c in profile.counts if t in _ITEM_TYPES)) / 5.0
    features = {
        "prior": np.log(_EPS + cv + ba + 0.1 * tr + 0.03 * cat),
        "covisit": np.log(_EPS + cv),
        "covisit_last": np.log(_EPS + read(covisit.last)),
        "covisit_anchors": read(mixed.hits) / max(1, len(covisit.anchors)),
        "buy_again": ba,
        "repeat_rate": np.log(col.repeat_propensity),
        "popularity": np.log(1e-7 + tr),
        "count": np.log1p(col.count),
        "trend": np.log((1e-7 + tr) / (1e-7 + col.count / count_total)),
        "age": np.where(col.seen, np.log1p(np.maximum(0.0, now_ms - col.first_ms) / _DAY_MS),
                        0.0),
        "unseen": ~col.seen,
    }
    for name, values in features.items():
        x[:, _COL[name]] = values
    x[:, _COL["covisit_x_history"]] = x[:, _COL["covisit"]] * history
    _features.user_columns(x, pos, profile.purchased, profile.recent, now_ms, _USER_COLUMNS)
    if profile.categories:
        affinity = dict(profile.categories)
        _features.category_column(x, _COL["category"], items, catalog.categories, affinity,
                                  float(sum(affinity.values()) or 1.0))
    if space is not None and taste:
        last = space.query({instants[0][0]: 1.0}) if instants else None
        cosines = space.cosines([space.query(taste), last], items)
        sim = cosines[:, 0]
        x[:, _COL["sim"]] = sim
        x[:, _COL["sim_last"]] = cosines[:, 1]
        x[:, _COL["sim_neighbours"]] = sim_nb
        x[:, _COL["sim_x_cold"]] = sim * (col.count < _COLD)
        x[:, _COL["sim_x_history"]] = sim * history
    return CandidateSet(items, x, parts, anchors)


@dataclass(frozen=True, slots=True)
class _Covisit:
    """The co-visitation mixture over the user's recent anchors (as
    :func:`candidates.covisitation`), and P(item | the last item), by item row."""

    mixture: Mixture  # score: P(item | recent anchors); hits / len(anchors): their share
    last: np.ndarray  # P(item | the last item), aligned with mixture.rows
    anchors: list[str]

    def best(self, stats: ItemStats, n: int, skip: cands.ItemFilter
             ) -> tuple[list[tuple[str, float]], dict[str, str]]:
        """The ``n`` best items not in ``skip``, best first, ties by id (as ``_best``), and
        the anchor each one cites."""
        mixture = self.mixture
        found = best_of(mixture.score, stats.item_ids(), mixture.rows, n, skip)
        best = mixture.best[[k for _, _, k in found]].tolist()
        anchors = self.anchors
        return ([(i, v) for i, v, _ in found],
                {i: anchors[a] for (i, _, _), a in zip(found, best, strict=True)})


_NO_COVISIT = _Covisit(Mixture(np.zeros(0, np.intp), np.zeros(0), np.zeros(0),
                               np.zeros(0, np.intp)), np.zeros(0), [])


def _covisit(instants: list[tuple[str, int]], stats: ItemStats) -> _Covisit:
    """The co-visitation mixture (as :func:`candidates.covisitation`), P(item | last
    anchor), the number of anchors leading to each item, and each item's best anchor."""
    found: list[tuple[str, float, np.ndarray, np.ndarray]] = []
    sums: list[float] = []
    age, instant = -1, None
    for anchor, ts_ms in instants:
        if ts_ms != instant:
            age, instant = age + 1, ts_ms
        row = stats.neighbour_rows(anchor)
        if row is not None:
            found.append((anchor, 1.0 / (1.0 + age), row[0], row[1]))
            sums.append(row[2] or 1.0)
    if not found:
        return _NO_COVISIT
    total = sum(w for _, w, _, _ in found)
    mixture = mix_lists([(rows, weights) for _, _, rows, weights in found],
                        [anchor_weight / total / row_total for (_, anchor_weight, _, _), row_total
                         in zip(found, sums, strict=True)])
    last = np.zeros(len(mixture.rows))
    if found[0][0] == instants[0][0]:
        last[np.searchsorted(mixture.rows, found[0][2])] = found[0][3] / sums[0]
    return _Covisit(mixture, last, [a for a, _, _, _ in found])


def taste_weights(profile: UserProfile, params: FeatureParams) -> dict[str, float]:
    """The weight of each recent item in the user's taste (action x recency)."""
    weights: dict[str, float] = {}
    for age, touch in enumerate(reversed(profile.recent[-params.taste_history:])):
        w = _ACTION.get(touch.type, 0.0) * 0.5 ** (age / params.taste_half_life_items)
        if w > 0:
            weights[touch.item_id] = weights.get(touch.item_id, 0.0) + w
    return weights
