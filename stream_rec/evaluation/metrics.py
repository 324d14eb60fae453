"""Offline top-k ranking metrics with binary relevance, and an averaging accumulator.

Every function takes a ranked list of item ids (best first), the set of relevant ids and a
cut-off ``k``. Only the first occurrence of an id in ``ranked`` counts, so a ranking with
duplicates cannot score more than one hit per relevant item.

>>> ndcg_at_k(["a", "b"], {"b"}, k=10)  # hit at rank 2: 1 / log2(3)
0.6309297535714575
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Sequence

__all__ = [
    "METRICS",
    "RankingAccumulator",
    "hit_rate_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]

_KEY_RE = re.compile(r"^(hr|recall|ndcg|mrr)@([1-9][0-9]*)$")


def _hit_ranks(ranked: Sequence[str], relevant: Collection[str], k: int) -> list[int]:
    """1-based ranks, within the top ``k``, at which a relevant item first appears."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not relevant:
        raise ValueError("relevant must hold at least one item id; drop cases without a "
                         "held-out item before scoring them")
    ranks: list[int] = []
    seen: set[str] = set()
    for rank, item_id in enumerate(ranked[:k], start=1):
        if item_id in seen:
            continue
        seen.add(item_id)
        if item_id in relevant:
            ranks.append(rank)
    return ranks


def hit_rate_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1.0 if any relevant item is in the top ``k``, else 0.0 (HR@k)."""
    return 1.0 if _hit_ranks(ranked, relevant, k) else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant items found in the top ``k``: hits / |relevant|."""
    return len(_hit_ranks(ranked, relevant, k)) / len(relevant)


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Binary-relevance NDCG@k; the ideal DCG puts min(|relevant|, k) hits at the top."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank in _hit_ranks(ranked, relevant, k))
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def mrr_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Reciprocal rank of the first relevant item in the top ``k``, 0.0 when there is none."""
    ranks = _hit_ranks(ranked, relevant, k)
    return 1.0 / ranks[0] if ranks else 0.0


METRICS: dict[str, Callable[[Sequence[str], Collection[str], int], float]] = {
    "hr": hit_rate_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
}


class RankingAccumulator:
    """Averages per-case metric values over many cases, keyed ``"<metric>@<k>"``.

    >>> acc = RankingAccumulator(["hr@10", "ndcg@10"])
    >>> acc.add(["a", "b"], {"a"})
    {'hr@10': 1.0, 'ndcg@10': 1.0}
    >>> acc.add(["a", "b"], {"z"})
    {'hr@10': 0.0, 'ndcg@10': 0.0}
    >>> acc.result()
    {'hr@10': 0.5, 'ndcg@10': 0.5}
    """

    __slots__ = ("_keys", "_parsed", "_sums", "count")

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(dict.fromkeys(keys))
        if not self._keys:
            raise ValueError("keys must name at least one metric, e.g. 'ndcg@10'")
        self._parsed: list[tuple[str, str, int]] = []
        for key in self._keys:
            match = _KEY_RE.match(key)
            if match is None:
                raise ValueError(f"metric key must look like '<metric>@<k>' with metric one "
                                 f"of {sorted(METRICS)}, e.g. 'recall@10'; got {key!r}")
            self._parsed.append((key, match.group(1), int(match.group(2))))
        self._sums = dict.fromkeys(self._keys, 0.0)
        self.count = 0

    @classmethod
    def for_ks(cls, ks: Iterable[int], metrics: Iterable[str] = ("hr", "recall", "ndcg", "mrr")
               ) -> RankingAccumulator:
        """Every metric in ``metrics`` at every cut-off in ``ks``."""
        ks = tuple(ks)
        return cls(f"{metric}@{k}" for metric in metrics for k in ks)

    @property
    def keys(self) -> tuple[str, ...]:
        return self._keys

    def add(self, ranked: Sequence[str], relevant: Collection[str]) -> dict[str, float]:
        """Score one case, add it to the running sums and return its own values."""
        values = {key: METRICS[metric](ranked, relevant, k) for key, metric, k in self._parsed}
        for key, value in values.items():
            self._sums[key] += value
        self.count += 1
        return values

    def result(self) -> dict[str, float]:
        """Mean of each metric over the cases added so far (0.0 for every key when none)."""
        if self.count == 0:
            return dict.fromkeys(self._keys, 0.0)
        return {key: self._sums[key] / self.count for key in self._keys}
