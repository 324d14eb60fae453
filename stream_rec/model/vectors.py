"""Item vectors: a persistent embedding cache (RocksDB) and an in-memory cosine index.

Embeddings of a small LM are anisotropic (two unrelated titles have cosine ~0.8 with the
default embedding), so :class:`ItemVectors` ranks by cosine *after subtracting the running
mean vector* of the indexed items.

>>> index = ItemVectors(dim=2)
>>> for item, vec in {"a": [1, 0], "b": [0.9, 0.1], "c": [0, 1]}.items():
...     index.upsert(item, np.array(vec, dtype=np.float32))
>>> [item for item, _ in index.top_k(np.array([1, 0], dtype=np.float32), k=2, exclude={"a"})]
['b', 'c']
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, cast

import numpy as np
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch
from tqdm import tqdm

from stream_rec.errors import ModelError

__all__ = ["EmbeddingCache", "ItemVectors", "TextEmbedder", "embed_items"]


class TextEmbedder(Protocol):
    """Anything that embeds texts synchronously (``SlmModel`` and ``ModelPool`` do)."""

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray: ...


class EmbeddingCache:
    """Text → vector cache in a RocksDB directory, namespaced by model.

    Key: the model key (first 16 hex digits of the model file's sha256), the storage type
    and sha1 of the text; value: the vector's raw bytes (float32 by default, 2.6 kB for 640
    dimensions: a cached vector is the model's exactly, so an embedder that restarts or meets
    a duplicate title publishes what a fresh run and ``stream-rec eval`` compute; float16
    halves the size and rounds). RocksDB options are set explicitly (8 MiB block cache,
    2 x 4 MiB write buffers) because the defaults reserve gigabytes.
    """

    def __init__(
        self,
        directory: Path,
        *,
        model_key: str,
        dtype: type[np.floating] = np.float32,
        block_cache_mb: int = 8,
        write_buffer_mb: int = 4,
    ) -> None:

        if len(model_key) < 8:
            raise ModelError(f"model_key must be a hex digest prefix, got {model_key!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._dtype = np.dtype(dtype)
        self._prefix = model_key[:16].encode("ascii") + self._dtype.str.encode("ascii")
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(block_cache_mb << 20))
        opts.set_block_based_table_factory(table)
        opts.set_write_buffer_size(write_buffer_mb << 20)
        opts.set_max_write_buffer_number(2)
        opts.set_max_open_files(64)
        self._db = Rdict(str(self.directory), options=opts)
        self.hits = 0
        self.misses = 0

    def key(self, text: str) -> bytes:
        """The RocksDB key of ``text`` for this model."""
        return self._prefix + hashlib.sha1(text.encode("utf-8")).digest()

    def get_many(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Cached float32 vectors in input order; None where a text is not cached."""
        if not texts:
            return []
        raw = cast(list[bytes | None], self._db[[self.key(t) for t in texts]])
        out: list[np.ndarray | None] = []
        for value in raw:
            if value is None:
                out.append(None)
            else:
                out.append(np.frombuffer(value, dtype=self._dtype).astype(np.float32))
        found = sum(v is not None for v in out)
        self.hits += found
        self.misses += len(out) - found
        return out

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store one vector per text (one write batch)."""

        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        batch = WriteBatch(raw_mode=True)
        for text, vec in zip(texts, np.asarray(vectors), strict=True):
            batch.put(self.key(text), np.ascontiguousarray(vec, dtype=self._dtype).tobytes())
        self._db.write(batch)

    def close(self) -> None:
        """Flush and close the database."""
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def embed_items(
    embedder: TextEmbedder,
    items: Sequence[tuple[str, str]],
    cache: EmbeddingCache | None = None,
    *,
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Vectors for ``(item_id, text)`` pairs; only texts missing from ``cache`` hit the model.

    Texts are de-duplicated before embedding; a tqdm bar shows model progress.
    """
    texts = [text for _, text in items]
    vectors: dict[str, np.ndarray] = {}
    if cache is not None:
        for text, vec in zip(texts, cache.get_many(texts), strict=True):
            if vec is not None:
                vectors[text] = vec
    missing = list(dict.fromkeys(t for t in texts if t not in vectors))
    if missing:

        with tqdm(total=len(missing), unit="title", disable=not progress, desc="embedding") as bar:
            for start in range(0, len(missing), batch_size):
                chunk = missing[start : start + batch_size]
                embedded = np.asarray(embedder.embed_sync(chunk), dtype=np.float32)
                if cache is not None:
                    cache.put_many(chunk, embedded)
                vectors.update(zip(chunk, embedded, strict=True))
                bar.update(len(chunk))
    return {item_id: vectors[text] for item_id, text in items}


class ItemVectors:
    """In-memory item vectors with centred-cosine top-k (numpy, vectorised).

    Vectors are stored L2-normalised; the running mean of all stored vectors is
    subtracted from both sides before the cosine (``centre=False`` turns that off).
    The centred matrix and its inverse row norms are derived once per change of the index
    (catalog updates are rare, queries are per event). A query that is a weighted mix of
    indexed items (a user's taste: :meth:`top_k_mix`) reuses each item's column of
    centred dot products (kept for the ``columns`` most recently used items), so it costs
    a few vector additions instead of a matrix-vector product over the whole index.
    """

    def __init__(self, dim: int, *, centre: bool = True, capacity: int = 1024,
                 columns: int = 512, columns_budget_bytes: int = 0) -> None:
        self.dim = dim
        self.centre = centre
        self._matrix = np.zeros((max(capacity, 1), dim), dtype=np.float32)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._sum = np.zeros(dim, dtype=np.float64)
        # derived from the above, rebuilt lazily after any change (None = stale)
        self._centred: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._columns: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max_columns = columns
        # more columns while they fit this budget (a column is 4 bytes per indexed item)
        self._columns_budget = columns_budget_bytes

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def ids(self) -> list[str]:
        """Indexed ids, in storage order."""
        return list(self._ids)

    @property
    def mean(self) -> np.ndarray:
        """The running mean of the stored (normalised) vectors."""
        n = len(self._ids)
        return (self._sum / n).astype(np.float32) if n else np.zeros(self.dim, np.float32)

    def upsert(self, item_id: str, vector: np.ndarray) -> None:
        """Add or replace an item's vector."""
        vec = self._normalised(vector)
        row = self._rows.get(item_id)
        if row is None:
            row = len(self._ids)
            if row == self._matrix.shape[0]:
                grown = np.zeros((2 * row, self.dim), dtype=np.float32)
                grown[:row] = self._matrix
                self._matrix = grown
            self._ids.append(item_id)
            self._rows[item_id] = row
        else:
            self._sum -= self._matrix[row]
        self._matrix[row] = vec
        self._sum += vec
        self._centred = None
        self._columns.clear()

    def update_many(self, vectors: Iterable[tuple[str, np.ndarray]]) -> None:
        """:meth:`upsert` for each pair."""
        for item_id, vec in vectors:
            self.upsert(item_id, vec)

    def remove(self, item_id: str) -> bool:
        """Drop an item; False if it was not indexed."""
        row = self._rows.pop(item_id, None)
        if row is None:
            return False
        self._centred = None
        self._columns.clear()
        self._sum -= self._matrix[row]
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._matrix[row] = self._matrix[last]
            self._ids[row] = moved
            self._rows[moved] = row
        self._ids.pop()
        if not self._ids:
            self._sum[:] = 0.0
        return True

    def vector(self, item_id: str) -> np.ndarray | None:
        """The stored (normalised, uncentred) vector of an item."""
        row = self._rows.get(item_id)
        return None if row is None else self._matrix[row].copy()

    def query_for(self, item_ids: Iterable[str]) -> np.ndarray | None:
        """Mean vector of the indexed ones among ``item_ids`` (a user query), or None."""
        rows = [self._rows[i] for i in item_ids if i in self._rows]
        return self._matrix[rows].mean(axis=0) if rows else None

    def top_k(
        self, query: np.ndarray, k: int, *, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``k`` items most similar to ``query`` by centred cosine, best first."""
        n = len(self._ids)
        if n == 0 or k <= 0:
            return []
        q = self._normalised(query).astype(np.float32)
        centred, inv_norms, mu = self._derived()
        if self.centre:
            qc = q - mu
            scores = (centred @ qc) * inv_norms
            scores *= 1.0 / max(float(np.linalg.norm(qc)), 1e-6)
        else:
            scores = centred @ q
        return self._best(scores, k, exclude)

    def top_k_mix(self, weights: Mapping[str, float], k: int, *,
                  exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """:meth:`top_k` of the query ``sum(w * vector(item)) / sum(w)`` over indexed items.

        Same scores as ``top_k(query)`` up to float rounding: with ``D`` the centred rows,
        ``D @ normalise(query) = sum(w * D @ vector(item)) / (sum(w) * |query|)``, and each
        ``D @ vector(item)`` is a cached column.
        """
        mix = {item: w for item, w in weights.items() if item in self._rows and w > 0}
        if not mix or k <= 0:
            return []
        _, inv_norms, mu = self._derived()
        total = sum(mix.values())
        query = np.zeros(self.dim, np.float32)
        for item, w in mix.items():
            query += (w / total) * self._matrix[self._rows[item]]
        norm = _norm(query)
        if norm <= 0:
            return []
        qc = query / norm - mu
        missing = [item for item in mix if "#" + item not in self._columns]
        if len(missing) > 1:  # cold columns: one pass over the index beats filling them all
            centred, _, _ = self._derived()
            scores = np.einsum("ij,j->i", centred, qc)  # no BLAS: see _norm
            self.column(max(missing, key=mix.__getitem__))  # warm one column per query
        else:
            scores = np.zeros(len(self._ids), np.float32)
            for item, w in mix.items():
                scores += (w / total / norm) * self.column(item)
            scores -= self.column(None)  # D @ mu (zero when not centring)
        scores *= inv_norms
        scores *= 1.0 / max(_norm(qc), 1e-6)
        return self._best(scores, k, exclude)

    def column(self, item_id: str | None) -> np.ndarray:
        """``D @ vector(item_id)`` (``D @ mean`` for None): the centred rows' dot products
        with an indexed item, cached for the most recently used items."""
        key = "" if item_id is None else "#" + item_id
        cached = self._columns.get(key)
        if cached is not None:
            self._columns.move_to_end(key)
            return cached
        centred, _, mu = self._derived()
        vector = mu if item_id is None else self._matrix[self._rows[item_id]]
        found: np.ndarray = np.einsum("ij,j->i", centred, vector)  # no BLAS: see _norm
        self._columns[key] = found
        limit = max(self._max_columns, self._columns_budget // (4 * max(1, len(self._ids))))
        while len(self._columns) > limit:
            self._columns.popitem(last=False)
        return found

    def closest(self, item_ids: Sequence[str], anchors: Sequence[str]) -> list[int]:
        """For each item, the position in ``anchors`` of the anchor with the largest centred
        dot product ``(vector(item) - mean) . (vector(anchor) - mean)`` (first on ties)."""
        rows = np.fromiter((self._rows[i] for i in item_ids), dtype=np.intp,
                           count=len(item_ids))
        if all("#" + a in self._columns for a in anchors):
            dots = np.stack([self.column(a)[rows] for a in anchors], axis=1)
            dots -= self.column(None)[rows][:, None]
        else:
            centred, _, _ = self._derived()
            dots = np.einsum("ij,kj->ik", centred[rows], centred[[self._rows[a] for a in anchors]])
        return [int(i) for i in np.argmax(dots, axis=1)]

    def _best(self, scores: np.ndarray, k: int, exclude: Iterable[str]
              ) -> list[tuple[str, float]]:
        for item_id in exclude:
            row = self._rows.get(item_id)
            if row is not None:
                scores[row] = -np.inf
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        top = top[np.isfinite(scores[top])]
        ids = self._ids
        return [(ids[r], s) for r, s in zip(top.tolist(), scores[top].tolist(), strict=True)]

    def _derived(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centred rows, their inverse norms, the mean), rebuilt after any change."""
        if self._centred is None:
            n = len(self._ids)
            matrix = self._matrix[:n]
            if self.centre:
                mu = self.mean
                centred = matrix - mu
                norms = np.sqrt(np.einsum("ij,ij->i", centred, centred))
                inv_norms = (1.0 / np.maximum(norms, 1e-6)).astype(np.float32)
            else:
                mu = np.zeros(self.dim, np.float32)
                centred = matrix.copy()
                inv_norms = np.ones(n, np.float32)
            self._centred = (centred, inv_norms, mu)
        return self._centred

    def _normalised(self, vector: np.ndarray) -> np.ndarray:
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.dim:
            raise ValueError(f"vector has {vec.shape[0]} dimensions, the index has {self.dim}")
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec


def _norm(vector: np.ndarray) -> float:
    """Euclidean norm without BLAS.

    The per-event path stays off BLAS on purpose: after each call OpenBLAS keeps its
    helper threads spinning for a while, so a call every few milliseconds burnt a second
    core in the worker (measured: CPU time 2x wall time on 2 cores).
    """
    return math.sqrt(float(np.einsum("i,i->", vector, vector)))
