"""Candidate sources and the text space, called directly."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stream_rec.core.candidates import buy_again
from stream_rec.core.item_stats import ItemDelta, ItemStats
from stream_rec.core.profile import UserProfile
from stream_rec.core.text_space import TextSpace

DAY_MS = 86_400_000


def _shop(purchases: int) -> tuple[UserProfile, ItemStats]:
    stats = ItemStats()
    for k in range(purchases):
        stats.learn_one(ItemDelta(f"i{k}", "purchase", 1_000 + k, (), True, False))
        if k % 3 == 0:  # every third item is re-bought by someone
            stats.learn_one(ItemDelta(f"i{k}", "purchase", 2_000 + k, (), False, True))
    profile = dataclasses.replace(
        UserProfile.new("u"),
        purchased=tuple((f"i{k}", 1 + k % 4, k * DAY_MS) for k in range(purchases)))
    return profile, stats


def test_buy_again_leaves_out_excluded_purchases_and_scores_the_rest_as_without_them() -> None:
    profile, stats = _shop(60)
    now_ms = 90 * DAY_MS
    everything = buy_again(profile, stats, n=60, now_ms=now_ms, half_life_s=30 * 86_400.0)
    excluded = frozenset(f"i{k}" for k in range(0, 60, 2))
    rest = buy_again(profile, stats, n=60, now_ms=now_ms, half_life_s=30 * 86_400.0,
                     exclude=excluded)
    assert rest == {item: v for item, v in everything.items() if item not in excluded}
    assert buy_again(profile, stats, n=5, now_ms=now_ms, half_life_s=30 * 86_400.0,
                     exclude=frozenset(f"i{k}" for k in range(60))) == {}


def test_a_taste_query_is_the_unit_weighted_sum_of_the_item_vectors_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    space = TextSpace.build({f"i{k}": rng.standard_normal(64) for k in range(40)},
                            neighbours=5)
    weights = {"i3": 5.0, "i17": 2.5, "unknown": 9.0, "i29": 0.25, "i8": 0.0}
    expected = np.zeros(64, np.float32)
    for item in ("i3", "i17", "i29"):  # one item at a time, in the weights' order
        expected += weights[item] * space.unit[space.rows[item]]
    expected = expected / math.sqrt(float(np.einsum("i,i->", expected, expected)))
    query = space.query(weights)
    assert query is not None and query.dtype == np.float32
    assert np.array_equal(query, expected)
    assert space.query({"unknown": 1.0, "i3": 0.0}) is None


def test_cosines_are_float32_products_and_zero_for_unknown_items_and_missing_queries() -> None:
    rng = np.random.default_rng(3)
    space = TextSpace.build({f"i{k}": rng.standard_normal(64) for k in range(40)},
                            neighbours=5)
    taste, last = space.query({"i1": 1.0, "i2": 2.0}), space.query({"i5": 1.0})
    assert taste is not None and last is not None
    items = ["i7", "i30", "i12"]
    want = np.stack([space.unit[space.rows[i]] for i in items]) @ np.stack([taste, last], axis=1)
    every = space.cosines([taste, last], items)  # every item known, both queries given
    assert every.dtype == np.float32 and np.array_equal(every, want)
    some = space.cosines([taste, None], ["i7", "unknown", "i12"])
    assert some.dtype == np.float32
    assert np.array_equal(some[[0, 2], 0], (np.stack([space.unit[space.rows[i]]
                                                       for i in ("i7", "i12")]) @ taste))
    assert not some[1].any() and not some[:, 1].any()
    assert not space.cosines([None, None], items).any()


def test_a_one_item_query_is_that_items_unit_vector() -> None:
    rng = np.random.default_rng(5)
    space = TextSpace.build({f"i{k}": rng.standard_normal(64) for k in range(10)},
                            neighbours=3)
    query = space.query({"i4": 3.0})
    assert query is not None and query.dtype == np.float32
    three = np.float32(3.0) * space.unit[space.rows["i4"]]
    assert np.array_equal(query, three / math.sqrt(float(np.einsum("i,i->", three, three))))
    assert np.allclose(query, space.unit[space.rows["i4"]], atol=1e-6)
