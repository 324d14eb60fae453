"""Mixtures over anchors' neighbour lists, and the best items of a scored set.

Two candidate sources read neighbour lists: co-visitation (each recent item's stream
neighbours) and the model's text neighbours. Both mix the lists of the user's recent items
(the anchors) into one score per item, remember which anchor contributed most (the reason
cites it), and keep the best ``n`` items outside a filter, ties broken by item id.

>>> m = mix_lists([(np.array([3, 5]), np.array([0.2, 0.1])),
...                (np.array([5, 7]), np.array([0.3, 0.4]))], [1.0, 1.0])
>>> m.rows.tolist(), m.score.tolist(), m.best.tolist()
([3, 5, 7], [0.2, 0.4, 0.4], [0, 1, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass

import numpy as np

from stream_rec.core import _mixture

__all__ = ["Mixture", "best_of", "mix_lists"]


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


def mix_lists(lists: list[tuple[np.ndarray, np.ndarray]], scales: list[float], *,
              positive_only: bool = False) -> Mixture:
    """Mix the neighbour lists of several anchors: ``lists[a]`` is anchor ``a``'s (rows,
    weights), int32 or int64 item rows (>= 0, each at most once per anchor) and float32 or
    float64 weights; each entry's part is ``scales[a] * weight`` (numpy's float64 product);
    ``positive_only`` leaves out entries whose weight is not above 0.

    Each item's score is the sum of its parts added in anchor order, as ``np.bincount``
    over the entries adds them, so it is the same bit for bit however the lists were
    gathered. One call of the C kernel ``_mixture.mix_lists``.
    """
    total = sum(len(rows) for rows, _ in lists)
    out_rows, out_hits, out_best = (np.empty(total, np.int64), np.empty(total, np.int64),
                                    np.empty(total, np.int64))
    out_score = np.empty(total)
    k = _mixture.mix_lists(lists, scales, positive_only, out_rows, out_score, out_hits,
                           out_best)
    return Mixture(rows=out_rows[:k], score=out_score[:k], hits=out_hits[:k],
                   best=out_best[:k])


def best_of(score: np.ndarray, ids: list[str], rows: np.ndarray, n: int,
            skip: Container[str]) -> list[tuple[str, float, int]]:
    """The ``n`` best (item, score, index into ``score``), the item at index ``k`` being
    ``ids[rows[k]]``, whose item is not in ``skip``; best first, ties by item id (all items
    tied with the ``n``-th are compared).

    Walks the scores best first (ties by index) until ``n`` items pass ``skip`` and the
    score drops below the ``n``-th one's. The walk starts on the few top scores (every
    index scoring at least the ``2n``-th best score) and sorts all of them only when
    ``skip`` eats into that prefix. One call of the C kernel ``_mixture.best_of``.
    """
    return _mixture.best_of(np.ascontiguousarray(score, np.float64),
                            np.ascontiguousarray(rows, np.int64), ids, n, skip)
