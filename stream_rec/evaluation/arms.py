"""Evaluation arms: named configurations of the one
:class:`~stream_rec.core.recommender.Recommender`.

Every arm, baselines included, is the worker's own recommender with different source
weights or decay, so there is no second implementation to drift from what runs:

=================  ============================================================
``popular``        trending only, popularity never decays (global counts so far)
``popular-recent`` trending only, popularity half-life one day
``item-knn``       co-visitation only (trending as a tiny backfill)
``repeat``         the user's own repeat purchases (trending as a tiny backfill)
``blend``          the fixed blend of ``ranking.DEFAULT_WEIGHTS``, no model
``blend-no-<s>``   ``blend`` without source ``<s>`` (the ablation)
``fast``           the learned ranker, learning from the stream, without model features
                   (= ``slm`` without the model: the model's ablation)
``slm``            what a worker with default ``Settings`` serves: the learned ranker with
                   the model's features (text neighbours, taste and last-item cosine)
``slm-rerank``     ``slm`` + the optional in-process log-likelihood rerank of its list
                   (``STREAM_REC_RERANK_TOP_N``, off by default); only run when named,
                   as it costs ~1 s per case (``bench/eval_rerank.py``)
=================  ============================================================

No parameter depends on the dataset: one configuration for every shop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from stream_rec import assembly
from stream_rec.config import Settings
from stream_rec.core.item_stats import StatsParams
from stream_rec.core.learned_ranker import LearnerParams
from stream_rec.core.profile import ProfileParams
from stream_rec.core.ranking import DEFAULT_WEIGHTS, RankParams
from stream_rec.errors import ConfigError

__all__ = ["ARM_NAMES", "BASELINES", "MODEL_ARMS", "ON_REQUEST", "TINY", "Arm",
           "ablation_arms", "make_arms", "served_arm"]

TINY = 1e-6  # weight of a backfill source: breaks ties and fills the list, never outranks
_FOREVER_S = 1e15  # a popularity half-life no replay reaches: plain counts
_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Arm:
    """One named recommender configuration."""

    name: str
    summary: str
    weights: Mapping[str, float]
    stats: StatsParams = field(default_factory=StatsParams)
    profile: ProfileParams = field(default_factory=ProfileParams)
    needs_model: bool = False
    rank: Mapping[str, Any] = field(default_factory=dict)  # other RankParams fields
    learner: LearnerParams | None = None  # the learned ranker's (None: fixed blend)
    rerank_top_n: int = 0  # > 1: the model reorders the list's first N by log-likelihood

    def rank_params(self, top_k: int, base: RankParams | None = None) -> RankParams:
        """The arm's RankParams (on top of ``base``) with ``top_k`` items."""
        return replace(base or RankParams(), **dict(self.rank), top_k=top_k,
                       weights=dict(self.weights))

    @property
    def state_key(self) -> tuple[StatsParams, ProfileParams]:
        """Arms with equal keys build identical state from the same events."""
        return (self.stats, self.profile)


def _fast_weights() -> dict[str, float]:
    return dict(DEFAULT_WEIGHTS)


def served_arm(settings: Settings | None = None, *, name: str = "slm",
               model: bool = True) -> Arm:
    """The arm a worker with ``settings`` (default: the defaults) serves, with or
    without the model's features."""
    settings = settings or Settings()
    rank = assembly.rank_params(settings)
    weights = dict(rank.weights)
    if not model:
        weights.pop("similar", None)
    summary = ("what the worker serves: learned ranker + model features" if model else
               "the served ranker without the model's features")
    return Arm(name, summary, weights, stats=assembly.stats_params(settings),
               profile=assembly.profile_params(settings), needs_model=model,
               rank={"per_source": rank.per_source, "covisit_history": rank.covisit_history},
               learner=assembly.learner_params(settings))


def _base_arms() -> dict[str, Arm]:
    return {
        "popular": Arm("popular", "trending only; popularity never decays (global counts)",
                       {"trending": 1.0}, stats=StatsParams(popularity_half_life_s=_FOREVER_S)),
        "popular-recent": Arm("popular-recent", "trending only; popularity half-life 1 day",
                              {"trending": 1.0},
                              stats=StatsParams(popularity_half_life_s=_DAY_S)),
        "item-knn": Arm("item-knn", "co-visitation only, trending as a tiny backfill",
                        {"covisit": 1.0, "trending": TINY}),
        "repeat": Arm("repeat", "the user's repeat purchases, trending as a tiny backfill",
                      {"buy_again": 1.0, "trending": TINY}),
        "blend": Arm("blend", "the fixed blend of ranking.DEFAULT_WEIGHTS, no model",
                     {k: w for k, w in _fast_weights().items() if k != "similar"}),
        "fast": served_arm(name="fast", model=False),
        "slm": served_arm(),
        "slm-rerank": replace(
            served_arm(name="slm-rerank"), rerank_top_n=_rerank_top_n(),
            summary="slm + the in-process log-likelihood rerank of its list"),
    }


def _rerank_top_n(settings: Settings | None = None) -> int:
    """The worker's ``rerank_top_n`` when it is on, else its whole list (``top_k``)."""
    settings = settings or Settings()
    return settings.rerank_top_n if settings.rerank_top_n > 1 else settings.top_k


BASELINES = ("popular", "popular-recent", "item-knn", "repeat", "blend")
MODEL_ARMS = ("slm",)
ARM_NAMES = (*BASELINES, "fast", *MODEL_ARMS)
ON_REQUEST = ("slm-rerank",)  # run only when named: too slow for every case


def ablation_arms(base: Arm, *, with_model: bool = False) -> list[Arm]:
    """``base`` without each of its sources in turn, named ``<base>-no-<source>``."""
    out = []
    for source, weight in base.weights.items():
        if weight <= 0 or (source == "similar" and not (with_model and base.needs_model)):
            continue
        weights = {s: w for s, w in base.weights.items() if s != source}
        if not any(w > TINY for w in weights.values()):
            continue
        out.append(replace(base, name=f"{base.name}-no-{source}",
                           summary=f"{base.name} without '{source}'", weights=weights))
    return out


def make_arms(names: Sequence[str] | None = None, *, ablation: bool = True,
              model_available: bool = False, dataset: str | None = None,
              protocol: str | None = None) -> list[Arm]:
    """The arms to run: ``names`` (default: every arm that can run) plus the ablations.

    ``dataset`` and ``protocol`` are accepted for compatibility and change nothing.
    Raises ConfigError for an unknown name, or a model arm asked for without a model.
    """
    arms = _base_arms()
    if names is None:
        names = [n for n in ARM_NAMES if model_available or n not in MODEL_ARMS]
    out: list[Arm] = []
    for name in dict.fromkeys(names):
        if name.startswith("blend-no-"):
            found = [a for a in ablation_arms(arms["blend"]) if a.name == name]
            if not found:
                raise ConfigError(f"arms: no ablation {name!r}; sources are "
                                  f"{sorted(arms['blend'].weights)}")
            out.extend(found)
            continue
        if name not in arms:
            raise ConfigError(f"arms: each must be one of {[*ARM_NAMES, *ON_REQUEST]} or "
                              f"blend-no-<source>, got {name!r}")
        if arms[name].needs_model and not model_available:
            raise ConfigError(f"arms: {name!r} needs the language model, which is not "
                              "available here (see docs/model.md)")
        out.append(arms[name])
    if ablation and any(a.name == "blend" for a in out):
        have = {a.name for a in out}
        out.extend(a for a in ablation_arms(arms["blend"]) if a.name not in have)
    return out


ARMS_DOC: Mapping[str, str] = MappingProxyType({a.name: a.summary
                                                for a in _base_arms().values()})
