"""Type stub of the C kernel ``_mixture.c`` (read by :mod:`stream_rec.core.mixture`)."""

from collections.abc import Container

import numpy as np

def best_of(score: np.ndarray, rows: np.ndarray, ids: list[str], n: int,
            skip: Container[str]) -> list[tuple[str, float, int]]: ...
def mix_lists(lists: list[tuple[np.ndarray, np.ndarray]], scales: list[float],
              positive_only: bool, out_rows: np.ndarray, out_score: np.ndarray,
              out_hits: np.ndarray, out_best: np.ndarray) -> int: ...
