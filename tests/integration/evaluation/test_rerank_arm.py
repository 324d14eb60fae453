"""The log-likelihood rerank arm with the real model: paired with ``slm`` on the same fixed
cases, it can only reorder ``slm``'s list, and it costs model time per case."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_rec.evaluation import evaluate
from stream_rec.evaluation.model_arm import model_hooks_factory

DATA = Path(__file__).resolve().parents[2] / "data"
ARMS = ["slm", "slm-rerank"]

pytestmark = pytest.mark.integration


def test_rerank_arm_reorders_the_slm_list_on_the_same_hashed_cases(model_path: Path) -> None:
    results = evaluate("movielens", DATA / "movielens", "llamarec", ARMS, out_dir=None,
                       progress=False, ablation=False, limit_cases=6, case_sample="hashed",
                       model_hooks=model_hooks_factory(ARMS, model_path=str(model_path)))
    assert results["case_sample"] == "hashed"
    slm, rerank = results["arms"]["slm"], results["arms"]["slm-rerank"]
    assert slm["recs"] == rerank["recs"] == 6
    paired = results["paired"]["slm-rerank - slm"]
    assert paired["cases"] == 6
    # the rerank permutes the top 10 it is given: what is in the top 10 cannot change
    assert paired["metrics"]["recall@10"] == {"diff": 0.0, "se": 0.0}
    assert rerank["metrics"]["recall@10"] == slm["metrics"]["recall@10"]
    assert rerank["latency_ms_p50"] > slm["latency_ms_p50"]  # a model call per case
