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

from stream_rec.events import CatalogItem
from stream_rec.profile import UserProfile
from stream_rec.prompts import sanitize_title
from stream_rec.vectors import EmbeddingCache, ItemVectors, TextEmbedder, embed_items

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

    def __init__(self, dim: int, *, half_life_items: float = 5.0, history: int = 10) -> None:
        self.vectors = ItemVectors(dim)
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
        rows = []
        weights = []
        anchors: list[str] = []
        for age, touch in enumerate(reversed(profile.recent[-self.history:])):
            vector = self.vectors.vector(touch.item_id)
            weight = _TYPE_WEIGHT.get(touch.type, 0.0) * 0.5 ** (age / self.half_life_items)
            if vector is None or weight <= 0:
                continue
            rows.append(vector)
            weights.append(weight)
            if touch.item_id not in anchors:
                anchors.append(touch.item_id)
        if not rows:
            return None
        matrix = np.asarray(rows, dtype=np.float32)
        w = np.asarray(weights, dtype=np.float32)
        return (w @ matrix) / w.sum(), anchors

    def search(self, profile: UserProfile, n: int,
               exclude: Iterable[str] = ()) -> list[tuple[str, float, str]]:
        """Up to ``n`` items nearest the user's taste: (item, cosine, closest recent item)."""
        query = self.user_vector(profile)
        if query is None:
            return []
        vector, anchors = query
        found = self.vectors.top_k(vector, n, exclude=set(exclude) | set(anchors))
        if not found:
            return []
        anchor_matrix = np.asarray([self.vectors.vector(a) for a in anchors], dtype=np.float32)
        found_matrix = np.asarray([self.vectors.vector(item) for item, _ in found],
                                  dtype=np.float32)
        mean = self.vectors.mean
        closest = np.argmax((found_matrix - mean) @ (anchor_matrix - mean).T, axis=1)
        return [(item, float(score), anchors[int(i)])
                for (item, score), i in zip(found, closest, strict=True)]
