"""Offline replay evaluation through the worker's own code path.

    evaluate("movielens", dir, "llamarec", out_dir="eval/") → results dict (+ report files)

Each arm is a :class:`~stream_rec.core.recommender.Recommender` configuration; the split's
training events go through ``Recommender.observe`` one at a time (deltas folded into the
arm's ``ItemStats``), and each test case through ``Recommender.recommend``. See
``docs/accuracy.md`` for results and commands.
"""

from __future__ import annotations

from stream_rec.evaluation.arms import ARM_NAMES, BASELINES, MODEL_ARMS, Arm, make_arms
from stream_rec.evaluation.replay import ModelHooks
from stream_rec.evaluation.run import CostModel, evaluate, evaluate_split, machine_info

__all__ = [
    "ARM_NAMES",
    "BASELINES",
    "MODEL_ARMS",
    "Arm",
    "CostModel",
    "ModelHooks",
    "evaluate",
    "evaluate_split",
    "machine_info",
    "make_arms",
]
