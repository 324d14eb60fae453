"""The recommender the worker and the evaluator share: observe events, recommend items.

One object, two calls, no I/O: :meth:`Recommender.observe` folds an event into a user's
profile (idempotently) and yields the item-statistics delta; :meth:`Recommender.recommend`
ranks items for a profile. The streaming worker and ``stream-rec eval`` both go through
here, so what is evaluated is what runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from stream_rec.core.candidates import VectorSearch
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import Event, RecItem
from stream_rec.core.item_stats import ItemDelta, ItemStats, StatsParams, delta_for
from stream_rec.core.profile import ProfileParams, UserProfile, apply_event
from stream_rec.core.ranking import RankParams, recommend

__all__ = ["Observation", "Recommender", "rec_id_for"]


@dataclass(frozen=True, slots=True)
class Observation:
    """The outcome of observing one event."""

    profile: UserProfile
    applied: bool
    delta: ItemDelta | None


class Recommender:
    """Per-user state updates and ranking over shared catalog and item statistics."""

    def __init__(
        self,
        catalog: Catalog,
        stats: ItemStats,
        *,
        rank_params: RankParams = RankParams(),
        profile_params: ProfileParams = ProfileParams(),
        vector_search: VectorSearch | None = None,
    ) -> None:
        self.catalog = catalog
        self.stats = stats
        self.rank_params = rank_params
        self.profile_params = profile_params
        self.vector_search = vector_search

    @property
    def stats_params(self) -> StatsParams:
        return self.stats.params

    def observe(self, before: UserProfile, event: Event, *, partition: int = 0,
                offset: int = -1) -> Observation:
        """Fold ``event`` into ``before``; offset -1 means "no source offset" (offline replay)."""
        category = self.catalog.category(event.item_id) if event.item_id else ""
        if offset < 0:
            offset = before.offsets[0][1] + 1 if before.offsets else 0
        after, applied = apply_event(before, event, partition=partition, offset=offset,
                                     category=category, params=self.profile_params)
        params = self.stats.params
        delta = delta_for(before, event, params.covisit_window,
                          instant_window=params.instant_window) if applied else None
        return Observation(after, applied, delta)

    def recommend(self, profile: UserProfile, *, now_ms: int,
                  trigger: Event | None = None,
                  exclude: frozenset[str] = frozenset(),
                  allow: frozenset[str] | None = None,
                  top_k: int | None = None,
                  semantic: bool = True) -> list[RecItem]:
        """The fast scorer's top-k for ``profile`` at ``now_ms`` (never ``exclude``; only
        ``allow`` when given). ``top_k`` overrides the configured list length (the LLM arm
        asks for more candidates); ``semantic=False`` leaves out the model's ``similar``
        source (the holdout arm: no model at all)."""
        just_bought = frozenset(
            [trigger.item_id] if trigger is not None and trigger.type == "purchase"
            and trigger.item_id else [])
        params = self.rank_params if top_k is None else replace(self.rank_params, top_k=top_k)
        return recommend(profile, self.stats, self.catalog, now_ms=now_ms,
                         params=params, just_bought=just_bought,
                         vector_search=self.vector_search if semantic else None,
                         exclude=exclude, allow=allow)


def rec_id_for(user_id: str, event_id: str) -> str:
    """A stable id per trigger event, so redelivered triggers can be deduplicated downstream."""
    return hashlib.sha1(f"{user_id}\x00{event_id}".encode()).hexdigest()[:20]
