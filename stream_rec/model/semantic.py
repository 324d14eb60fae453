"""What the small language model knows about the catalog, as vectors the fast path can use.

Each catalog item's text is embedded once (cached by model checksum + text); a user's taste
vector is the recency- and action-weighted mean of the vectors of the items in their
recent history, computed when needed (no model call, nothing stored per user); the
``similar`` candidate source is the nearest items to it, each citing the recent item it
is closest to. The worker and the evaluator both use this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from stream_rec.core.events import CatalogItem
from stream_rec.core.profile import UserProfile
from stream_rec.model.prompts import sanitize_title
from stream_rec.model.vectors import EmbeddingCache, ItemVectors, TextEmbedder, embed_items

__all__ = ["SemanticIndex", "embed_catalog", "item_text"]

_TYPE_WEIGHT = {"view": 1.0, "rec_click": 1.5, "add_to_cart": 3.0, "purchase": 5.0}


def item_text(title: str, category: str) -> str:
    """What gets embedded for an item: its sanitised title, then its category."""
    text = sanitize_title(title)
    category = sanitize_title(category.replace("|", ", "))
    return f"{text}. {category}" if category else text


def embed_catalog(embedder: TextEmbedder, items: Sequence[CatalogItem],
                  cache: EmbeddingCache | None = None, *,
                  progress: bool = False) -> dict[str, np.ndarray]:
    """Vectors for ``items`` (from the cache where it has them), keyed by item id."""
    pairs = [(item.item_id, item_text(item.title, item.category)) for item in items]
    return embed_items(embedder, pairs, cache, progress=progress)


class SemanticIndex:
    """Item vectors plus the user-side query built from a profile's recent items."""

    def __init__(self, dim: int, *, half_life_items: float = 5.0, history: int = 10,
                 columns_budget_bytes: int = 0) -> None:
        self.vectors = ItemVectors(dim, columns_budget_bytes=columns_budget_bytes)
        self.half_life_items = half_life_items
        self.history = history

    def __len__(self) -> int:
        return len(self.vectors)

    def add(self, vectors: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]]) -> None:
        pairs = vectors.items() if isinstance(vectors, Mapping) else vectors
        self.vectors.update_many(pairs)

    def remove(self, item_id: str) -> None:
        self.vectors.remove(item_id)

    def user_vector(self, profile: UserProfile) -> tuple[np.ndarray, list[str]] | None:
        """The user's taste vector and the indexed recent items behind it (newest first)."""
        found = self.taste(profile)
        if found is None:
            return None
        weights, anchors = found
        total = sum(weights.values())
        vector = np.zeros(self.vectors.dim, np.float32)
        for item, w in weights.items():
            vector += (w / total) * self.vectors.vector(item)  # type: ignore[operator]
        return vector, anchors

    def taste(self, profile: UserProfile) -> tuple[dict[str, float], list[str]] | None:
        """The weight of each indexed recent item in the user's taste (by action and
        recency), and those items newest first; None when there are none."""
        weights: dict[str, float] = {}
        for age, touch in enumerate(reversed(profile.recent[-self.history:])):
            weight = _TYPE_WEIGHT.get(touch.type, 0.0) * 0.5 ** (age / self.half_life_items)
            if weight <= 0 or touch.item_id not in self.vectors:
                continue
            weights[touch.item_id] = weights.get(touch.item_id, 0.0) + weight
        if not weights:
            return None
        return weights, list(weights)

    def search(self, profile: UserProfile, n: int,
               exclude: Iterable[str] = ()) -> list[tuple[str, float, str]]:
        """Up to ``n`` items nearest the user's taste: (item, cosine, closest recent item)."""
        query = self.taste(profile)
        if query is None:
            return []
        weights, anchors = query
        found = self.vectors.top_k_mix(weights, n, exclude=set(exclude) | set(anchors))
        if not found:
            return []
        closest = self.vectors.closest([item for item, _ in found], anchors)
        return [(item, score, anchors[i]) for (item, score), i in zip(found, closest, strict=True)]
