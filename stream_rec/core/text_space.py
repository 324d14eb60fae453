"""Item text vectors as the ranker reads them: centred cosine space plus nearest neighbours.

Built once per catalog change (off the event loop: a few matrix products), read per
recommendation without a model call and without a scan of the catalog:

- :meth:`TextSpace.neighbours_mix` is the ``similar`` candidate source: a mixture of the
  precomputed text neighbours of the user's recent items (like co-visitation, but from
  titles, so a brand-new item has neighbours from the moment it is embedded);
- :meth:`TextSpace.cosine` scores any candidate against the user's taste vector (a feature
  of the learned ranker).

>>> import numpy as np
>>> space = TextSpace.build({"a": np.array([1.0, 0.0]), "b": np.array([0.9, 0.1]),
...                          "c": np.array([0.0, 1.0])}, neighbours=1, centre=False)
>>> space.neighbours_mix({"a": 1.0}, 1)[0][0]
'b'
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from stream_rec.core.mixture import best_of, mix_lists

__all__ = ["TextSpace"]

_BLOCK = 1024


class TextSpace:
    """Centred, normalised item vectors with each item's ``neighbours`` nearest items."""

    def __init__(self, ids: Sequence[str], unit: np.ndarray, nbr_idx: np.ndarray,
                 nbr_sim: np.ndarray) -> None:
        self.ids = list(ids)
        self.rows = {item: i for i, item in enumerate(self.ids)}
        self.unit = unit  # (n, d) centred then L2-normalised
        self.nbr_idx = nbr_idx  # (n, m) row indices, best first
        self.nbr_sim = nbr_sim  # (n, m) cosines
        self._nbr_lists: dict[int, list[tuple[str, float]]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.rows

    @classmethod
    def build(cls, vectors: Mapping[str, np.ndarray], *, neighbours: int = 50,
              centre: bool = True) -> TextSpace:
        """Index ``vectors`` (any scale); cosine after subtracting the mean of the units."""
        ids = sorted(vectors)
        if not ids:
            return cls([], np.zeros((0, 1), np.float32), np.zeros((0, 0), np.int32),
                       np.zeros((0, 0), np.float32))
        matrix = np.stack([np.asarray(vectors[i], np.float32).reshape(-1) for i in ids])
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        if centre:
            matrix -= matrix.mean(axis=0, keepdims=True)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        n = len(ids)
        m = max(0, min(neighbours, n - 1))
        nbr_idx = np.zeros((n, m), np.int32)
        nbr_sim = np.zeros((n, m), np.float32)
        if m:
            for start in range(0, n, _BLOCK):
                block = matrix[start:start + _BLOCK] @ matrix.T
                rows = np.arange(block.shape[0])
                block[rows, rows + start] = -np.inf  # never your own neighbour
                top = np.argpartition(-block, m - 1, axis=1)[:, :m]
                sims = np.take_along_axis(block, top, axis=1)
                order = np.argsort(-sims, axis=1, kind="stable")
                nbr_idx[start:start + len(rows)] = np.take_along_axis(top, order, axis=1)
                nbr_sim[start:start + len(rows)] = np.take_along_axis(sims, order, axis=1)
        return cls(ids, matrix.astype(np.float32), nbr_idx, nbr_sim)

    def neighbours(self, item_id: str) -> list[tuple[str, float]]:
        """The item's nearest items by centred cosine, best first (empty if unknown)."""
        row = self.rows.get(item_id)
        if row is None:
            return []
        found = self._nbr_lists.get(row)
        if found is None:
            ids = self.ids
            found = [(ids[j], s) for j, s in zip(self.nbr_idx[row].tolist(),
                                                 self.nbr_sim[row].tolist(), strict=True)]
            self._nbr_lists[row] = found
        return found

    def neighbours_mix(self, weights: Mapping[str, float], n: int,
                       exclude: Collection[str] = ()) -> list[tuple[str, float, str]]:
        """Items near the weighted recent items: sum of weight x positive cosine over the
        anchors' neighbour lists (weights normalised), best first (ties by id), with the
        anchor that contributed most (the first on ties)."""
        known = [(self.rows[i], i, w) for i, w in weights.items() if w > 0 and i in self.rows]
        if not known or not self.nbr_idx.shape[1]:
            return []
        share = np.fromiter((w for _, _, w in known), np.float64, len(known))
        share /= share.sum()
        nbr_idx, nbr_sim = self.nbr_idx, self.nbr_sim
        mixed = mix_lists([(nbr_idx[r], nbr_sim[r]) for r, _, _ in known], share.tolist(),
                          positive_only=True)
        skip = frozenset(i for _, i, _ in known).union(exclude)  # never an anchor itself
        found = best_of(mixed.score, self.ids, mixed.rows, n, skip)
        best = mixed.best[[k for _, _, k in found]].tolist()
        return [(item, score, known[b][1])
                for (item, score, _), b in zip(found, best, strict=True)]

    def query(self, weights: Mapping[str, float]) -> np.ndarray | None:
        """The unit taste vector of the weighted items (None when none is indexed)."""
        rows = [(self.rows[i], w) for i, w in weights.items() if i in self.rows and w > 0]
        if not rows:
            return None
        if len(rows) == 1:  # one item (the last one touched): its weighted vector
            q = np.float32(rows[0][1]) * self.unit[rows[0][0]]
        else:
            at = np.fromiter((r for r, _ in rows), np.intp, len(rows))
            w = np.fromiter((w for _, w in rows), np.float32, len(rows))
            # summed row by row in order (numpy reduces axis 0 sequentially): the same bits
            # as adding w x vector one item at a time
            q = (w[:, None] * self.unit[at]).sum(axis=0)
        norm = math.sqrt(float(np.einsum("i,i->", q, q)))
        return q / norm if norm > 0 else None

    def cosine(self, query: np.ndarray | None, items: Sequence[str]) -> np.ndarray:
        """Centred cosine of each item with ``query`` (0 for items without a vector)."""
        return self.cosines([query], items)[:, 0]

    def cosines(self, queries: Sequence[np.ndarray | None],
                items: Sequence[str]) -> np.ndarray:
        """(len(items), len(queries)) centred cosines, one gather of the item vectors
        (0 for items without a vector and for None queries)."""
        used = [k for k, q in enumerate(queries) if q is not None]
        if not used or not len(self.ids):
            return np.zeros((len(items), len(queries)), np.float32)
        rows = np.fromiter(map(self.rows.get, items, itertools.repeat(-1)), np.intp,
                           len(items))
        have = rows >= 0
        matrix = np.stack([q for q in queries if q is not None], axis=1)
        if len(used) == len(queries) and have.all():  # the usual case: one product, no mask
            product: np.ndarray = self.unit[rows] @ matrix
            return product.astype(np.float32, copy=False)
        out = np.zeros((len(items), len(queries)), np.float32)
        if have.any():
            out[np.ix_(have, np.asarray(used, np.intp))] = self.unit[rows[have]] @ matrix
        return out
