"""Ranking metric arithmetic on hand-made cases; expected values are worked out inline."""

from __future__ import annotations

import math

import pytest

from stream_rec.evaluation.metrics import (
    RankingAccumulator,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)

RANKED = ["a", "b", "c", "d", "e"]


def test_hit_at_rank_one_scores_one_everywhere() -> None:
    assert hit_rate_at_k(RANKED, {"a"}, 5) == 1.0
    assert recall_at_k(RANKED, {"a"}, 5) == 1.0
    assert ndcg_at_k(RANKED, {"a"}, 5) == 1.0
    assert mrr_at_k(RANKED, {"a"}, 5) == 1.0


def test_hit_at_rank_two_discounts_by_log2_of_three() -> None:
    assert ndcg_at_k(RANKED, {"b"}, 5) == pytest.approx(1 / math.log2(3))  # 0.6309
    assert mrr_at_k(RANKED, {"b"}, 5) == 0.5
    assert hit_rate_at_k(RANKED, {"b"}, 5) == 1.0


def test_hit_below_the_cutoff_scores_zero() -> None:
    # "d" sits at rank 4, outside the top 3
    assert hit_rate_at_k(RANKED, {"d"}, 3) == 0.0
    assert recall_at_k(RANKED, {"d"}, 3) == 0.0
    assert ndcg_at_k(RANKED, {"d"}, 3) == 0.0
    assert mrr_at_k(RANKED, {"d"}, 3) == 0.0


def test_missing_item_scores_zero() -> None:
    assert ndcg_at_k(RANKED, {"z"}, 10) == 0.0
    assert hit_rate_at_k(RANKED, {"z"}, 10) == 0.0


def test_two_relevant_items_at_ranks_one_and_three() -> None:
    # DCG = 1/log2(2) + 1/log2(4) = 1 + 0.5; ideal = 1/log2(2) + 1/log2(3)
    expected = 1.5 / (1 + 1 / math.log2(3))
    assert ndcg_at_k(RANKED, {"a", "c"}, 3) == pytest.approx(expected)  # 0.9197
    assert recall_at_k(RANKED, {"a", "c"}, 3) == 1.0
    assert mrr_at_k(RANKED, {"c", "a"}, 3) == 1.0


def test_ideal_dcg_is_capped_at_k_hits() -> None:
    # 3 relevant, k=2, one hit at rank 2: DCG = 1/log2(3); ideal over min(3, 2) = 2 slots
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(RANKED, {"b", "x", "y"}, 2) == pytest.approx(expected)  # 0.3869
    assert recall_at_k(RANKED, {"b", "x", "y"}, 2) == pytest.approx(1 / 3)


def test_all_relevant_items_filling_the_top_k_scores_ndcg_one() -> None:
    assert ndcg_at_k(RANKED, {"a", "b", "c", "d"}, 2) == pytest.approx(1.0)


def test_duplicate_ids_in_a_ranking_count_once() -> None:
    assert recall_at_k(["a", "a", "b"], {"a", "c"}, 3) == 0.5
    assert ndcg_at_k(["x", "a", "a"], {"a"}, 3) == pytest.approx(1 / math.log2(3))


def test_empty_relevant_set_is_rejected_with_advice() -> None:
    with pytest.raises(ValueError, match="at least one item id"):
        ndcg_at_k(RANKED, set(), 10)


def test_cutoff_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        hit_rate_at_k(RANKED, {"a"}, 0)


def test_accumulator_averages_per_case_values() -> None:
    acc = RankingAccumulator(["hr@2", "ndcg@2", "mrr@2", "recall@2"])
    first = acc.add(RANKED, {"a"})  # rank 1
    acc.add(RANKED, {"b"})  # rank 2
    acc.add(RANKED, {"e"})  # outside the top 2
    assert first == {"hr@2": 1.0, "ndcg@2": 1.0, "mrr@2": 1.0, "recall@2": 1.0}
    result = acc.result()
    assert acc.count == 3
    assert list(result) == ["hr@2", "ndcg@2", "mrr@2", "recall@2"]
    assert result["hr@2"] == pytest.approx(2 / 3)
    assert result["recall@2"] == pytest.approx(2 / 3)
    assert result["mrr@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert result["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)


def test_accumulator_for_ks_names_every_metric_at_every_cutoff() -> None:
    acc = RankingAccumulator.for_ks((5, 10))
    assert acc.keys == ("hr@5", "hr@10", "recall@5", "recall@10", "ndcg@5", "ndcg@10",
                        "mrr@5", "mrr@10")


def test_accumulator_without_cases_reports_zeros() -> None:
    assert RankingAccumulator(["hr@10"]).result() == {"hr@10": 0.0}


def test_accumulator_rejects_unknown_metric_keys() -> None:
    with pytest.raises(ValueError, match="'<metric>@<k>'"):
        RankingAccumulator(["precision@10"])
    with pytest.raises(ValueError, match="'<metric>@<k>'"):
        RankingAccumulator(["ndcg@0"])
