"""Next-item retrieval with item vectors, scored the way the ranker reads its text space.

A :class:`RetrievalCase` is built from a split's cases and the training stream before each
(:func:`retrieval_cases`); :func:`score_retrieval` ranks every item by centred cosine with
the user's taste vector (the recency- and action-weighted mean of their last items' unit
vectors, as ``core.features`` weighs them), masks the user's history, and averages HR@k and
NDCG@k overall and on the cold-item slice (the relevant items with fewer than
``COLD_ITEM`` interactions before the case).

>>> unit = unit_rows(np.eye(3, dtype=np.float32), centre=False)
>>> case = RetrievalCase(history=((0, 1.0),), masked=(0,), relevant=(1,), cold=(1,))
>>> score_retrieval(unit, [case], k=2).hr
1.0
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stream_rec.datasets import Split
from stream_rec.evaluation.metrics import hit_rate_at_k, ndcg_at_k
from stream_rec.evaluation.replay import COLD_ITEM

__all__ = [
    "RetrievalCase",
    "RetrievalScores",
    "retrieval_cases",
    "score_retrieval",
    "training_sequences",
    "unit_rows",
]

# As the learned ranker's taste (core.features): action weight x 0.5 ** (age / 5), last 10.
_ACTION = {"view": 1.0, "rec_click": 1.5, "add_to_cart": 3.0, "purchase": 5.0}
TASTE_HISTORY = 10
TASTE_HALF_LIFE_ITEMS = 5.0
_BLOCK = 256  # cases scored per matrix product


@dataclass(frozen=True, slots=True)
class RetrievalCase:
    """One question: the weighted history rows, the rows never to recommend, the relevant
    rows and those of them that are cold."""

    history: tuple[tuple[int, float], ...]
    masked: tuple[int, ...]
    relevant: tuple[int, ...]
    cold: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RetrievalScores:
    """Mean HR@k and NDCG@k over the cases with a query, overall and on the cold slice."""

    hr: float
    ndcg: float
    cases: int
    cold_hr: float
    cold_ndcg: float
    cold_cases: int


def unit_rows(vectors: np.ndarray, *, centre: bool = True) -> np.ndarray:
    """Rows L2-normalised, centred on their mean, normalised again (as ``TextSpace``)."""
    out = np.asarray(vectors, np.float32).copy()
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    if centre:
        out -= out.mean(axis=0, keepdims=True)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def retrieval_cases(split: Split) -> list[RetrievalCase]:
    """The split's cases as rows of ``split.item_ids``, each seeing the stream before it.

    A case with no history item in the universe has an empty ``history`` (it scores 0:
    a text space cannot answer it, whichever the vectors).
    """
    row = {item: i for i, item in enumerate(split.item_ids)}
    history: dict[str, list[tuple[int, str]]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    cases = sorted(split.cases, key=lambda c: c.at_index)
    out: list[RetrievalCase] = []
    n = 0
    events = split.train_events
    for case in cases:
        while n < case.at_index:
            event = events[n]
            if event.item_id is not None and event.item_id in row:
                history[event.user_id].append((row[event.item_id], event.type))
                counts[event.item_id] += 1
            n += 1
        seen = history.get(case.user_id, [])
        taste: dict[int, float] = {}
        for age, (r, kind) in enumerate(reversed(seen[-TASTE_HISTORY:])):
            w = _ACTION.get(kind, 0.0) * 0.5 ** (age / TASTE_HALF_LIFE_ITEMS)
            if w > 0:
                taste[r] = taste.get(r, 0.0) + w
        masked = {r for r, _ in seen} | {row[i] for i in case.masked if i in row}
        relevant = sorted(row[i] for i in case.relevant if i in row)
        if not relevant:
            continue
        cold = tuple(r for r in relevant if counts.get(split.item_ids[r], 0) < COLD_ITEM)
        out.append(RetrievalCase(history=tuple(taste.items()), masked=tuple(sorted(masked)),
                                 relevant=tuple(relevant), cold=cold))
    return out


def training_sequences(split: Split) -> list[list[int]]:
    """Each user's items in stream order (rows of ``split.item_ids``), from the training
    stream without any case's target event: what a projection may learn from."""
    row = {item: i for i, item in enumerate(split.item_ids)}
    events = split.train_events
    targets = {c.at_index for c in split.cases
               if c.at_index < len(events) and events[c.at_index].user_id == c.user_id
               and events[c.at_index].item_id in c.relevant}
    seqs: dict[str, list[int]] = defaultdict(list)
    for n, event in enumerate(events):
        if n in targets or event.item_id is None or event.item_id not in row:
            continue
        seqs[event.user_id].append(row[event.item_id])
    return list(seqs.values())


def score_retrieval(unit: np.ndarray, cases: Sequence[RetrievalCase], *,
                    k: int = 10) -> RetrievalScores:
    """HR@k and NDCG@k of ranking every row by cosine with each case's taste vector.

    ``unit`` holds unit rows (see :func:`unit_rows`); cases without history count as misses.
    """
    hr = ndcg = cold_hr = cold_ndcg = 0.0
    n_cold = 0
    for block in range(0, len(cases), _BLOCK):
        chunk = cases[block:block + _BLOCK]
        for case, top_rows in zip(chunk, _top_rows(unit, chunk, k), strict=True):
            top = [str(r) for r in top_rows]
            relevant = {str(r) for r in case.relevant}
            hr += hit_rate_at_k(top, relevant, k)
            ndcg += ndcg_at_k(top, relevant, k)
            if case.cold:
                n_cold += 1
                cold = {str(r) for r in case.cold}
                cold_hr += hit_rate_at_k(top, cold, k)
                cold_ndcg += ndcg_at_k(top, cold, k)
    n = max(len(cases), 1)
    c = max(n_cold, 1)
    return RetrievalScores(hr=hr / n, ndcg=ndcg / n, cases=len(cases), cold_hr=cold_hr / c,
                           cold_ndcg=cold_ndcg / c, cold_cases=n_cold)


def _top_rows(unit: np.ndarray, cases: Sequence[RetrievalCase], k: int) -> list[list[int]]:
    """Each case's best ``k`` rows by cosine with its taste vector, masked rows excluded."""
    queries = np.zeros((len(cases), unit.shape[1]), np.float32)
    for i, case in enumerate(cases):
        for r, w in case.history:
            queries[i] += w * unit[r]
    norms = np.linalg.norm(queries, axis=1, keepdims=True)
    scores = (queries / np.maximum(norms, 1e-12)) @ unit.T
    k = min(k, unit.shape[0])
    out: list[list[int]] = []
    for i, case in enumerate(cases):
        if norms[i, 0] == 0:
            out.append([])
            continue
        row = scores[i]
        row[list(case.masked)] = -np.inf
        top = np.argpartition(-row, k - 1)[:k]
        top = top[np.argsort(-row[top], kind="stable")]
        out.append([int(r) for r in top if np.isfinite(row[r])])
    return out
