"""Sharing the learned ranker: priors + Σ contributions, idempotent folds, restores."""

from __future__ import annotations

import numpy as np
import pytest

from stream_rec.core.features import FEATURES
from stream_rec.core.learned_ranker import LearnedRanker, LearnerParams, RankerState
from stream_rec.core.ranker_contributions import Contribution, SharedRanker


def learn(ranker: LearnedRanker, seed: int, steps: int = 20) -> None:
    """``steps`` softmax steps on random lists of 8 candidates."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.normal(size=(8, len(FEATURES))).astype(np.float32)
        ranker.learn_one(x, int(rng.integers(8)))


def replica(contributor: str) -> SharedRanker:
    return SharedRanker(LearnedRanker(), contributor)


def published(shared: SharedRanker) -> Contribution:
    record = shared.publish()
    assert record is not None
    return Contribution.from_dict(record.to_dict())  # through the wire format


def test_a_fresh_replica_holds_the_priors_and_has_nothing_to_publish() -> None:
    shared = replica("w0")
    assert shared.ranker.state() == RankerState.prior()
    assert shared.publish() is None
    assert shared.contributors == 0


def test_replicas_folding_each_others_contributions_hold_the_same_sum() -> None:
    a, b = replica("a"), replica("b")
    learn(a.ranker, seed=1)
    learn(b.ranker, seed=2)
    record_a, record_b = published(a), published(b)
    assert a.fold(record_b) == "applied"
    assert b.fold(record_a) == "applied"
    np.testing.assert_allclose(a.ranker.w, b.ranker.w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.ranker.g2, b.ranker.g2, rtol=0, atol=1e-12)
    assert a.ranker.updates == b.ranker.updates == 40
    assert a.contributors == b.contributors == 2
    prior = np.asarray(RankerState.prior().weights)
    expected = prior + np.asarray(record_a.weight_steps) + np.asarray(record_b.weight_steps)
    np.testing.assert_allclose(a.ranker.w, expected, rtol=0, atol=1e-12)


def test_a_contribution_is_cumulative_and_a_newer_record_replaces_the_older() -> None:
    a, c = replica("a"), replica("c")
    learn(a.ranker, seed=1, steps=5)
    first = published(a)
    learn(a.ranker, seed=3, steps=5)  # a keeps learning: its next record holds all ten steps
    second = published(a)
    assert (first.seq, second.seq) == (1, 2)
    assert second.updates == 10
    assert c.fold(first) == "applied"
    assert c.fold(second) == "applied"
    np.testing.assert_allclose(c.ranker.w, a.ranker.w, rtol=0, atol=1e-12)
    assert c.ranker.updates == 10


def test_refolding_the_same_or_an_older_record_changes_nothing() -> None:
    a, c = replica("a"), replica("c")
    learn(a.ranker, seed=1, steps=5)
    first = published(a)
    learn(a.ranker, seed=3, steps=5)
    second = published(a)
    c.fold(second)
    before = c.ranker.state()
    assert c.fold(second) == "stale"
    assert c.fold(first) == "stale"  # a compacted topic may still hold it, after the newer
    assert c.ranker.state() == before


def test_own_records_folded_back_are_echoes() -> None:
    a = replica("a")
    learn(a.ranker, seed=1)
    record = published(a)
    before = a.ranker.state()
    assert a.fold(record) == "echo"
    assert a.ranker.state() == before
    assert a.contributors == 1


def test_a_restart_under_the_same_id_continues_its_contribution_without_double_counting() -> None:
    a = replica("a")
    learn(a.ranker, seed=1)
    old = published(a)
    restarted = replica("a")
    assert restarted.fold(old) == "restored"
    np.testing.assert_allclose(restarted.ranker.w, a.ranker.w, rtol=0, atol=1e-12)
    assert restarted.publish() is None  # nothing new learned: no record
    learn(restarted.ranker, seed=5, steps=7)
    new = published(restarted)
    assert new.seq == old.seq + 1
    assert new.updates == 27
    # another replica folding the whole topic counts the contributor once
    c = replica("c")
    assert [c.fold(old), c.fold(new)] == ["applied", "applied"]
    np.testing.assert_allclose(c.ranker.w, restarted.ranker.w, rtol=0, atol=1e-12)
    assert c.ranker.updates == restarted.ranker.updates == 27
    assert c.contributors == restarted.contributors == 1


def test_steps_learned_before_the_restore_are_kept_on_top_of_it() -> None:
    a = replica("a")
    learn(a.ranker, seed=1)
    old = published(a)
    restarted = replica("a")
    learn(restarted.ranker, seed=9, steps=3)  # events handled while the topic was being read
    restarted.fold(old)
    record = published(restarted)
    assert record.updates == 23
    c = replica("c")
    c.fold(record)
    np.testing.assert_allclose(c.ranker.w, restarted.ranker.w, rtol=0, atol=1e-12)


def test_a_restart_under_a_new_id_keeps_the_old_contribution_in_the_sum() -> None:
    a = replica("a")
    learn(a.ranker, seed=1)
    old = published(a)
    successor = replica("a2")
    assert successor.fold(old) == "applied"
    learn(successor.ranker, seed=2, steps=4)
    assert successor.contributors == 2
    assert successor.ranker.updates == 24
    assert published(successor).updates == 4  # only its own steps


def test_a_newer_record_under_this_id_after_publishing_is_a_conflict_and_ignored() -> None:
    a, twin = replica("a"), replica("a")
    learn(a.ranker, seed=1)
    published(a)
    learn(twin.ranker, seed=2)
    published(twin)
    learn(twin.ranker, seed=3, steps=2)
    newer = published(twin)  # seq 2, above a's 1
    before = a.ranker.state()
    assert a.fold(newer) == "conflict"
    assert a.ranker.state() == before


def test_records_of_another_schema_are_rejected_with_the_reason() -> None:
    a = replica("a")
    learn(a.ranker, seed=1)
    data = published(a).to_dict()
    with pytest.raises(ValueError, match="schema must be 1, got 2"):
        Contribution.from_dict({**data, "schema": 2})
    with pytest.raises(ValueError, match="missing field 'seq'"):
        Contribution.from_dict({k: v for k, v in data.items() if k != "seq"})
    with pytest.raises(ValueError, match="finite"):
        Contribution.from_dict({**data, "weight_steps": [float("nan")] * len(FEATURES)})
    with pytest.raises(ValueError, match="features but"):
        Contribution.from_dict({**data, "weight_steps": data["weight_steps"][:-1]})


def test_a_renamed_feature_set_keeps_the_names_that_still_exist() -> None:
    kept, dropped = FEATURES[1], "a-feature-since-removed"
    record = Contribution("old", 1, (kept, dropped), (0.25, 9.0), (0.5, 4.0), updates=3)
    c = replica("c")
    prior = c.ranker.w.copy()
    assert c.fold(record) == "applied"
    diff = c.ranker.w - prior
    assert diff[1] == 0.25 and np.count_nonzero(diff) == 1
    assert c.ranker.g2[1] == 0.5 and np.count_nonzero(c.ranker.g2) == 1
    with pytest.raises(ValueError, match="none of its 1 features is known"):
        c.fold(Contribution("other", 1, (dropped,), (1.0,), (1.0,), updates=1))


def interacting(contributor: str) -> SharedRanker:
    return SharedRanker(LearnedRanker(LearnerParams(factors=3)), contributor)


def test_replicas_share_the_interaction_vectors_as_they_share_the_weights() -> None:
    a, b = interacting("a"), interacting("b")
    learn(a.ranker, seed=1)
    learn(b.ranker, seed=2)
    record_a, record_b = published(a), published(b)
    assert len(record_a.factor_steps) == len(FEATURES)
    a.fold(record_b)
    b.fold(record_a)
    np.testing.assert_allclose(a.ranker.v, b.ranker.v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.ranker.v_g2, b.ranker.v_g2, rtol=0, atol=1e-12)
    start = LearnedRanker(LearnerParams(factors=3)).v
    expected = (start + np.asarray(record_a.factor_steps)
                + np.asarray(record_b.factor_steps))
    np.testing.assert_allclose(a.ranker.v, expected, rtol=0, atol=1e-12)
    restarted = interacting("a")  # a restart restores its own vectors too
    assert restarted.fold(record_a) == "restored"
    restarted.fold(record_b)
    np.testing.assert_allclose(restarted.ranker.v, a.ranker.v, rtol=0, atol=1e-12)


def test_a_record_without_interactions_or_with_another_length_folds_its_weights_only() -> None:
    linear, other = replica("linear"), SharedRanker(LearnedRanker(LearnerParams(factors=2)),
                                                    "other")
    learn(linear.ranker, seed=1)
    learn(other.ranker, seed=2)
    c = interacting("c")
    start = c.ranker.v.copy()
    assert [c.fold(published(linear)), c.fold(published(other))] == ["applied", "applied"]
    np.testing.assert_array_equal(c.ranker.v, start)
    assert c.ranker.updates == 40


def test_malformed_interaction_steps_are_rejected_with_the_reason() -> None:
    a = interacting("a")
    learn(a.ranker, seed=1)
    data = published(a).to_dict()
    with pytest.raises(ValueError, match="one vector per feature"):
        Contribution.from_dict({**data, "factor_steps": data["factor_steps"][:-1]})
    with pytest.raises(ValueError, match="finite"):
        Contribution.from_dict({**data, "factor_steps": [[float("nan")] * 3] * len(FEATURES)})
    with pytest.raises(ValueError, match=">= 0"):
        Contribution.from_dict({**data, "factor_grad_squares": [[-1.0] * 3] * len(FEATURES)})
