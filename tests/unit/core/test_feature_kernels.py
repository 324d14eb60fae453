"""The C glue of the candidates' features writes what the plain Python and numpy code wrote."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from stream_rec.core import _features
from stream_rec.core.candidates import OutsideOf
from stream_rec.core.features import FEATURES
from stream_rec.core.profile import Touch

_SOURCES = 5
_WEIGHTS = (1.0, 1.0, 0.03, 0.03, 0.1)
_RANK_COLUMNS = tuple(FEATURES.index("rank_" + s) for s in
                      ("covisit", "buy_again", "similar", "category", "trending"))
_USER = (FEATURES.index("bought"), FEATURES.index("bought_days"), FEATURES.index("touched"),
         FEATURES.index("touch_recency"))
_DAY_MS = 86_400_000.0


def _outputs(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.zeros((rows, len(FEATURES)), np.float32), np.full((rows, _SOURCES), -1.0),
            np.zeros((rows, _SOURCES)))


def _reference_assembly(sources: list[list[tuple[str, float]]]
                        ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The union, scores, parts and rank columns as build_candidates computed them in numpy."""
    pos: dict[str, int] = {}
    rows = [[pos.setdefault(item, len(pos)) for item, _ in ranked] for ranked in sources]
    m = len(pos)
    x, parts, scores = _outputs(m)
    lengths = [len(ranked) for ranked in sources]
    at_rows = np.fromiter(itertools.chain.from_iterable(rows), np.intp, sum(lengths))
    raw = np.fromiter((v for ranked in sources for _, v in ranked), np.float64, sum(lengths))
    source = np.repeat(np.arange(_SOURCES), lengths)
    rank = np.arange(sum(lengths)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    scores[at_rows, source] = raw
    parts[at_rows, source] = np.asarray(_WEIGHTS)[source] * raw
    x[at_rows, np.asarray(_RANK_COLUMNS)[source]] = 1.0 / (1.0 + rank)
    return list(pos), x, parts, scores


def _random_sources(rng: random.Random) -> list[list[tuple[str, float]]]:
    catalogue = [f"i{k}" for k in range(60)]
    return [[(item, rng.choice([0.0, 0.5, rng.random(), rng.random() * 1e-9]))
             for item in rng.sample(catalogue, rng.randint(0, 25))] for _ in range(_SOURCES)]


def test_assembly_gives_the_union_in_entry_order_with_every_source_score_and_rank() -> None:
    rng = random.Random(7)
    for _ in range(300):
        sources = _random_sources(rng)
        # the sources come as lists of tuples or as dicts item -> (score, anchor)
        given = tuple(ranked if k % 2 == 0 else {i: (v, "anchor") for i, v in ranked}
                      for k, ranked in enumerate(sources))
        rows = sum(map(len, sources))
        x, parts, scores = _outputs(rows)
        items, pos = _features.assemble(given, _WEIGHTS, _RANK_COLUMNS, x, parts, scores)
        want_items, want_x, want_parts, want_scores = _reference_assembly(sources)
        m = len(want_items)
        assert items == want_items
        assert pos == {item: k for k, item in enumerate(want_items)}
        assert x[:m].tobytes() == want_x.tobytes()  # bit for bit
        assert parts[:m].tobytes() == want_parts.tobytes()
        assert scores[:m].tobytes() == want_scores.tobytes()
        assert not x[m:].any() and (parts[m:] == -1.0).all()  # rows past the union untouched


def test_assembly_refuses_outputs_too_small_or_of_the_wrong_type() -> None:
    sources = ([("a", 1.0), ("b", 0.5)], {}, [], {}, [])
    with pytest.raises(ValueError, match="more than 1 candidates"):
        _features.assemble(sources, _WEIGHTS, _RANK_COLUMNS, *_outputs(1))
    x, parts, scores = _outputs(2)
    with pytest.raises(TypeError, match="x: expected a writable 2-d contiguous array of float32"):
        _features.assemble(sources, _WEIGHTS, _RANK_COLUMNS, x.astype(np.float64), parts,
                           scores)
    with pytest.raises(TypeError, match=r"sources\[0\]\[0\]: expected an \(item, score"):
        _features.assemble(([["a", 1.0]], {}, [], {}, []), _WEIGHTS, _RANK_COLUMNS, x, parts,
                           scores)
    with pytest.raises(IndexError, match="rank_columns: column 99"):
        _features.assemble(sources, _WEIGHTS, (99, *_RANK_COLUMNS[1:]), x, parts, scores)


def _reference_user_columns(x: np.ndarray, pos: dict[str, int],
                            purchased: tuple[tuple[str, int, int], ...],
                            recent: tuple[Touch, ...], now_ms: int) -> None:
    """What build_candidates wrote in Python before the kernel."""
    bought, days, touched, recency = _USER
    for item, times, last_ms in purchased:
        if item in pos and times:
            k = pos[item]
            x[k, bought] = math.log1p(times)
            x[k, days] = math.log1p(max(0, now_ms - last_ms) / _DAY_MS)
            x[k, touched] = 1.0
            x[k, recency] = 0.05
    ages: dict[str, int] = {}
    age, instant = -1, None
    for touch in reversed(recent):
        if touch.ts_ms != instant:
            age, instant = age + 1, touch.ts_ms
        ages.setdefault(touch.item_id, age)
    for item, age in ages.items():
        if item in pos:
            x[pos[item], touched] = 1.0
            x[pos[item], recency] = 1.0 / (1.0 + age)


def test_user_columns_read_purchases_then_the_newest_touch_of_each_candidate() -> None:
    rng = random.Random(11)
    now_ms = 1_700_000_000_000
    for _ in range(300):
        items = [f"i{k}" for k in range(30)]
        pos = {item: k for k, item in enumerate(rng.sample(items, 15))}
        purchased = tuple((item, rng.choice([0, 1, 2, 7]),
                           now_ms - rng.randint(-5_000, 400 * 86_400_000))
                          for item in rng.sample(items, rng.randint(0, 12)))
        ts, recent = now_ms - 10_000_000, []
        for _ in range(rng.randint(0, 20)):  # baskets: several touches share an instant
            ts += rng.choice([0, 0, 1_000, 60_000])
            recent.append(Touch(rng.choice(items), rng.choice(["view", "purchase"]), ts))
        got, want = (np.zeros((15, len(FEATURES)), np.float32) for _ in range(2))
        _features.user_columns(got, pos, purchased, tuple(recent), now_ms, _USER)
        _reference_user_columns(want, pos, purchased, tuple(recent), now_ms)
        assert got.tobytes() == want.tobytes()


def test_user_columns_refuse_a_position_outside_the_rows() -> None:
    x = np.zeros((2, len(FEATURES)), np.float32)
    with pytest.raises(IndexError, match="row 5 is outside the 2 rows"):
        _features.user_columns(x, {"a": 5}, (), (Touch("a", "view", 1),), 10, _USER)


def test_category_column_is_the_affinity_share_of_each_candidates_category() -> None:
    x = np.zeros((4, len(FEATURES)), np.float32)
    categories = {"a": "tea", "b": "mugs", "c": "tea"}  # "d" has no category
    affinity = {"tea": 3.0, "mugs": 1.0, "": 0.5}
    column = FEATURES.index("category")
    _features.category_column(x, column, ["a", "b", "c", "d"], categories, affinity, 4.5)
    want = (np.array([3.0, 1.0, 3.0, 0.5]) / 4.5).astype(np.float32)
    assert x[:, column].tobytes() == want.tobytes()
    assert not np.delete(x, column, axis=1).any()


def _reference_category_trending(top: list[tuple[str, float]], categories: dict[str, str],
                                 favourites: dict[str, float], total: float,
                                 exclude: frozenset[str], n: int
                                 ) -> dict[str, tuple[float, str]]:
    """candidates.category_trending as it was written in Python."""
    found: list[tuple[str, float, str]] = []
    mass: dict[str, float] = {}
    for item, popularity in top:
        category = categories.get(item, "")
        if category in favourites:
            mass[category] = mass.get(category, 0.0) + popularity
            if item not in exclude and len(found) < n:
                found.append((item, popularity, category))
    return {item: (popularity / mass[category] * favourites[category] / total, category)
            for item, popularity, category in found}


def test_category_trending_scores_the_first_trending_items_of_the_favourite_categories() -> None:
    rng = random.Random(5)
    names = ["tea", "mugs", "toys", "lamps", ""]
    for _ in range(300):
        items = [f"i{k}" for k in range(80)]
        categories = {item: rng.choice(names) for item in items if rng.random() < 0.9}
        top = sorted(((item, rng.choice([1.0, rng.random() + 1e-6])) for item in
                      rng.sample(items, rng.randint(0, 60))), key=lambda kv: -kv[1])
        favourites = {c: rng.random() for c in rng.sample(names, rng.randint(1, 3))}
        total = sum(favourites.values())
        exclude = frozenset(rng.sample(items, rng.randint(0, 20)))
        n = rng.randint(1, 30)
        got = _features.category_trending(top, categories, favourites, total, exclude, n)
        want = _reference_category_trending(top, categories, favourites, total, exclude, n)
        assert list(got.items()) == list(want.items())  # same order, same bits


def test_category_trending_asks_any_container_what_to_skip() -> None:
    top = [("a", 3.0), ("b", 2.0), ("c", 1.0)]
    categories = {"a": "tea", "b": "tea", "c": "tea"}
    got = _features.category_trending(top, categories, {"tea": 1.0}, 1.0,
                                      OutsideOf(frozenset({"b", "c"}), frozenset({"c"})), 5)
    assert got == {"b": (2.0 / 6.0, "tea")}
