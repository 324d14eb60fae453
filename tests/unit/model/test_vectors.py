"""Embedding cache (real RocksDB under tmp_path) and the in-memory centred-cosine index."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from stream_rec.model.vectors import EmbeddingCache, ItemVectors, embed_items

DIM = 8


class CountingEmbedder:
    """A fake embedder: a deterministic vector per text, and a count of model calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.texts: list[str] = []

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts.extend(texts)
        out = np.stack([_vec(t) for t in texts]) if texts else np.zeros((0, DIM))
        return out.astype(np.float32)


def _vec(text: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    v = rng.normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


ITEMS = [
    ("1", "WHITE HANGING HEART T-LIGHT HOLDER"),
    ("2", "JUMBO BAG RED RETROSPOT"),
    ("3", "SET OF 3 CAKE TINS PANTRY DESIGN"),
    ("4", "WHITE HANGING HEART T-LIGHT HOLDER"),
]


def test_second_embedding_of_the_same_texts_calls_the_model_zero_times(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    with EmbeddingCache(tmp_path / "emb", model_key="a" * 16) as cache:
        first = embed_items(embedder, ITEMS, cache, progress=False)
        calls = embedder.calls
        second = embed_items(embedder, ITEMS, cache, progress=False)
    assert calls == 1 and embedder.calls == 1
    assert len(embedder.texts) == 3  # the duplicate title was embedded once
    for item_id, vec in first.items():
        np.testing.assert_array_equal(second[item_id], vec)  # float32: the model's exactly


def test_cache_survives_reopening_the_directory(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    with EmbeddingCache(tmp_path / "emb", model_key="b" * 16) as cache:
        embed_items(embedder, ITEMS, cache, progress=False)
    with EmbeddingCache(tmp_path / "emb", model_key="b" * 16) as cache:
        embed_items(embedder, ITEMS, cache, progress=False)
        assert cache.hits == len(ITEMS)
    assert embedder.calls == 1


def test_cache_keys_are_namespaced_by_model(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    with EmbeddingCache(tmp_path / "emb", model_key="c" * 16) as cache:
        embed_items(embedder, ITEMS[:1], cache, progress=False)
    with EmbeddingCache(tmp_path / "emb", model_key="d" * 16) as cache:
        assert cache.get_many([ITEMS[0][1]]) == [None]


def test_a_float16_cache_rounds_and_never_reads_float32_entries(tmp_path: Path) -> None:
    vec = _vec("x")[None, :]
    with EmbeddingCache(tmp_path / "emb", model_key="e" * 16) as cache:
        cache.put_many(["x"], vec)
    with EmbeddingCache(tmp_path / "emb", model_key="e" * 16, dtype=np.float16) as cache:
        assert cache.get_many(["x"]) == [None]  # another storage type: another key
        cache.put_many(["x"], vec)
        [half] = cache.get_many(["x"])
    assert half is not None
    np.testing.assert_allclose(half, vec[0], atol=1e-3)


def test_cache_stores_float32_exactly(tmp_path: Path) -> None:
    vec = _vec("x")[None, :]
    with EmbeddingCache(tmp_path / "emb", model_key="e" * 16) as cache:
        cache.put_many(["x"], vec)
        got = cache.get_many(["x", "y"])
    assert got[1] is None
    np.testing.assert_array_equal(got[0], vec[0])


def test_only_missing_texts_are_embedded(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    with EmbeddingCache(tmp_path / "emb", model_key="f" * 16) as cache:
        embed_items(embedder, ITEMS[:2], cache, progress=False)
        embedder.texts.clear()
        embed_items(embedder, ITEMS, cache, progress=False)
    assert embedder.texts == [ITEMS[2][1]]


def _index(vectors: dict[str, list[float]]) -> ItemVectors:
    index = ItemVectors(dim=len(next(iter(vectors.values()))), capacity=1)
    for item_id, vec in vectors.items():
        index.upsert(item_id, np.array(vec, dtype=np.float32))
    return index


def test_top_k_ranks_by_cosine_and_honours_exclude() -> None:
    index = _index({"a": [1, 0, 0], "b": [0.9, 0.1, 0], "c": [0, 1, 0], "d": [0, 0, 1]})
    ranked = index.top_k(np.array([1, 0, 0], dtype=np.float32), k=2, exclude={"a"})
    assert [i for i, _ in ranked] == ["b", ranked[1][0]]
    assert "a" not in {i for i, _ in ranked}


def test_centring_removes_a_shared_offset() -> None:
    # every vector shares a big common component (anisotropy): raw cosine is ~1 for all,
    # after centring the direction that differs decides
    common = np.array([10.0, 0, 0, 0])
    raw = {"x1": [0, 1, 0, 0], "x2": [0, 0.9, 0.1, 0], "y": [0, 0, 0, 1], "z": [0, 0, 1, 0]}
    vectors = {k: (common + np.array(v)).tolist() for k, v in raw.items()}
    centred = _index(vectors).top_k(np.array(vectors["x1"]), k=2, exclude={"x1"})
    assert centred[0][0] == "x2"
    assert centred[0][1] > 0.5 > centred[1][1]


def test_upsert_replaces_and_remove_drops_an_item() -> None:
    index = _index({"a": [1, 0], "b": [0, 1], "c": [1, 1]})
    index.upsert("a", np.array([0, 1], dtype=np.float32))
    assert len(index) == 3
    np.testing.assert_allclose(index.vector("a"), [0, 1])
    assert index.remove("a") and not index.remove("a")
    assert "a" not in index and sorted(index.ids()) == ["b", "c"]
    np.testing.assert_allclose(
        index.mean, (np.array([0, 1]) + np.array([1, 1]) / np.sqrt(2)) / 2, atol=1e-6
    )
    assert {i for i, _ in index.top_k(np.array([1, 0], dtype=np.float32), k=5)} == {"b", "c"}


def test_running_mean_matches_a_recomputation_after_many_updates() -> None:
    rng = np.random.default_rng(0)
    index = ItemVectors(dim=16, capacity=2)
    for step in range(500):
        item = str(rng.integers(0, 60))
        if step % 7 == 0:
            index.remove(item)
        else:
            index.upsert(item, rng.normal(size=16).astype(np.float32))
    stacked = np.stack([index.vector(i) for i in index.ids()])
    np.testing.assert_allclose(index.mean, stacked.mean(axis=0), atol=1e-5)


def test_top_k_agrees_with_a_brute_force_centred_cosine() -> None:
    rng = np.random.default_rng(1)
    index = ItemVectors(dim=12)
    data = {str(i): rng.normal(size=12).astype(np.float32) + 3.0 for i in range(200)}
    index.update_many(data.items())
    query = rng.normal(size=12).astype(np.float32) + 3.0
    unit = {k: v / np.linalg.norm(v) for k, v in data.items()}
    mu = np.mean(list(unit.values()), axis=0)
    q = query / np.linalg.norm(query) - mu
    brute = {
        k: float((v - mu) @ q / np.linalg.norm(v - mu) / np.linalg.norm(q)) for k, v in unit.items()
    }
    expected = sorted(brute, key=lambda k: -brute[k])[:10]
    got = index.top_k(query, k=10)
    assert [i for i, _ in got] == expected
    assert got[0][1] == pytest.approx(brute[expected[0]], abs=1e-4)


def test_wrong_dimension_is_rejected_with_both_sizes() -> None:
    index = ItemVectors(dim=4)
    with pytest.raises(ValueError, match="3 dimensions, the index has 4"):
        index.upsert("a", np.zeros(3, dtype=np.float32))
    assert index.top_k(np.zeros(4, dtype=np.float32), k=3) == []


def test_top_k_after_updates_and_removals_agrees_with_a_fresh_index() -> None:
    # the centred matrix is derived lazily: every change must invalidate it
    rng = np.random.default_rng(2)
    index = ItemVectors(dim=8, capacity=2)
    data = {str(i): rng.normal(size=8).astype(np.float32) + 2.0 for i in range(40)}
    index.update_many(data.items())
    query = rng.normal(size=8).astype(np.float32) + 2.0
    index.top_k(query, k=5)  # builds the derived matrix
    index.upsert("3", -data["3"])
    index.remove("7")
    index.upsert("new", rng.normal(size=8).astype(np.float32))
    fresh = ItemVectors(dim=8)
    fresh.update_many((i, index.vector(i)) for i in index.ids())
    got, want = index.top_k(query, k=10), fresh.top_k(query, k=10)
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


def test_top_k_mix_agrees_with_top_k_of_the_mixed_query() -> None:
    rng = np.random.default_rng(3)
    for centre in (True, False):
        index = ItemVectors(dim=16, centre=centre, columns=4)  # columns get evicted
        data = {str(i): rng.normal(size=16).astype(np.float32) + 1.5 for i in range(120)}
        index.update_many(data.items())
        for _ in range(5):
            picked = [str(i) for i in rng.choice(120, size=6, replace=False)]
            draws = rng.uniform(0.1, 5, 6)
            weights = {item: float(w) for item, w in zip(picked, draws, strict=True)}
            query = sum(w * index.vector(i) for i, w in weights.items()) / sum(weights.values())
            want = index.top_k(query, k=15, exclude=set(picked[:2]))
            got = index.top_k_mix(weights, 15, exclude=set(picked[:2]))
            assert [i for i, _ in got] == [i for i, _ in want]
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


def test_semantic_search_matches_brute_force_taste_and_closest_anchor() -> None:
    from stream_rec.core.profile import Touch, UserProfile
    from stream_rec.model.semantic import SemanticIndex

    rng = np.random.default_rng(4)
    semantic = SemanticIndex(dim=16)
    semantic.add({str(i): rng.normal(size=16).astype(np.float32) + 1.0 for i in range(150)})
    recent = tuple(Touch(str(rng.integers(0, 150)), kind, 1_000 + n)
                   for n, kind in enumerate(["view", "purchase", "add_to_cart"] * 4))
    profile = UserProfile("u", recent=recent)
    vector, anchors = semantic.user_vector(profile)  # type: ignore[misc]
    index = semantic.vectors
    expected = index.top_k(vector, 20, exclude=set(anchors))
    mu = index.mean
    got = semantic.search(profile, 20)
    assert [i for i, _, _ in got] == [i for i, _ in expected]
    for item, score, anchor in got:
        dots = [float((index.vector(item) - mu) @ (index.vector(a) - mu)) for a in anchors]
        assert anchor == anchors[int(np.argmax(dots))]
        assert score == pytest.approx(dict(expected)[item], abs=1e-5)
