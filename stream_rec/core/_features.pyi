"""Type stub of the C kernel ``_features.c`` (read by :mod:`stream_rec.core.features`)."""

from collections.abc import Container, Mapping, Sequence
from typing import Any

import numpy as np

from stream_rec.core.profile import Touch

# each source: a list of (item, score, ...) tuples, or a dict item -> (score, anchor)
def assemble(sources: tuple[Sequence[tuple[Any, ...]] | Mapping[str, tuple[float, str]], ...],
             weights: tuple[float, ...], rank_columns: tuple[int, ...], x: np.ndarray,
             parts: np.ndarray, scores: np.ndarray) -> tuple[list[str], dict[str, int]]: ...
def user_columns(x: np.ndarray, pos: dict[str, int],
                 purchased: tuple[tuple[str, int, int], ...], recent: tuple[Touch, ...],
                 now_ms: float, columns: tuple[int, int, int, int]) -> None: ...
def category_column(x: np.ndarray, column: int, items: list[str], categories: dict[str, str],
                    affinity: dict[str, float], total: float) -> None: ...
def category_trending(top: list[tuple[str, float]], categories: dict[str, str],
                      favourites: dict[str, float], total: float, exclude: Container[str],
                      n: int) -> dict[str, tuple[float, str]]: ...
