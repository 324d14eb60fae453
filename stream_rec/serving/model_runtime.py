"""The model side of a process: the model pool, the embedded catalog, and its upkeep.

:class:`ModelRuntime` (the embedder process, or a serving worker that reranks): catalog
items arriving on the catalog topic are queued and embedded in batches off the event loop
(cached in RocksDB by model checksum + text, so restarts and replays cost nothing).
:class:`FoldedVectors` (a serving worker without the model): the vectors the embedder
published, folded from the item-vectors topic. Either way an item becomes recommendable by
similarity the moment its vector is indexed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream_rec.config import Settings
from stream_rec.core.events import CatalogItem
from stream_rec.core.profile import UserProfile
from stream_rec.core.text_space import TextSpace
from stream_rec.errors import InvalidEvent, ModelError
from stream_rec.model.files import resolve_model_path, sha256_file
from stream_rec.model.loading import pool_from_settings
from stream_rec.model.pool import ModelPool
from stream_rec.model.published import parse_vector_record
from stream_rec.model.semantic import SemanticIndex, embed_catalog
from stream_rec.model.vectors import EmbeddingCache
from stream_rec.serving.metrics import WorkerMetrics

__all__ = ["FoldedVectors", "ModelRuntime"]

log = logging.getLogger(__name__)

_EMBED_BATCH = 256
# cached similarity columns of a serving worker's index (ItemVectors.column): with the
# whole Online Retail catalog's columns cached (3,150 x 3,150 x 4 B = 40 MB) a taste query
# is a few vector additions; with 512 (the default) most queries of 5,000 users missed
# and paid a pass over the whole index
_COLUMNS_BUDGET_BYTES = 48 * 2**20


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
    text_neighbours: int = 50  # 0: no text space (the embedder process)
    unindexed: dict[str, np.ndarray] = field(default_factory=dict)  # embedded, queue not drained

    @classmethod
    def load(cls, settings: Settings, *, text_space: bool = True,
             scoring: bool = True) -> ModelRuntime:
        """Load the configured model (default: Gemma 3 270M) into a pool; raises ModelError.

        ``text_space``: also keep the ranker's text neighbours (a serving worker does; the
        embedder process, which only publishes vectors, does not). ``scoring``: the pool
        also scores candidates (a worker that reranks); without it each instance holds only
        its embedding context."""

        path = resolve_model_path(settings.model_path)
        sha = sha256_file(path)
        pool = pool_from_settings(settings, scoring=scoring)
        first: Any = pool.models[0]
        dim = first.dim
        cache_dir = Path(settings.data_dir) / "embeddings"
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache = EmbeddingCache(cache_dir, model_key=first.model_key)
        log.info("model %s (sha256 %s…) loaded, %d-d vectors", path.name, sha[:12], dim)
        return cls(name=_short_name(path), sha256=sha, pool=pool,
                   semantic=SemanticIndex(dim, columns_budget_bytes=_COLUMNS_BUDGET_BYTES),
                   cache=cache, text_neighbours=settings.text_neighbours if text_space else 0)

    def on_item(self, item: CatalogItem, changed: bool) -> None:
        """Catalog callback: queue new or re-titled items for embedding."""
        if changed:
            self.pending[item.item_id] = item

    async def embed_pending(self, metrics: WorkerMetrics, *,
                            caught_up: bool) -> dict[str, np.ndarray]:
        """Embed what is queued (in a thread) and index it; returns the new vectors."""
        if not self.pending:
            self.warm = self.warm or caught_up
            return {}
        batch = [self.pending.pop(item_id) for item_id in list(self.pending)[:_EMBED_BATCH]]
        metrics.model_queue.set(len(self.pending))
        try:
            vectors = await asyncio.to_thread(embed_catalog, self.pool, batch, self.cache)
        except ModelError as exc:
            log.warning("embedding %d catalog items failed (%s); retrying", len(batch), exc)
            for item in batch:
                self.pending.setdefault(item.item_id, item)
            return {}
        metrics.model_calls.labels("embed", "ok").inc()
        metrics.model_batch.observe(len(batch))
        if self.text_neighbours and self.pending:
            # more is queued (a start-up catalog): index with the text space once the
            # queue is drained, not after every batch (each build is quadratic in items)
            self.unindexed.update(vectors)
            return vectors
        fresh, self.unindexed = {**self.unindexed, **vectors}, {}
        space = await _text_space({**self.vectors, **fresh}, self.text_neighbours)
        # indexed and swapped together, with no await in between: an item counted as
        # embedded is also among the ranker's text neighbours
        self.semantic.add(fresh)
        if self.text_neighbours:
            self.vectors.update(fresh)
            self.space = space
        metrics.items_embedded.inc(len(fresh))
        return vectors

    def close(self) -> None:
        self.pool.close()
        if self.cache is not None:
            self.cache.close()


class FoldedVectors:
    """Catalog vectors published by the embedder process, folded from the item-vectors
    topic into the ranker's text space and, when ``search_index`` (the fixed blend's
    ``similar`` source searches it; the learned ranker reads only the text space), into a
    :class:`SemanticIndex` (made at the first vector, which fixes the size).

    :meth:`fold` only stages a record; :meth:`index_staged` (a worker task) rebuilds the
    text space off the event loop, then indexes the staged vectors and swaps the space
    together, so an item counted as embedded is also among the text neighbours.
    """

    def __init__(self, metrics: WorkerMetrics, text_neighbours: int = 50, *,
                 search_index: bool = True) -> None:
        self.metrics = metrics
        self.text_neighbours = text_neighbours
        self.search_index = search_index
        self.semantic: SemanticIndex | None = None
        self.space: TextSpace | None = None
        self.vectors: dict[str, np.ndarray] = {}
        self.staged: dict[str, np.ndarray] = {}
        self.name: str | None = None  # the model that made the vectors
        self.bad_records = 0
        self._indexing = False
        self._warm = False

    def __len__(self) -> int:
        return len(self.vectors)

    def warm(self, *, caught_up: bool) -> bool:
        """Whether the vectors present at start-up are indexed (and in the text space): true
        from the first time the replicated state is caught up with nothing staged or being
        indexed, and from then on (a later catalog item does not make a worker unready)."""
        if not self._warm and caught_up and not self.staged and not self._indexing:
            self._warm = True
        return self._warm

    def fold(self, value: bytes) -> None:
        """One item-vectors record (replicated-state callback): staged for indexing."""
        try:
            published = parse_vector_record(value)
        except InvalidEvent as exc:
            self.bad_records += 1
            log.warning("skipping invalid item-vectors record: %s", exc)
            return
        self.staged[published.item_id] = published.vector
        self.name = published.model

    async def index_staged(self) -> int:
        """Index what was folded since the last call; returns how many vectors."""
        if not self.staged:
            return 0
        staged, self.staged = self.staged, {}
        self._indexing = True
        try:
            return await self._index(staged)
        finally:
            self._indexing = False

    async def _index(self, staged: dict[str, np.ndarray]) -> int:
        dim = int(next(iter(staged.values())).shape[0])
        held = int(next(iter(self.vectors.values())).shape[0]) if self.vectors else dim
        if held != dim:
            log.warning("item vectors changed size (%d → %d): index rebuilt", held, dim)
            self.semantic, self.vectors = None, {}
        merged = {**self.vectors, **staged}
        space = await _text_space(merged, self.text_neighbours)
        if self.search_index:
            if self.semantic is None:
                self.semantic = SemanticIndex(dim, columns_budget_bytes=_COLUMNS_BUDGET_BYTES)
            self.semantic.add(list(staged.items()))
        self.vectors = merged
        self.space = space
        self.metrics.items_embedded.inc(len(staged))
        return len(staged)

    def search(self, profile: UserProfile, n: int,
               exclude: Iterable[str] = ()) -> list[tuple[str, float, str]]:
        """:meth:`SemanticIndex.search`, or nothing before the first vector (or without
        ``search_index``)."""
        if self.semantic is None:
            return []
        return self.semantic.search(profile, n, exclude)


async def _text_space(vectors: dict[str, np.ndarray], neighbours: int) -> TextSpace | None:
    """The ranker's text space over ``vectors``, built in a thread (None when not kept)."""
    if not neighbours or not vectors:
        return None
    return await asyncio.to_thread(TextSpace.build, vectors, neighbours=neighbours)


def _short_name(path: Path) -> str:
    return path.stem.lower()
