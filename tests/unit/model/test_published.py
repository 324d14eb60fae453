"""Item-vectors records: what the embedder publishes and serving workers fold."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from stream_rec.core.profile import UserProfile
from stream_rec.errors import InvalidEvent
from stream_rec.model.published import parse_vector_record, vector_record
from stream_rec.model.semantic import SemanticIndex
from stream_rec.serving.metrics import WorkerMetrics
from stream_rec.serving.model_runtime import FoldedVectors


def test_a_vector_record_round_trips_bit_for_bit() -> None:
    vector = np.random.default_rng(1).standard_normal(640).astype(np.float32)
    key, value = vector_record("i1", "gemma", vector)
    published = parse_vector_record(value)
    assert key == b"i1" and published.item_id == "i1" and published.model == "gemma"
    assert np.array_equal(published.vector, vector)


@pytest.mark.parametrize("value", [b"", b"{}", b'{"item_id":"i","model":"m","dim":2,"f32":"AA=="}',
                                   b'{"item_id":"","model":"m","dim":1,"f32":"AAAAAA=="}'])
def test_a_broken_vector_record_is_invalid(value: bytes) -> None:
    with pytest.raises(InvalidEvent):
        parse_vector_record(value)


def test_folded_vectors_once_indexed_answer_like_the_index_the_model_side_builds() -> None:
    rng = np.random.default_rng(2)
    vectors = {f"i{n}": rng.standard_normal(16).astype(np.float32) for n in range(30)}
    direct = SemanticIndex(16)
    direct.add(vectors)
    folded = FoldedVectors(WorkerMetrics())
    assert folded.search(UserProfile.new("u"), 5) == []
    for item_id, vector in vectors.items():
        folded.fold(vector_record(item_id, "m", vector)[1])
    folded.fold(b"garbage")
    assert len(folded) == 0  # staged: indexed together with the text space, by the task
    assert asyncio.run(folded.index_staged()) == 30
    assert folded.space is not None and len(folded.vectors) == 30

    profile = UserProfile.new("u")
    profile = profile.__class__.from_dict({**profile.to_dict(),
                                           "recent": [["i3", "view", 1], ["i7", "purchase", 2]]})
    assert len(folded) == 30 and folded.name == "m" and folded.bad_records == 1
    assert folded.search(profile, 5) == direct.search(profile, 5)


def test_without_a_search_index_only_the_text_space_holds_the_folded_vectors() -> None:
    rng = np.random.default_rng(3)
    vectors = {f"i{n}": rng.standard_normal(16).astype(np.float32) for n in range(30)}
    with_index, without = FoldedVectors(WorkerMetrics()), FoldedVectors(WorkerMetrics(),
                                                                        search_index=False)
    for folded in (with_index, without):
        for item_id, vector in vectors.items():
            folded.fold(vector_record(item_id, "m", vector)[1])
        assert asyncio.run(folded.index_staged()) == 30

    assert without.semantic is None and len(without) == 30
    assert without.search(UserProfile.new("u"), 5) == []
    # the learned ranker's text space is the same either way
    assert with_index.space is not None and without.space is not None
    assert with_index.space.ids == without.space.ids
    assert np.array_equal(with_index.space.unit, without.space.unit)
    assert np.array_equal(with_index.space.nbr_idx, without.space.nbr_idx)


def test_vectors_of_another_size_replace_the_folded_ones() -> None:
    folded = FoldedVectors(WorkerMetrics(), search_index=False)
    for n in range(3):
        folded.fold(vector_record(f"i{n}", "m", np.ones(8, np.float32) * (n + 1))[1])
    asyncio.run(folded.index_staged())
    folded.fold(vector_record("j", "m2", np.ones(4, np.float32))[1])
    asyncio.run(folded.index_staged())

    assert list(folded.vectors) == ["j"] and len(folded) == 1
