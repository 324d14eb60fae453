"""A linear map from text space to behaviour space, learned from the stream (closed form).

Behaviour: items consumed close together in a user's sequence co-occur
(:func:`cooccurrence`); the degree-normalised co-occurrence matrix is factorised
(:func:`behaviour_factors`, a randomised eigendecomposition in numpy), so that items
bought together get nearby factor rows. Text: each item's unit text vector. The map
``W`` (d x k) is a ridge regression of the factors on the text vectors of the items seen
often enough (:func:`learn_projection`); any item, a brand-new one included, gets
``x @ W`` from its text alone.

>>> seqs = [[0, 1], [0, 1], [2, 3], [2, 3]]
>>> c = cooccurrence(seqs, 4, window=1)
>>> int(c[0, 1]), int(c[0, 2])
(2, 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Alignment",
    "Behaviour",
    "Projection",
    "behaviour_factors",
    "cooccurrence",
    "fit_projection",
    "learn_alignment",
    "learn_behaviour",
    "learn_projection",
]


@dataclass(frozen=True, slots=True)
class Projection:
    """``weights`` (d x k): text vector -> behaviour-aligned vector; ``fitted_items`` is how
    many items the fit saw."""

    weights: np.ndarray
    fitted_items: int

    def apply(self, text_vectors: np.ndarray) -> np.ndarray:
        """Projected vectors, shape ``(n, k)``, for rows of unit text vectors."""
        out: np.ndarray = np.asarray(text_vectors, np.float32) @ self.weights
        return out


def cooccurrence(sequences: Sequence[Sequence[int]], n_items: int, *,
                 window: int = 5) -> np.ndarray:
    """Symmetric counts of distinct items at most ``window`` positions apart in a sequence
    (dense ``n_items x n_items``, zero diagonal)."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    flat = np.zeros(n_items * n_items, np.float64)
    for gap in range(1, window + 1):
        pairs = [(np.asarray(seq[:-gap], np.int64), np.asarray(seq[gap:], np.int64))
                 for seq in sequences if len(seq) > gap]
        if not pairs:
            break
        a = np.concatenate([p[0] for p in pairs])
        b = np.concatenate([p[1] for p in pairs])
        keep = a != b
        a, b = a[keep], b[keep]
        flat += np.bincount(a * n_items + b, minlength=n_items * n_items)
        flat += np.bincount(b * n_items + a, minlength=n_items * n_items)
    counts = flat.reshape(n_items, n_items).astype(np.float32)
    return counts


def behaviour_factors(counts: np.ndarray, k: int, *, rng: np.random.Generator,
                      oversample: int = 16, power_iters: int = 4) -> np.ndarray:
    """Rows ``F`` (n x k) with ``F @ F.T`` close to ``D^-1/2 C D^-1/2`` (C = ``counts``,
    D its row sums): the top-``k`` eigenpairs by a randomised range finder, each column
    scaled by the square root of its (positive part of the) eigenvalue."""
    n = counts.shape[0]
    if not 0 < k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    degree = counts.sum(axis=1)
    scale = 1.0 / np.sqrt(np.maximum(degree, 1.0))
    normed = (counts * scale[:, None]) * scale[None, :]
    basis = rng.standard_normal((n, min(n, k + oversample))).astype(np.float32)
    for _ in range(power_iters):
        basis, _ = np.linalg.qr(normed @ basis)
    small = basis.T @ normed @ basis
    values, vectors = np.linalg.eigh((small + small.T) / 2)
    order = np.argsort(-values)[:k]
    factors: np.ndarray = (basis @ vectors[:, order]) * np.sqrt(np.maximum(values[order], 0.0))
    return factors.astype(np.float32)


def fit_projection(text: np.ndarray, targets: np.ndarray, *, ridge: float) -> np.ndarray:
    """``W = argmin ||text @ W - targets||^2 + ridge * ||W||^2`` in closed form (the dual
    form when there are more dimensions than rows: TF-IDF)."""
    if ridge <= 0:
        raise ValueError(f"ridge must be positive, got {ridge}")
    x = np.asarray(text, np.float64)
    y = np.asarray(targets, np.float64)
    n, d = x.shape
    if d > n:
        gram = x @ x.T + ridge * np.eye(n)
        weights = x.T @ np.linalg.solve(gram, y)
    else:
        weights = np.linalg.solve(x.T @ x + ridge * np.eye(d), x.T @ y)
    out: np.ndarray = weights.astype(np.float32)
    return out


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the training stream says about items: co-occurrence factors (n x k) and each
    item's interaction count."""

    factors: np.ndarray
    counts: np.ndarray
    cooccurrence: np.ndarray  # (n x n) symmetric counts, zero diagonal


def learn_behaviour(sequences: Sequence[Sequence[int]], n_items: int, *, k: int = 64,
                    window: int = 5, rng: np.random.Generator) -> Behaviour:
    """Co-occurrence factors and interaction counts of ``n_items`` items from the
    training sequences (item rows in stream order, per user)."""
    flat = [np.asarray(s, np.int64) for s in sequences]
    counts = np.bincount(np.concatenate(flat) if flat else np.zeros(0, np.int64),
                         minlength=n_items)
    pairs = cooccurrence(sequences, n_items, window=window)
    factors = behaviour_factors(pairs, min(k, n_items), rng=rng)
    return Behaviour(factors=factors, counts=counts, cooccurrence=pairs)


def learn_projection(text_unit: np.ndarray, behaviour: Behaviour, *, min_count: int = 5,
                     ridge: float = 1.0) -> Projection:
    """Fit a :class:`Projection`: the behaviour factors regressed on the text vectors of
    the items with at least ``min_count`` interactions (the others' factors are noise)."""
    fitted = np.flatnonzero(behaviour.counts >= min_count)
    if len(fitted) <= 1:
        raise ValueError(f"only {len(fitted)} items have {min_count}+ interactions: too few "
                         "to learn a projection; lower min_count or stream more events")
    weights = fit_projection(text_unit[fitted], behaviour.factors[fitted], ridge=ridge)
    return Projection(weights=weights, fitted_items=len(fitted))


@dataclass(frozen=True, slots=True)
class Alignment:
    """``x -> x @ W`` with ``W = I + basis.T @ residual`` (d x d), kept in the dual form:
    ``basis`` (m x d) are the fitted items' unit text vectors, ``residual`` (m x d)."""

    basis: np.ndarray
    residual: np.ndarray

    @property
    def fitted_items(self) -> int:
        return int(self.basis.shape[0])

    def apply(self, text_vectors: np.ndarray) -> np.ndarray:
        """Aligned vectors, same width as the text vectors."""
        x = np.asarray(text_vectors, np.float32)
        out: np.ndarray = x + (x @ self.basis.T) @ self.residual
        return out

    def matrix(self) -> np.ndarray:
        """``W`` itself (d x d): what a server would keep for a model of width d."""
        w: np.ndarray = self.basis.T @ self.residual
        w[np.diag_indices_from(w)] += 1.0
        return w


def learn_alignment(text_unit: np.ndarray, behaviour: Behaviour, *, min_count: int = 5,
                    ridge: float = 3.0) -> Alignment:
    """A map from an item's text to the text of what it is consumed with.

    Target of item i: the co-occurrence-weighted mean of the unit text vectors of its
    neighbours in the stream. ``W = argmin ||X W - Y||^2 + ridge * ||W - I||^2`` over the
    items with at least ``min_count`` interactions, so a large ``ridge`` keeps each text
    vector as it is and a small one trusts behaviour; any item, a brand-new one included,
    gets ``x @ W`` from its text. Closed form: ``W = I + X^T (X X^T + ridge I)^-1 (Y - X)``.
    """
    if ridge <= 0:
        raise ValueError(f"ridge must be positive, got {ridge}")
    pairs = behaviour.cooccurrence
    fitted = np.flatnonzero((behaviour.counts >= min_count) & (pairs.sum(axis=1) > 0))
    if len(fitted) <= 1:
        raise ValueError(f"only {len(fitted)} items have {min_count}+ interactions and a "
                         "neighbour: too few to learn an alignment; stream more events")
    x_all = np.asarray(text_unit, np.float64)
    weights = pairs[fitted].astype(np.float64)
    targets = (weights / weights.sum(axis=1, keepdims=True)) @ x_all
    x = x_all[fitted]
    residual = np.linalg.solve(x @ x.T + ridge * np.eye(len(fitted)), targets - x)
    return Alignment(basis=x.astype(np.float32), residual=residual.astype(np.float32))
