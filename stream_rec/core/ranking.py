"""The fast scorer: blend candidate sources, filter, and explain every item.

Each source's raw scores are scaled to [0, 1] by its best candidate, then blended with
per-source weights. The reason cites the source that contributed most, grounded in the
user's own events ("often bought with …", "you bought this 3 times", "trending in …").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stream_rec.core import candidates as cands
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import RecItem
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.profile import UserProfile

__all__ = ["ABSOLUTE_SOURCES", "DEFAULT_WEIGHTS", "RankParams", "blend", "recommend"]

# Sources whose scores already mean something in [0, 1] and are not rescaled by their best:
# buy_again is P(re-buy); covisit, trending and category are probabilities of the next item
# under their own model, so the weighted sum is a mixture. Any other source is rescaled.
ABSOLUTE_SOURCES = frozenset({"buy_again", "similar", "covisit", "trending", "category"})

# Mixture weights, chosen on the validation stages of MovieLens, Amazon Industrial and
# Online Retail (docs/accuracy.md): category above ~0.05 and similar above ~0.03 hurt.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "covisit": 1.0,
    "buy_again": 1.0,
    "similar": 0.03,
    "category": 0.03,
    "trending": 0.1,
}


@dataclass(frozen=True, slots=True)
class RankParams:
    """How many items, from how many candidates, with which source weights."""

    top_k: int = 10
    per_source: int = 50
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    buy_again_half_life_s: float = 30 * 86_400.0
    one_off_propensity: float = 0.2  # just-bought items below this repeat rate are dropped
    require_catalog: bool = True
    covisit_history: int = 10  # how many recent items anchor co-visitation


def recommend(
    profile: UserProfile,
    stats: ItemStats,
    catalog: Catalog,
    *,
    now_ms: int,
    params: RankParams = RankParams(),
    just_bought: frozenset[str] = frozenset(),
    vector_search: cands.VectorSearch | None = None,
    exclude: frozenset[str] = frozenset(),
    allow: frozenset[str] | None = None,
) -> list[RecItem]:
    """Top-k items for one user right now, each with a score and a reason.

    ``exclude`` items are never returned; when ``allow`` is given, only its items are
    ranked (every one of them gets a score, popularity at least), as in sampled evaluation.
    """
    blocked = exclude | frozenset(profile.cart) | frozenset(
        item for item in just_bought
        if stats.repeat_propensity(item) < params.one_off_propensity)
    sources = gather(profile, stats, catalog, now_ms=now_ms, params=params,
                     vector_search=vector_search, blocked=blocked, allow=allow)
    return blend(sources, catalog, params=params, blocked=blocked, profile=profile)


def gather(profile: UserProfile, stats: ItemStats, catalog: Catalog, *, now_ms: int,
           params: RankParams, vector_search: cands.VectorSearch | None = None,
           blocked: frozenset[str] = frozenset(), allow: frozenset[str] | None = None,
           ) -> dict[str, cands.Scored]:
    """Run every source whose weight is non-zero; each skips ``blocked`` (and, when
    ``allow`` is given, everything outside it) before taking its best ``per_source``."""
    n = params.per_source
    weights = params.weights
    skip: cands.ItemFilter = blocked if allow is None else cands.OutsideOf(allow, blocked)
    sources: dict[str, cands.Scored] = {}
    if weights.get("covisit", 0.0):
        sources["covisit"] = cands.covisitation(profile, stats, n=n,
                                                history=params.covisit_history, exclude=skip)
    if weights.get("buy_again", 0.0):
        sources["buy_again"] = cands.buy_again(profile, stats, n=n, now_ms=now_ms,
                                               half_life_s=params.buy_again_half_life_s,
                                               exclude=skip)
    if weights.get("similar", 0.0):
        sources["similar"] = cands.similar_items(profile, vector_search, n=n, exclude=skip)
    if weights.get("category", 0.0):
        sources["category"] = cands.category_trending(profile, stats, catalog, n=n,
                                                      now_ms=now_ms, exclude=skip)
    if weights.get("trending", 0.0):
        sources["trending"] = (
            cands.trending(stats, n=n, now_ms=now_ms, exclude=skip) if allow is None
            else cands.popular_among(stats, allow - blocked, now_ms=now_ms))
    return sources


def blend(sources: Mapping[str, cands.Scored], catalog: Catalog, *, params: RankParams,
          blocked: frozenset[str], profile: UserProfile) -> list[RecItem]:
    """Scale relative sources to [0, 1], sum with weights, keep the top-k recommendable items."""
    totals: dict[str, float] = {}
    best_part: dict[str, tuple[float, str, str]] = {}
    for source, scored in sources.items():
        if not scored:
            continue
        top = 1.0 if source in ABSOLUTE_SOURCES else (
            max(score for score, _ in scored.values()) or 1.0)
        weight = params.weights.get(source, 0.0)
        for item, (score, anchor) in scored.items():
            part = weight * score / top
            totals[item] = totals.get(item, 0.0) + part
            if part > best_part.get(item, (-1.0, "", ""))[0]:
                best_part[item] = (part, source, anchor)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    out: list[RecItem] = []
    for item, score in ranked:
        if item in blocked:
            continue
        if params.require_catalog and len(catalog) and not catalog.recommendable(item):
            continue
        _, source, anchor = best_part[item]
        out.append(RecItem(item, score, reason(source, anchor, item, catalog, profile)))
        if len(out) >= params.top_k:
            break
    return out


def reason(source: str, anchor: str, item: str, catalog: Catalog, profile: UserProfile) -> str:
    """A short, human-readable reason built only from catalog data and the user's events."""
    if source == "covisit":
        return f"often bought with {catalog.title(anchor)}"
    if source == "buy_again":
        times = profile.times_bought(item)
        return f"you bought this {times} time{'s' if times != 1 else ''}"
    if source == "similar":
        return f"similar to {catalog.title(anchor)}" if anchor else "similar to items you liked"
    if source == "category":
        return f"trending in {anchor}"
    return "trending now"
