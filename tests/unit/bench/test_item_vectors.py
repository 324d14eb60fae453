"""Item-vector comparison parts: TF-IDF, co-occurrence, the projection fit, the retrieval
scorer and the cases built from a split (bench/compare_item_vectors.py)."""

from __future__ import annotations

import numpy as np
import pytest

from stream_rec.bench.behaviour_projection import (
    behaviour_factors,
    cooccurrence,
    fit_projection,
    learn_alignment,
    learn_behaviour,
    learn_projection,
)
from stream_rec.bench.vector_retrieval import (
    RetrievalCase,
    retrieval_cases,
    score_retrieval,
    training_sequences,
    unit_rows,
)
from stream_rec.bench.vector_sources import reading_prompt, tfidf_vectors
from stream_rec.core.events import Event
from stream_rec.datasets import Split, TestCase


def test_tfidf_rows_are_unit_and_a_shared_rare_word_beats_a_shared_common_word() -> None:
    x = tfidf_vectors(["red lantern", "red bag", "red heart", "blue lantern"])

    assert np.allclose(np.linalg.norm(x, axis=1), 1.0)
    sim = x @ x.T
    assert sim[0, 3] > sim[0, 1]  # "lantern" (2 items) over "red" (3 items)


def test_the_reading_prompt_ends_where_the_model_has_read_the_whole_item() -> None:
    prompt = reading_prompt("JUMBO BAG. BAG")

    assert '"JUMBO BAG. BAG"' in prompt
    assert prompt.endswith('one word:"')


def test_cooccurrence_counts_distinct_pairs_within_the_window_symmetrically() -> None:
    c = cooccurrence([[0, 1, 2, 2, 3]], 4, window=1)

    assert c[0, 1] == c[1, 0] == 1
    assert c[1, 2] == 1 and c[2, 3] == 1
    assert c[0, 2] == 0  # two apart: outside a window of 1
    assert np.all(np.diag(c) == 0)  # a repeat is not a pair
    assert cooccurrence([[0, 1, 2]], 3, window=2)[0, 2] == 1


def test_cooccurrence_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError, match="window"):
        cooccurrence([[0, 1]], 2, window=0)


def test_behaviour_factors_put_items_bought_together_close_and_others_apart() -> None:
    seqs = [[0, 1, 2]] * 5 + [[3, 4, 5]] * 5
    f = unit_rows(behaviour_factors(cooccurrence(seqs, 6), 2, rng=np.random.default_rng(0)),
                  centre=False)

    sim = f @ f.T
    assert sim[0, 1] > 0.99 and sim[3, 5] > 0.99
    assert abs(sim[0, 4]) < 0.01


def test_ridge_fit_recovers_a_linear_map_in_primal_and_dual_form() -> None:
    rng = np.random.default_rng(1)
    w_true = rng.standard_normal((5, 3))
    x = rng.standard_normal((40, 5))
    w = fit_projection(x, x @ w_true, ridge=1e-6)
    assert np.allclose(w, w_true, atol=1e-3)

    wide = rng.standard_normal((6, 20))  # more dimensions than rows: the dual form
    y = rng.standard_normal((6, 2))
    primal = np.linalg.solve(wide.T @ wide + 0.5 * np.eye(20), wide.T @ y)
    assert np.allclose(fit_projection(wide, y, ridge=0.5), primal, atol=1e-4)


def test_ridge_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ridge"):
        fit_projection(np.eye(2), np.eye(2), ridge=0.0)


def test_projection_links_a_new_item_to_what_its_kind_is_bought_with() -> None:
    """Lanterns (text word 0) are bought with candles (word 1), hats (word 2) with scarves
    (word 3). Text alone cannot link a lantern to a candle; the projection learned from the
    stream does, for a brand-new lantern with no interaction at all."""
    unit, seqs = _lanterns_and_candles()
    behaviour = learn_behaviour(seqs, 25, k=2, window=1, rng=np.random.default_rng(0))
    projection = learn_projection(unit, behaviour, min_count=5, ridge=0.1)
    projected = unit_rows(projection.apply(unit), centre=False)

    assert projection.fitted_items == 24
    assert behaviour.counts[24] == 0
    raw_nearest = np.argsort(-(unit[:24] @ unit[24]))[:6]
    assert set(raw_nearest) == set(range(6))  # by text: the other lanterns
    by_behaviour = projected[:24] @ projected[24]
    assert by_behaviour[6:12].min() > by_behaviour[12:24].max()  # candles, not hats/scarves


def _lanterns_and_candles() -> tuple[np.ndarray, list[list[int]]]:
    """Items 0-5 lanterns, 6-11 candles, 12-17 hats, 18-23 scarves (one text word each,
    plus noise), 24 a new lantern; lanterns are bought with candles, hats with scarves."""
    rng = np.random.default_rng(2)
    kinds = [0] * 6 + [1] * 6 + [2] * 6 + [3] * 6 + [0]
    unit = unit_rows(np.eye(4)[kinds] + 0.1 * rng.standard_normal((25, 4)))
    seqs = [[int(rng.integers(0, 6)), int(rng.integers(6, 12))] for _ in range(300)]
    seqs += [[int(rng.integers(12, 18)), int(rng.integers(18, 24))] for _ in range(300)]
    return unit, seqs


def test_alignment_moves_a_new_item_towards_the_text_of_what_its_kind_is_bought_with() -> None:
    unit, seqs = _lanterns_and_candles()
    behaviour = learn_behaviour(seqs, 25, k=2, window=1, rng=np.random.default_rng(0))

    alignment = learn_alignment(unit, behaviour, min_count=5, ridge=0.1)
    aligned = unit_rows(alignment.apply(unit), centre=False)

    assert alignment.fitted_items == 24
    towards = unit[:24] @ aligned[24]  # the new lantern, aligned, against every text
    assert towards[6:12].min() > max(towards[:6].max(), towards[12:24].max())  # candles
    np.testing.assert_allclose(unit @ alignment.matrix(), alignment.apply(unit), atol=1e-5)


def test_a_strong_alignment_ridge_keeps_text_vectors_as_they_are() -> None:
    unit, seqs = _lanterns_and_candles()
    behaviour = learn_behaviour(seqs, 25, k=2, window=1, rng=np.random.default_rng(0))

    alignment = learn_alignment(unit, behaviour, min_count=5, ridge=1e6)

    np.testing.assert_allclose(alignment.apply(unit), unit, atol=1e-4)


def test_learning_a_projection_needs_enough_seen_items() -> None:
    with pytest.raises(ValueError, match="too few"):
        behaviour = learn_behaviour([[0, 1]], 3, k=2, rng=np.random.default_rng(0))
        learn_projection(np.eye(3), behaviour, min_count=5)


def test_scorer_finds_the_nearest_unmasked_item_and_reports_the_cold_slice() -> None:
    unit = unit_rows(np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1]], np.float32),
                     centre=False)
    hit = RetrievalCase(history=((0, 1.0),), masked=(0,), relevant=(1,), cold=(1,))
    miss = RetrievalCase(history=((0, 1.0),), masked=(0,), relevant=(3,), cold=())
    no_history = RetrievalCase(history=(), masked=(), relevant=(1,), cold=())

    scores = score_retrieval(unit, [hit, miss, no_history], k=1)

    assert scores.hr == pytest.approx(1 / 3)
    assert scores.ndcg == pytest.approx(1 / 3)
    assert (scores.cold_cases, scores.cold_hr) == (1, 1.0)
    masked_target = RetrievalCase(history=((0, 1.0),), masked=(0, 1), relevant=(1,), cold=())
    assert score_retrieval(unit, [masked_target], k=1).hr == 0.0


def test_ndcg_rewards_a_hit_at_rank_two_less_than_at_rank_one() -> None:
    unit = unit_rows(np.array([[1, 0], [0.9, 0.2], [0.8, 0.5], [0, 1]], np.float32),
                     centre=False)
    case = RetrievalCase(history=((0, 1.0),), masked=(0,), relevant=(2,), cold=())

    scores = score_retrieval(unit, [case], k=10)

    assert scores.hr == 1.0
    assert scores.ndcg == pytest.approx(1 / np.log2(3))


def _event(n: int, user: str, item: str) -> Event:
    return Event(f"e{n}", "purchase", user, 1_000 + n, item_id=item)


def test_cases_see_only_the_stream_before_them_and_training_skips_their_targets() -> None:
    events = tuple(_event(n, u, i) for n, (u, i) in enumerate(
        [("u", "a"), ("v", "b"), ("u", "b"), ("v", "c"), ("u", "c")]))
    cases = (TestCase("u", 4, frozenset({"c"}), frozenset(), 2_000),
             TestCase("v", 1, frozenset({"b"}), frozenset(), 2_000))
    split = Split("minionerec", events, cases, {}, item_ids=("a", "b", "c"))

    found = retrieval_cases(split)

    v_case, u_case = found  # asked in stream order
    assert v_case.history == () and v_case.relevant == (1,) and v_case.cold == (1,)
    assert dict(u_case.history) == pytest.approx({1: 5.0, 0: 5.0 * 0.5 ** 0.2})
    assert u_case.masked == (0, 1) and u_case.relevant == (2,)
    assert u_case.cold == (2,)  # "c" was seen once before the case: < 5
    assert training_sequences(split) == [[0, 1], [2]]  # u: a, b (c was u's target); v: c
