"""The worker's model side: the model pool, the embedded catalog, and its upkeep.

Catalog items arriving on the catalog topic are queued here and embedded in batches off
the event loop (cached in RocksDB by model checksum + text, so restarts and replays cost
nothing); each becomes recommendable by similarity the moment its vector is indexed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_rec.config import Settings
from stream_rec.core.events import CatalogItem
from stream_rec.core.text_space import TextSpace
from stream_rec.errors import ModelError
from stream_rec.model.files import resolve_model_path, sha256_file
from stream_rec.model.loading import pool_from_settings
from stream_rec.model.pool import ModelPool
from stream_rec.model.semantic import SemanticIndex, embed_catalog
from stream_rec.model.vectors import EmbeddingCache
from stream_rec.serving.metrics import WorkerMetrics

__all__ = ["ModelRuntime"]

log = logging.getLogger(__name__)

_EMBED_BATCH = 256


@dataclass
class ModelRuntime:
    """One worker's model pool, catalog vectors and the queue of items still to embed."""

    name: str
    sha256: str
    pool: ModelPool
    semantic: SemanticIndex
    cache: EmbeddingCache | None
    pending: dict[str, CatalogItem] = field(default_factory=dict)
    warm: bool = False  # the catalog present at start-up has been embedded
    vectors: dict[str, Any] = field(default_factory=dict)
    space: TextSpace | None = None
    text_neighbours: int = 50

    @classmethod
    def load(cls, settings: Settings) -> ModelRuntime:
        """Load the configured model (default: Gemma 3 270M) into a pool; raises ModelError."""

        path = resolve_model_path(settings.model_path)
        sha = sha256_file(path)
        pool = pool_from_settings(settings)
        first: Any = pool.models[0]
        dim = first.dim
        cache_dir = Path(settings.data_dir) / "embeddings"
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache = EmbeddingCache(cache_dir, model_key=first.model_key)
        log.info("model %s (sha256 %s…) loaded, %d-d vectors", path.name, sha[:12], dim)
        return cls(name=_short_name(path), sha256=sha, pool=pool, semantic=SemanticIndex(dim),
                   cache=cache, text_neighbours=settings.text_neighbours)

    def on_item(self, item: CatalogItem, changed: bool) -> None:
        """Catalog callback: queue new or re-titled items for embedding."""
        if changed:
            self.pending[item.item_id] = item

    async def embed_pending(self, metrics: WorkerMetrics, *, caught_up: bool) -> int:
        """Embed what is queued (in a thread); returns how many items were indexed."""
        if not self.pending:
            self.warm = self.warm or caught_up
            return 0
        batch = [self.pending.pop(item_id) for item_id in list(self.pending)[:_EMBED_BATCH]]
        metrics.model_queue.set(len(self.pending))
        try:
            vectors = await asyncio.to_thread(embed_catalog, self.pool, batch, self.cache)
        except ModelError as exc:
            log.warning("embedding %d catalog items failed (%s); retrying", len(batch), exc)
            for item in batch:
                self.pending.setdefault(item.item_id, item)
            return 0
        # the ranker's text space (neighbour lists) is rebuilt off the event loop; the new
        # vectors are indexed and the space swapped together, with no await in between, so
        # an item counted as embedded is also among the text neighbours
        space = await asyncio.to_thread(TextSpace.build, {**self.vectors, **vectors},
                                        neighbours=self.text_neighbours)
        self.semantic.add(vectors)
        self.vectors.update(vectors)
        self.space = space
        metrics.items_embedded.inc(len(vectors))
        metrics.model_calls.labels("embed", "ok").inc()
        metrics.model_batch.observe(len(batch))
        return len(vectors)

    def close(self) -> None:
        self.pool.close()
        if self.cache is not None:
            self.cache.close()


def _short_name(path: Path) -> str:
    return path.stem.lower()
