"""Evaluation arms: named configurations of the one
:class:`~stream_rec.core.recommender.Recommender`.

Every arm, baselines included, is the worker's own recommender with different source
weights or decay, so there is no second implementation to drift from what runs:

=================  ============================================================
``popular``        trending only, popularity never decays (global counts so far)
``popular-recent`` trending only, popularity half-life one day
``item-knn``       co-visitation only (trending as a tiny backfill)
``repeat``         the user's own repeat purchases (trending as a tiny backfill)
``fast``           the default blended weights: the SLM arm's fast scorer, no model
``fast-no-<s>``    ``fast`` without source ``<s>`` (the ablation)
``slm``            ``fast`` plus the ``similar`` source from model item embeddings,
                   its weight chosen per dataset on the validation stage
=================  ============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from stream_rec.core.item_stats import StatsParams
from stream_rec.core.profile import ProfileParams
from stream_rec.core.ranking import DEFAULT_WEIGHTS, RankParams
from stream_rec.errors import ConfigError

__all__ = ["ARM_NAMES", "BASELINES", "MODEL_ARMS", "SLM_SIMILAR_WEIGHT", "TINY", "Arm",
           "ablation_arms", "make_arms"]

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

    def rank_params(self, top_k: int, base: RankParams | None = None) -> RankParams:
        """The arm's RankParams (on top of ``base``) with ``top_k`` items."""
        return replace(base or RankParams(), **dict(self.rank), top_k=top_k,
                       weights=dict(self.weights))

    @property
    def state_key(self) -> tuple[StatsParams, ProfileParams]:
        """Arms with equal keys build identical state from the same events."""
        return (self.stats, self.profile)


# The slm arm's `similar` weight per (dataset, protocol), picked from {0.01, 0.03, 0.1, 0.3}
# on the validation stage (docs/accuracy.md); elsewhere the default weight applies.
SLM_SIMILAR_WEIGHT: Mapping[tuple[str, str], float] = MappingProxyType({
    ("movielens", "llamarec"): 0.01,
    ("amazon-minionerec", "minionerec"): 0.1,
    ("online-retail", "time-split"): 0.03,
})


def _fast_weights() -> dict[str, float]:
    return dict(DEFAULT_WEIGHTS)


def _slm_weights(dataset: str | None, protocol: str | None) -> dict[str, float]:
    weights = _fast_weights()
    weights["similar"] = SLM_SIMILAR_WEIGHT.get((dataset or "", protocol or ""),
                                                weights.get("similar", 0.0))
    return weights


def _base_arms(dataset: str | None = None, protocol: str | None = None) -> dict[str, Arm]:
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
        "fast": Arm("fast", "the default blend (the SLM arm's fast scorer, no model)",
                    _fast_weights()),
        "slm": Arm("slm", "fast + 'similar' from the model's item embeddings",
                   _slm_weights(dataset, protocol), needs_model=True),
    }


BASELINES = ("popular", "popular-recent", "item-knn", "repeat")
MODEL_ARMS = ("slm",)
ARM_NAMES = (*BASELINES, "fast", *MODEL_ARMS)


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

    ``dataset`` and ``protocol`` select the slm arm's validated ``similar`` weight.
    Raises ConfigError for an unknown name, or a model arm asked for without a model.
    """
    arms = _base_arms(dataset, protocol)
    if names is None:
        names = [n for n in ARM_NAMES if model_available or n not in MODEL_ARMS]
    out: list[Arm] = []
    for name in dict.fromkeys(names):
        if name.startswith("fast-no-"):
            found = [a for a in ablation_arms(arms["fast"]) if a.name == name]
            if not found:
                raise ConfigError(f"arms: no ablation {name!r}; sources are "
                                  f"{sorted(arms['fast'].weights)}")
            out.extend(found)
            continue
        if name not in arms:
            raise ConfigError(f"arms: each must be one of {list(ARM_NAMES)} or "
                              f"fast-no-<source>, got {name!r}")
        if arms[name].needs_model and not model_available:
            raise ConfigError(f"arms: {name!r} needs the language model, which is not "
                              "available here (see docs/model.md)")
        out.append(arms[name])
    if ablation and any(a.name == "fast" for a in out):
        have = {a.name for a in out}
        out.extend(a for a in ablation_arms(arms["fast"]) if a.name not in have)
    return out


ARMS_DOC: Mapping[str, str] = MappingProxyType({a.name: a.summary
                                                for a in _base_arms().values()})
