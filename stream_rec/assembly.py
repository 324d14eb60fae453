"""The recommender's parameters from :class:`~stream_rec.config.Settings`, in one place.

The streaming worker (``serving.build_runtime``) and the evaluated ``slm`` arm
(``evaluation.arms``) both build their parameters here, so what is evaluated is what a
worker with the same settings serves (a unit test pins it).
"""

from __future__ import annotations

from stream_rec.config import Settings
from stream_rec.core.item_stats import StatsParams
from stream_rec.core.learned_ranker import LearnerParams
from stream_rec.core.profile import ProfileParams
from stream_rec.core.ranking import RankParams

__all__ = ["learner_params", "profile_params", "rank_params", "stats_params"]


def stats_params(settings: Settings) -> StatsParams:
    return StatsParams(popularity_half_life_s=settings.popularity_half_life_s,
                       covisit_window=settings.covisit_window,
                       max_neighbours=settings.covisit_max_neighbours)


def profile_params(settings: Settings) -> ProfileParams:
    return ProfileParams(recent_items=settings.recent_items, half_life_s=settings.half_life_s,
                         dedupe_window=settings.dedupe_window)


def rank_params(settings: Settings) -> RankParams:
    return RankParams(top_k=settings.top_k, per_source=settings.candidates_per_source,
                      covisit_history=settings.covisit_history)


def learner_params(settings: Settings) -> LearnerParams | None:
    """The learned ranker's parameters, or None when the fixed blend ranks."""
    if settings.ranker != "learned":
        return None
    return LearnerParams(learning_rate=settings.ranker_learning_rate,
                         prior_l2=settings.ranker_prior_l2,
                         sample_every=settings.ranker_sample_every,
                         factors=settings.ranker_factors,
                         factor_learning_rate=settings.ranker_factor_learning_rate)
