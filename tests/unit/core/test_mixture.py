"""The neighbour-list mixture and the best-n selection both candidate sources use."""

from __future__ import annotations

import random

import numpy as np
import pytest

from stream_rec.core.mixture import best_of, mix


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


@pytest.mark.parametrize("first_row", [0, 70_000])  # rows in 16 bits, and beyond
def test_mix_sums_counts_and_cites_the_first_anchor_with_the_largest_part(
        first_row: int) -> None:
    rng = random.Random(3)
    for _ in range(200):
        lists = []
        for _ in range(rng.randint(1, 10)):
            items = rng.sample(range(first_row, first_row + 40), rng.randint(0, 15))
            # coarse parts, so ties between anchors happen
            lists.append([(i, rng.choice([0.1, 0.2, 0.3, rng.random()])) for i in items])
        rows = np.array([i for entries in lists for i, _ in entries], np.intp)
        parts = np.array([p for entries in lists for _, p in entries])
        position = np.repeat(np.arange(len(lists)), [len(e) for e in lists])
        mixed = mix(rows, parts, position)
        want = _reference(lists)
        assert mixed.rows.tolist() == sorted(want)
        for k, item in enumerate(mixed.rows.tolist()):
            score, hits, best = want[item]
            assert mixed.score[k] == score  # bit for bit: summed in anchor order
            assert mixed.hits[k] == hits
            assert mixed.best[k] == best


def test_mix_of_nothing_is_empty() -> None:
    mixed = mix(np.zeros(0, np.intp), np.zeros(0), np.zeros(0, np.intp))
    assert len(mixed.rows) == 0
    assert mixed.at(np.array([1, 2]), mixed.score).tolist() == [0.0, 0.0]


def test_best_of_skips_filtered_items_and_breaks_ties_at_the_cut_by_id() -> None:
    ids = ["e", "d", "c", "b", "a", "z"]
    score = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.9])
    found = best_of(score, ids.__getitem__, 3, skip={"z"})
    # "d" first; then the three tied at 0.5 compete for two places, by id: "b", "c"
    assert [(i, s) for i, s, _ in found] == [("d", 0.9), ("b", 0.5), ("c", 0.5)]
    assert [k for _, _, k in found] == [1, 3, 2]
    assert best_of(score, ids.__getitem__, 10, skip=set(ids)) == []


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
        found = best_of(score, ids.__getitem__, n, skip)
        assert found == _best_by_full_sort(score, ids, n, skip)
    assert best_of(np.array([0.3, 0.2]), ["a", "b"].__getitem__, 0, set()) == []
