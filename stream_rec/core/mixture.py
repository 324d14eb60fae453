"""Mixtures over anchors' neighbour lists, and the best items of a scored set.

Two candidate sources read neighbour lists: co-visitation (each recent item's stream
neighbours) and the model's text neighbours. Both mix the lists of the user's recent items
(the anchors) into one score per item, remember which anchor contributed most (the reason
cites it), and keep the best ``n`` items outside a filter, ties broken by item id.

>>> m = mix(np.array([3, 5, 5, 7]), np.array([0.2, 0.1, 0.3, 0.4]), np.array([0, 0, 1, 1]))
>>> m.rows.tolist(), m.score.tolist(), m.best.tolist()
([3, 5, 7], [0.2, 0.4, 0.4], [0, 1, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass

import numpy as np

__all__ = ["Mixture", "best_of", "mix"]


@dataclass(frozen=True, slots=True)
class Mixture:
    """Per distinct item row (ascending): the summed parts, how many anchors reach it, and
    the anchor (its position) with the largest part, the first on ties."""

    rows: np.ndarray
    score: np.ndarray
    hits: np.ndarray
    best: np.ndarray

    def at(self, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``values`` (aligned with :attr:`rows`) read at ``rows``; 0 where absent."""
        return self.reader(rows)(values)

    def reader(self, rows: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """:meth:`at` for several ``values`` at the same ``rows``: one search."""
        if not len(self.rows):
            return lambda values: np.zeros(len(rows))
        idx = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        found = self.rows[idx] == rows
        return lambda values: np.where(found, values[idx], 0.0)


def mix(rows: np.ndarray, parts: np.ndarray, position: np.ndarray) -> Mixture:
    """Mix the neighbour lists of several anchors: entry ``k`` says anchor ``position[k]``
    reaches item ``rows[k]`` with weight ``parts[k]``; entries come in anchor order
    (``position`` does not decrease) and an item occurs once per anchor.

    Each item's score is the sum of its parts added in anchor order (as ``np.bincount``
    over the entries), so it is the same bit for bit however the entries were gathered.
    """
    if not len(rows):
        empty = np.zeros(0)
        return Mixture(np.zeros(0, np.intp), empty, empty, np.zeros(0, np.intp))
    order = _stable_order(rows)  # by row; within a row, in anchor order
    sorted_rows = rows[order]
    starts = np.empty(len(rows), bool)
    starts[0] = True
    np.not_equal(sorted_rows[1:], sorted_rows[:-1], out=starts[1:])
    group = np.cumsum(starts) - 1
    inverse = np.empty_like(group)
    inverse[order] = group
    n = int(group[-1]) + 1
    sorted_parts = parts[order]
    top = np.maximum.reduceat(sorted_parts, np.flatnonzero(starts))
    at_top = np.flatnonzero(sorted_parts == top[group])  # ascending: anchor order in a group
    first = at_top[np.concatenate(([True], group[at_top[1:]] != group[at_top[:-1]]))]
    return Mixture(rows=sorted_rows[starts], score=np.bincount(inverse, parts, n),
                   hits=np.bincount(inverse, None, n), best=position[order[first]])


_RADIX_ROWS = 1 << 16


def _stable_order(rows: np.ndarray) -> np.ndarray:
    """``np.argsort(rows, kind="stable")`` for non-negative row numbers, without its merge
    sort (which mispredicts its way through ~1,000 varied rows in ~35 µs here): numpy's radix
    sort when every row fits in 16 bits, else a plain sort of the unique keys row x n + entry
    index, whose order is the same.

    >>> _stable_order(np.array([7, 3, 7, 3, 1])).tolist()
    [4, 1, 3, 0, 2]
    """
    if int(rows.max()) < _RADIX_ROWS:
        return np.argsort(rows.astype(np.uint16), kind="stable")
    n = len(rows)
    return np.argsort(rows.astype(np.int64) * n + np.arange(n))


def best_of(score: np.ndarray, item_at: Callable[[int], str], n: int,
            skip: Container[str]) -> list[tuple[str, float, int]]:
    """The ``n`` best (item, score, index into ``score``) whose item is not in ``skip``,
    best first, ties by item id (all items tied with the ``n``-th are compared).

    Walks the scores best first (ties by index) until ``n`` items pass ``skip`` and the
    score drops below the ``n``-th one's. The walk starts on the few top scores (every
    index scoring at least the ``2n``-th best score) and sorts all of them only when
    ``skip`` eats into that prefix.
    """
    if n <= 0:
        return []
    found = _walk(score, _top_order(score, 2 * n), item_at, n, skip)
    if found is None:
        found = _walk(score, np.argsort(-score, kind="stable"), item_at, n, skip)
        assert found is not None
    found.sort(key=_by_score_then_id)
    return found[:n]


def _top_order(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of every score >= the ``k``-th largest, best first, ties by index."""
    if k >= len(score):
        return np.argsort(-score, kind="stable")
    cut = np.partition(score, len(score) - k)[len(score) - k]
    top = np.flatnonzero(score >= cut)
    return top[np.argsort(-score[top], kind="stable")]


def _walk(score: np.ndarray, order: np.ndarray, item_at: Callable[[int], str], n: int,
          skip: Container[str]) -> list[tuple[str, float, int]] | None:
    """The walk of :func:`best_of` over ``order``; None when ``order`` (a prefix of the
    full order, unless it holds every index) ran out before the walk could stop."""
    found: list[tuple[str, float, int]] = []
    cut = None
    for k, value in zip(order.tolist(), score[order].tolist(), strict=True):
        if cut is not None and value < cut:
            return found
        item = item_at(k)
        if item in skip:
            continue
        found.append((item, value, k))
        if cut is None and len(found) == n:
            cut = value
    return found if cut is not None or len(order) == len(score) else None


def _by_score_then_id(found: tuple[str, float, int]) -> tuple[float, str]:
    return -found[1], found[0]
