"""The neighbour-list mixture and the best-n selection both candidate sources use."""

from __future__ import annotations

import random

import numpy as np
import pytest

from stream_rec.core.mixture import best_of, mix_lists


def _reference(lists: list[list[tuple[int, float]]]) -> dict[int, tuple[float, int, int]]:
    """Per item: (sum of parts in anchor order, anchors reaching it, first anchor with the
    largest part), the plain way."""
    out: dict[int, tuple[float, int, int]] = {}
    top: dict[int, float] = {}
    for position, entries in enumerate(lists):
        for item, part in entries:
            score, hits, best = out.get(item, (0.0, 0, position))
            if part > top.get(item, -1.0):
                top[item], best = part, position
            out[item] = (score + part, hits + 1, best)
    return out


# rows in 1, 3 and 6 bytes (one radix pass per byte), and in 2 bytes as int32 rows
# and float32 weights as the text neighbours have them
@pytest.mark.parametrize(("first_row", "rows_type", "weights_type"), [
    (0, np.intp, np.float64), (70_000, np.intp, np.float64), (2**40, np.intp, np.float64),
    (1000, np.int32, np.float32)])
def test_mix_sums_counts_and_cites_the_first_anchor_with_the_largest_part(
        first_row: int, rows_type: type, weights_type: type) -> None:
    rng = random.Random(3)
    for _ in range(200):
        lists, scales = [], []
        for _ in range(rng.randint(1, 10)):
            items = rng.sample(range(first_row, first_row + 40), rng.randint(0, 15))
            # coarse weights, so ties between anchors happen
            weights = np.array([rng.choice([0.1, 0.2, 0.3, rng.random()]) for _ in items],
                               weights_type)
            lists.append((np.array(items, rows_type), weights))
            scales.append(rng.choice([1.0, 0.5, rng.random()]))
        mixed = mix_lists(lists, scales)
        # the parts as numpy multiplies them: float64 weight x scale
        want = _reference([list(zip(rows.tolist(), (weights.astype(np.float64) * s).tolist(),
                                    strict=True)) for (rows, weights), s in zip(lists, scales,
                                                                                strict=True)])
        assert mixed.rows.tolist() == sorted(want)
        for k, item in enumerate(mixed.rows.tolist()):
            score, hits, best = want[item]
            assert mixed.score[k] == score  # bit for bit: summed in anchor order
            assert mixed.hits[k] == hits
            assert mixed.best[k] == best


def test_mix_leaves_out_weights_not_above_zero_when_asked() -> None:
    lists = [(np.array([4, 2, 9], np.int32), np.array([0.5, 0.0, -0.2], np.float32)),
             (np.array([2], np.int32), np.array([0.25], np.float32))]
    kept = mix_lists(lists, [1.0, 2.0], positive_only=True)
    assert kept.rows.tolist() == [2, 4] and kept.score.tolist() == [0.5, 0.5]
    assert kept.best.tolist() == [1, 0]
    every = mix_lists(lists, [1.0, 2.0])
    assert every.rows.tolist() == [2, 4, 9] and every.hits.tolist() == [2, 1, 1]


def test_mix_refuses_a_negative_row_and_bad_arrays_and_says_so() -> None:
    with pytest.raises(ValueError, match=r"lists\[1\]: row -3: rows must be >= 0"):
        mix_lists([(np.array([2]), np.array([0.1])), (np.array([-3]), np.array([0.2]))],
                  [1.0, 1.0])
    with pytest.raises(TypeError, match=r"lists\[0\]: expected 1-d int32/int64 rows"):
        mix_lists([(np.array([2.0]), np.array([0.1]))], [1.0])
    with pytest.raises(ValueError, match="scales: 1 values for 2 lists"):
        mix_lists([(np.array([2]), np.array([0.1]))] * 2, [1.0])


def test_mix_of_nothing_is_empty() -> None:
    mixed = mix_lists([], [])
    assert len(mix_lists([(np.zeros(0, np.intp), np.zeros(0))], [1.0]).rows) == 0
    assert len(mixed.rows) == 0
    assert mixed.at(np.array([1, 2]), mixed.score).tolist() == [0.0, 0.0]


def test_best_of_skips_filtered_items_and_breaks_ties_at_the_cut_by_id() -> None:
    ids = ["e", "d", "c", "b", "a", "z"]
    score = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.9])
    found = best_of(score, ids, np.arange(len(ids)), 3, skip={"z"})
    # "d" first; then the three tied at 0.5 compete for two places, by id: "b", "c"
    assert [(i, s) for i, s, _ in found] == [("d", 0.9), ("b", 0.5), ("c", 0.5)]
    assert [k for _, _, k in found] == [1, 3, 2]
    assert best_of(score, ids, np.arange(len(ids)), 10, skip=set(ids)) == []


def _best_by_full_sort(score: np.ndarray, ids: list[str], n: int,
                       skip: set[str]) -> list[tuple[str, float, int]]:
    """best_of the plain way: every index, best first, ties by id, skipped ones left out."""
    kept = [(ids[k], float(score[k]), k) for k in range(len(score)) if ids[k] not in skip]
    kept.sort(key=lambda f: (-f[1], f[0]))
    return kept[:n]


def test_best_of_equals_a_full_sort_whatever_the_ties_and_how_many_are_skipped() -> None:
    rng = random.Random(11)
    for _ in range(500):
        size = rng.randint(0, 300)
        # coarse scores so ties straddle the cut; ids in random order
        score = np.array([rng.choice([0.1, 0.2, 0.3, 0.4, rng.random()]) for _ in range(size)])
        ids = [f"i{rng.randrange(10**6):06d}{k}" for k in range(size)]
        n = rng.randint(1, 60)
        # sometimes skip most of the best items, so the top prefix runs out
        best_first = sorted(range(size), key=lambda k: -score[k])
        skip = {ids[k] for k in best_first[:rng.randint(0, size)] if rng.random() < 0.8}
        found = best_of(score, ids, np.arange(size), n, skip)
        assert found == _best_by_full_sort(score, ids, n, skip)
    assert best_of(np.array([0.3, 0.2]), ["a", "b"], np.arange(2), 0, set()) == []


def test_best_of_reads_each_item_through_its_row_and_asks_any_container_to_skip() -> None:
    ids = ["a", "b", "c", "d"]
    rows = np.array([3, 0, 2])  # index 0 is "d", 1 is "a", 2 is "c"

    class NotVowels:
        def __contains__(self, item: object) -> bool:
            return item not in ("a", "e")

    found = best_of(np.array([0.9, 0.5, 0.7]), ids, rows, 2, skip=set())
    assert found == [("d", 0.9, 0), ("c", 0.7, 2)]
    assert best_of(np.array([0.9, 0.5, 0.7]), ids, rows, 2, skip=NotVowels()) == [("a", 0.5, 1)]


def test_best_of_refuses_a_row_outside_the_ids_and_says_so() -> None:
    with pytest.raises(IndexError, match=r"rows\[1\] is 7: not a position in ids \(2\)"):
        best_of(np.array([0.2, 0.9]), ["a", "b"], np.array([0, 7]), 1, set())
