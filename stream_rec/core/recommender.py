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
from stream_rec.core.features import CandidateSet, FeatureParams, build_candidates
from stream_rec.core.item_stats import ItemDelta, ItemStats, StatsParams, delta_for
from stream_rec.core.learned_ranker import LearnedRanker, StreamLearner, rank_candidates
from stream_rec.core.profile import ProfileParams, UserProfile, apply_event
from stream_rec.core.ranking import RankParams, reason, recommend
from stream_rec.core.text_space import TextSpace

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
        ranker: LearnedRanker | None = None,
        text_space: TextSpace | None = None,
    ) -> None:
        self.catalog = catalog
        self.stats = stats
        self.rank_params = rank_params
        self.profile_params = profile_params
        self.vector_search = vector_search
        # the learned ranker (None: the fixed blend) and the model's text space it reads
        self.ranker = ranker
        self.text_space = text_space
        self._features_for: tuple[RankParams, FeatureParams] | None = None

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
        if self.ranker is not None:
            return self._learned(profile, now_ms=now_ms, params=params,
                                 just_bought=just_bought, exclude=exclude, allow=allow,
                                 semantic=semantic)
        return recommend(profile, self.stats, self.catalog, now_ms=now_ms,
                         params=params, just_bought=just_bought,
                         vector_search=self.vector_search if semantic else None,
                         exclude=exclude, allow=allow)

    def candidates(self, profile: UserProfile, *, now_ms: int,
                   blocked: frozenset[str] = frozenset(),
                   allow: frozenset[str] | None = None, semantic: bool = True
                   ) -> CandidateSet:
        """The learned ranker's candidates with their features (no model call)."""
        return build_candidates(
            profile, self.stats, self.catalog, now_ms=now_ms, params=self._feature_params(),
            space=self.text_space if semantic else None, blocked=blocked, allow=allow)

    def _feature_params(self) -> FeatureParams:
        """The candidates' parameters from :attr:`rank_params` (made again only when that
        is replaced)."""
        params, cached = self.rank_params, self._features_for
        if cached is None or cached[0] is not params:
            cached = self._features_for = (params, FeatureParams(
                per_source=params.per_source, covisit_history=params.covisit_history,
                buy_again_half_life_s=params.buy_again_half_life_s))
        return cached[1]

    def learner(self, *, semantic: bool = True) -> StreamLearner:
        """What learns the ranker from the stream: call ``on_event(before, event)`` with
        each event before its delta is folded (raises ValueError without a ranker)."""
        if self.ranker is None:
            raise ValueError("learner: this recommender has no learned ranker")
        return StreamLearner(self.ranker, lambda profile, now_ms: self.candidates(
            profile, now_ms=now_ms, semantic=semantic))

    def _learned(self, profile: UserProfile, *, now_ms: int, params: RankParams,
                 just_bought: frozenset[str], exclude: frozenset[str],
                 allow: frozenset[str] | None, semantic: bool) -> list[RecItem]:
        assert self.ranker is not None
        blocked = exclude | frozenset(profile.cart) | frozenset(
            item for item in just_bought
            if self.stats.repeat_propensity(item) < params.one_off_propensity)
        found = self.candidates(profile, now_ms=now_ms, blocked=blocked, allow=allow,
                                semantic=semantic)
        catalog = self.catalog
        check = params.require_catalog and len(catalog) > 0

        def keep(item: str) -> bool:
            return item not in blocked and (not check or catalog.recommendable(item))

        return [RecItem(item, score, reason(source, anchor, item, catalog, profile))
                for item, score, source, anchor in rank_candidates(
                    found, self.ranker, top_k=params.top_k, keep=keep)]


def rec_id_for(user_id: str, event_id: str) -> str:
    """A stable id per trigger event, so redelivered triggers can be deduplicated downstream."""
    return hashlib.sha1(f"{user_id}\x00{event_id}".encode()).hexdigest()[:20]
