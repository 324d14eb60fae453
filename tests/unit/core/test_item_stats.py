"""Item statistics: the trending list kept exact per delta, and the columns the ranker reads."""

from __future__ import annotations

import math
import random

import pytest

from stream_rec.core.item_stats import ItemDelta, ItemStats, StatsParams

DAY_MS = 86_400_000


def _delta(item: str, ts_ms: int, kind: str = "view", *, first: bool = False,
           repeat: bool = False) -> ItemDelta:
    return ItemDelta(item, kind, ts_ms, (), first_purchase=first, repeat_purchase=repeat)


def _brute_force_top(stats: ItemStats, deltas: list[ItemDelta], now_ms: int,
                     n: int) -> list[tuple[str, float]]:
    """Every item's decayed popularity from scratch, best first, ties by first seen."""
    rate = math.log(2) / (stats.params.popularity_half_life_s * 1000.0)
    weight = {"view": 1.0, "rec_click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
    value: dict[str, float] = {}
    for d in deltas:
        value[d.item_id] = value.get(d.item_id, 0.0) + weight[d.type] * math.exp(
            -rate * max(0, now_ms - d.ts_ms))
    order = list(value)  # first-seen order
    ranked = sorted(order, key=lambda i: (-value[i], order.index(i)))
    return [(i, value[i]) for i in ranked[:n]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_trending_list_equals_a_full_re_ranking_after_every_kind_of_stream(seed: int) -> None:
    rng = random.Random(seed)
    stats = ItemStats(StatsParams(trending_size=20, popularity_half_life_s=2 * 86_400.0))
    deltas: list[ItemDelta] = []
    ts = 1_700_000_000_000
    for step in range(3000):
        ts += rng.randint(0, 3_600_000)
        # a long tail plus items whose popularity rises and fades over time
        item = f"i{rng.randint(0, 300)}" if rng.random() < 0.7 else f"hot{step // 400}"
        deltas.append(_delta(item, ts, rng.choice(["view", "add_to_cart", "purchase"])))
        stats.learn_one(deltas[-1])
        if step % 500 == 499:
            got = stats.trending(ts)
            want = _brute_force_top(stats, deltas, ts, 20)
            assert [i for i, _ in got] == [i for i, _ in want]
            assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-9)


def test_most_popular_beyond_the_trending_size_ranks_the_whole_catalogue() -> None:
    stats = ItemStats(StatsParams(trending_size=2))
    deltas = [_delta(f"i{k}", DAY_MS + k, "view") for k in range(5) for _ in range(k + 1)]
    stats.learn_many(deltas)
    assert [i for i, _ in stats.most_popular(DAY_MS + 10, 4)] == ["i4", "i3", "i2", "i1"]
    assert [i for i, _ in stats.trending(DAY_MS + 10)] == ["i4", "i3"]


def test_columns_read_counts_age_and_repeat_rate_and_zeros_for_unseen_items() -> None:
    stats = ItemStats()
    stats.learn_many([_delta("a", DAY_MS, "purchase", first=True),
                      _delta("a", 2 * DAY_MS, "purchase", repeat=True),
                      _delta("b", 3 * DAY_MS)])
    cols = stats.columns(["a", "ghost", "b"], now_ms=3 * DAY_MS)
    assert cols.count.tolist() == [2.0, 0.0, 1.0]
    assert cols.seen.tolist() == [True, False, True]
    assert cols.first_ms.tolist() == [DAY_MS, 0.0, 3 * DAY_MS]
    assert cols.repeat_propensity[0] == pytest.approx(stats.repeat_propensity("a"))
    assert cols.repeat_propensity[1] == pytest.approx(stats.repeat_propensity("ghost"))
    assert cols.popularity[0] == pytest.approx(stats.popularity("a", 3 * DAY_MS))
    assert cols.popularity[1] == 0.0
    assert stats.buyers("a") == 1 and stats.repeats("a") == 1 and stats.buyers("ghost") == 0


def test_statistics_keep_growing_past_the_initial_column_capacity() -> None:
    stats = ItemStats()
    stats.learn_many(_delta(f"i{k}", DAY_MS + k) for k in range(5000))
    assert len(stats) == 5000
    assert stats.columns(["i4999", "i0"], DAY_MS + 5000).count.tolist() == [1.0, 1.0]
    assert stats.trending(DAY_MS + 5000)[0][0] == "i4999"  # latest: least decayed


def test_co_visitation_rows_match_a_plain_reference_through_pruning() -> None:
    """Each row: neighbour -> summed weight, in first-paired order; past 1.5 x
    max_neighbours only the heaviest max_neighbours stay, heaviest first (ties: the first
    paired), as a plain dict does it."""
    params = StatsParams(max_neighbours=6, covisit_window=4, instant_window=0)
    stats = ItemStats(params)
    reference: dict[str, dict[str, float]] = {}

    def add(a: str, b: str, w: float) -> None:
        row = reference.setdefault(a, {})
        row[b] = row.get(b, 0.0) + w
        if len(row) > 9:
            kept = sorted(row.items(), key=lambda kv: kv[1], reverse=True)[:6]
            reference[a] = dict(kept)

    rng = random.Random(5)
    for ts in range(3000):
        item = f"i{rng.randrange(25)}"
        drawn = dict.fromkeys(f"i{rng.randrange(25)}" for _ in range(4))
        prev = tuple(i for i in drawn if i != item)
        stats.learn_one(ItemDelta(item, "view", ts, prev, False, False))
        for position, other in enumerate(prev, start=1):
            w = 0.5 / position
            add(other, item, w)
            add(item, other, w * params.covisit_backward)
        if ts % 7 == 0:  # read (and so cache) rows and sums mid-stream: changes must show
            for seen, want in reference.items():
                found = stats.neighbour_rows(seen)
                assert found is not None and found[2] == float(found[1].sum())
                assert [stats.item_id(r) for r in found[0].tolist()] == list(want)
                assert found[1].tolist() == list(want.values())
    for item, row in reference.items():
        assert stats.neighbours(item) == row
        assert list(stats.neighbours(item)) == list(row)
        arrays = stats.neighbour_rows(item)
        assert arrays is not None
        rows, weights, total = arrays
        assert [stats.item_id(r) for r in rows.tolist()] == list(row)
        assert weights.tolist() == list(row.values())
        assert total == float(weights.sum())  # the cached sum follows every change
    assert stats.neighbour_rows("never-seen") is None


def test_basket_pairs_of_every_event_type_match_a_plain_reference() -> None:
    """Items of one basket (same instant) pair both ways at full weight; earlier items
    decay with their distance after the basket; each type has its own pair weight."""
    params = StatsParams(max_neighbours=8, covisit_window=3, instant_window=5)
    stats = ItemStats(params)
    reference: dict[str, dict[str, float]] = {}
    type_weight = {"view": 0.5, "rec_click": 0.5, "add_to_cart": 1.0, "purchase": 1.0}

    def add(a: str, b: str, w: float) -> None:
        row = reference.setdefault(a, {})
        row[b] = row.get(b, 0.0) + w
        if len(row) > 12:
            reference[a] = dict(sorted(row.items(), key=lambda kv: kv[1], reverse=True)[:8])

    rng = random.Random(11)
    for ts in range(4000):
        kind = rng.choice(list(type_weight))
        item = f"i{rng.randrange(40)}"
        drawn = dict.fromkeys(f"i{rng.randrange(40)}" for _ in range(rng.randrange(9)))
        prev = tuple(i for i in drawn if i != item)
        same = rng.randrange(len(prev) + 1)
        stats.learn_one(ItemDelta(item, kind, ts, prev, False, False, same))
        weight = type_weight[kind]
        for position, other in enumerate(prev, start=1):
            if position <= same:
                add(other, item, weight)
                add(item, other, weight)
                continue
            w = weight / (position - same)
            add(other, item, w)
            add(item, other, w * params.covisit_backward)
    for item, row in reference.items():
        assert stats.neighbours(item) == row  # same floats: summed in the same order
        assert list(stats.neighbours(item)) == list(row)

