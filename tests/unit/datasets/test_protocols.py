"""Evaluation protocols: reference counts on the real shared data (skipped when
/work/shared/data is absent), and the rules on tiny hand-built worlds."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from stream_rec.core.events import CatalogItem, Event
from stream_rec.datasets import Dataset, Split, TestCase, load_dataset, load_demo, make_split
from stream_rec.errors import ConfigError, DatasetError
from stream_rec.evaluation.metrics import RankingAccumulator

DATA = Path(__file__).resolve().parents[2] / "data"
DAY_MS = 86_400_000
T0 = 1_300_000_000_000


def _world(interactions: list[tuple[str, str, int]], *, untitled: frozenset[str] = frozenset(),
           invoices: dict[tuple[str, str, int], str] | None = None) -> Dataset:
    """A dataset from (user, item, day) triples, in that order of replay."""
    events = tuple(
        Event(event_id=f"e{n}", type="purchase", user_id=user, item_id=item,
              ts_ms=T0 + day * DAY_MS,
              context={"invoice": invoices[(user, item, day)]} if invoices else {})
        for n, (user, item, day) in enumerate(sorted(interactions, key=lambda t: t[2])))
    items = sorted({item for _, item, _ in interactions})
    catalog = tuple(CatalogItem(item_id=i, title="" if i in untitled else f"Item {i}")
                    for i in items)
    return Dataset(name="world", catalog=catalog, events=events)


def _replay_popularity(split: Split) -> dict[str, float]:
    """A most-popular recommender replayed the way the lead's evaluator is meant to."""
    acc = RankingAccumulator(split.metrics)
    counts: Counter[str] = Counter()
    cases = list(split.cases)
    pos = 0
    for index in range(len(split.train_events) + 1):
        while pos < len(cases) and cases[pos].at_index == index:
            case = cases[pos]
            pool = case.candidates if case.candidates is not None else split.item_ids
            ranked = sorted((i for i in pool if i not in case.masked),
                            key=lambda i: (-counts[i], i))
            acc.add(ranked, case.relevant)
            pos += 1
        if index < len(split.train_events):
            event = split.train_events[index]
            counts[event.item_id or ""] += 1
    assert pos == len(cases), "every case must be reachable in replay order"
    return acc.result()


# --- llamarec -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def movielens_full(shared_data: Callable[[str], Path]) -> Dataset:
    return load_dataset("movielens", shared_data("movielens-latest-small"))


def test_llamarec_on_ml_latest_small_gives_the_reference_counts(movielens_full: Dataset) -> None:
    split = make_split(movielens_full, "llamarec")
    assert (split.stats["users"], split.stats["items"], split.stats["interactions"]) == \
        (610, 3_650, 90_274)
    assert len(split.item_ids) == 3_650
    assert len(split.cases) == 610
    assert len(split.train_events) == 90_274 - 610
    assert split.metrics == ("recall@5", "recall@10", "ndcg@5", "ndcg@10", "mrr@10")


def test_llamarec_asks_every_user_at_the_end_with_history_masked(
        movielens_full: Dataset) -> None:
    split = make_split(movielens_full, "llamarec")
    history: dict[str, set[str]] = defaultdict(set)
    for event in split.train_events:
        history[event.user_id].add(event.item_id or "")
    end_ms = max(e.ts_ms for e in split.train_events)
    for case in split.cases:
        assert case.at_index == len(split.train_events)
        assert case.masked == history[case.user_id]
        assert len(case.relevant) == 1 and not case.relevant & case.masked
        assert case.now_ms == end_ms and case.candidates is None


def test_llamarec_validation_stage_withholds_the_last_two(movielens_full: Dataset) -> None:
    split = make_split(movielens_full, "llamarec", stage="valid")
    assert len(split.train_events) == 90_274 - 2 * 610
    test = make_split(movielens_full, "llamarec")
    test_items = {c.user_id: c.relevant for c in test.cases}
    for case in split.cases:
        assert case.relevant <= next(c.masked for c in test.cases if c.user_id == case.user_id)
        assert case.relevant != test_items[case.user_id]


def test_llamarec_holds_out_the_last_item_by_time_then_item_id() -> None:
    # u1 rates b and a on the same day 4: a < b by id, so b is last
    rows = [("u1", i, d) for d, i in enumerate("cdef")] + [("u1", "b", 4), ("u1", "a", 4)]
    split = make_split(_world(rows), "llamarec", min_interactions=1)
    assert [c.relevant for c in split.cases] == [frozenset({"b"})]
    assert split.cases[0].masked == frozenset("acdef")


def test_llamarec_drops_untitled_items_then_cores_iteratively() -> None:
    # k=2. u3 has x and z; z's only other rater is u4 who has just z and the untitled t.
    # Dropping t leaves u4 with one interaction -> u4 goes -> z has one -> z goes -> u3 has
    # one -> u3 goes -> x keeps u1, u2.
    rows = [("u1", "x", 1), ("u1", "y", 2), ("u2", "x", 3), ("u2", "y", 4),
            ("u3", "x", 5), ("u3", "z", 6), ("u4", "z", 7), ("u4", "t", 8)]
    split = make_split(_world(rows, untitled=frozenset({"t"})), "llamarec", min_interactions=2)
    assert split.item_ids == ("x", "y")
    assert {c.user_id for c in split.cases} == {"u1", "u2"}
    assert dict(split.stats) == {"users": 2, "items": 2, "interactions": 4,
                                 "train_events": 2, "cases": 2}


def test_llamarec_end_clock_is_the_last_streamed_event_not_the_held_out_one() -> None:
    # u1's held-out c (day 30) is far after everything streamed (last: u2's b, day 4)
    rows = [("u1", "a", 1), ("u1", "b", 2), ("u2", "a", 3), ("u2", "b", 4), ("u2", "c", 5),
            ("u1", "c", 30)]
    split = make_split(_world(rows), "llamarec", min_interactions=1)
    assert {c.user_id: c.now_ms for c in split.cases} == {"u1": T0 + 4 * DAY_MS,
                                                           "u2": T0 + 4 * DAY_MS}


def test_llamarec_own_time_asks_right_after_the_users_own_last_streamed_event() -> None:
    rows = [("u1", "a", 1), ("u1", "b", 2), ("u2", "a", 3), ("u2", "b", 4), ("u2", "c", 5),
            ("u1", "c", 6)]
    split = make_split(_world(rows), "llamarec", ask_at="own_time", min_interactions=1)
    at = {c.user_id: (c.at_index, c.now_ms) for c in split.cases}
    # train = u1a u1b u2a u2b (days 1-4): u1 is asked after u1b, u2 after u2b
    assert at == {"u1": (2, T0 + 2 * DAY_MS), "u2": (4, T0 + 4 * DAY_MS)}


def test_llamarec_own_time_ignores_when_the_held_out_event_happens() -> None:
    early = [("u1", "a", 1), ("u1", "b", 2), ("u2", "a", 3), ("u2", "b", 4), ("u1", "c", 5),
             ("u2", "c", 6)]
    late = [*early[:4], ("u1", "c", 50), ("u2", "c", 60)]
    asked = [{c.user_id: (c.at_index, c.now_ms) for c in make_split(
        _world(rows), "llamarec", ask_at="own_time", min_interactions=1).cases}
        for rows in (early, late)]
    assert asked[0] == asked[1]


def test_llamarec_rejects_unknown_options() -> None:
    with pytest.raises(ConfigError, match="stage must be"):
        make_split(_world([("u", "a", 1)]), "llamarec", stage="train")


# --- minionerec ---------------------------------------------------------------------------

def test_minionerec_on_industrial_gives_the_reference_counts(
        shared_data: Callable[[str], Path]) -> None:
    dataset = load_dataset("amazon-minionerec",
                           shared_data("amazon18-industrial-scientific-minionerec"))
    split = make_split(dataset, "minionerec")
    assert len(split.cases) == 4_533
    assert len(split.item_ids) == 3_686
    assert split.train_events == dataset.events
    assert split.metrics == ("hr@3", "hr@5", "hr@10", "ndcg@3", "ndcg@5", "ndcg@10")
    _assert_minionerec_cases(split)


def _assert_minionerec_cases(split: Split) -> None:
    rows = []
    for case in split.cases:
        target = split.train_events[case.at_index]
        assert target.context["split"] == "test" and target.context["role"] == "target"
        assert case.relevant == {target.item_id} and case.user_id == target.user_id
        assert case.masked == frozenset() and case.now_ms == target.ts_ms
        rows.append(target.context["row"])
    assert rows == sorted(rows) == list(range(len(rows)))
    first_test = split.cases[0].at_index
    assert all(e.context["split"] == "valid" for e in split.train_events[:first_test]
               if e.context["role"] == "target")


def test_minionerec_on_the_tiny_sample_asks_each_test_row() -> None:
    split = make_split(load_dataset("amazon-minionerec", DATA / "amazon_minionerec"),
                       "minionerec")
    assert len(split.cases) == split.stats["test_samples"] > 0
    _assert_minionerec_cases(split)


def test_minionerec_later_rows_of_a_user_see_the_earlier_targets() -> None:
    split = make_split(load_dataset("amazon-minionerec", DATA / "amazon_minionerec"),
                       "minionerec")
    by_user: dict[str, list[TestCase]] = defaultdict(list)
    for case in split.cases:
        by_user[case.user_id].append(case)
    repeated = [cases for cases in by_user.values() if len(cases) > 1]
    assert repeated, "the sample should hold a user with two test rows"
    for cases in repeated:
        earlier, later = cases[0], cases[1]
        streamed = {e.item_id for e in split.train_events[:later.at_index]
                    if e.user_id == later.user_id}
        assert earlier.relevant <= streamed


def test_minionerec_needs_minionerec_events() -> None:
    with pytest.raises(DatasetError, match="load_dataset\\('amazon-minionerec'"):
        make_split(_world([("u", "a", 1)]), "minionerec")


# --- time-split ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def retail_full(shared_data: Callable[[str], Path]) -> Dataset:
    return load_dataset("online-retail", shared_data("online-retail"))


def test_time_split_on_online_retail_gives_the_reference_counts(retail_full: Dataset) -> None:
    split = make_split(retail_full, "time-split", cut="2011-11-01")
    assert split.stats["train_baskets"] == 15_014
    assert split.stats["test_customers"] == len(split.cases) == 1_540
    assert split.metrics == ("hr@10", "ndcg@10", "recall@10")
    assert len(split.item_ids) == len(retail_full.catalog) == 3_659


def test_time_split_streams_only_before_the_cut_and_asks_at_the_end(
        retail_full: Dataset) -> None:
    split = make_split(retail_full, "time-split")
    cut_ms = split.stats["cut_ms"]
    assert cut_ms == 1_320_105_600_000  # 2011-11-01T00:00:00Z
    assert max(e.ts_ms for e in split.train_events) < cut_ms
    known = {e.user_id for e in split.train_events}
    for case in split.cases:
        assert case.at_index == len(split.train_events)
        assert case.user_id in known and case.now_ms >= cut_ms
        assert case.relevant and not case.masked


def test_online_retail_full_load_is_replayable(retail_full: Dataset) -> None:
    stamps = [e.ts_ms for e in retail_full.events]
    assert stamps == sorted(stamps)
    assert len({e.event_id for e in retail_full.events}) == len(retail_full.events) == 386_354
    # 4,339 customers bought something; 4 of them only postage, fees or manual lines
    assert len({e.user_id for e in retail_full.events}) == 4_335


def test_time_split_tests_the_first_basket_after_the_cut_only() -> None:
    invoices = {("u1", "a", 1): "i1", ("u1", "b", 10): "i2", ("u1", "c", 10): "i2",
                ("u1", "d", 12): "i3", ("u2", "a", 11): "i4", ("u3", "b", 2): "i5"}
    dataset = _world(list(invoices), invoices=invoices)
    split = make_split(dataset, "time-split", cut=T0 + 5 * DAY_MS)
    # u1: first basket after the cut is i2 (b, c); u2 is unknown before the cut; u3 is idle
    assert [(c.user_id, c.relevant) for c in split.cases] == [("u1", frozenset("bc"))]
    assert split.stats["train_baskets"] == 2
    assert [e.item_id for e in split.train_events] == ["a", "b"]


def test_time_split_accepts_a_naive_iso_cut_as_utc() -> None:
    split = make_split(_world([("u", "a", 1)]), "time-split", cut="2011-03-13T07:06:40")
    assert split.stats["cut_ms"] == T0


def test_time_split_rejects_a_malformed_cut() -> None:
    with pytest.raises(ConfigError, match="ISO date"):
        make_split(_world([("u", "a", 1)]), "time-split", cut="1 Nov 2011")


def test_time_split_on_the_tiny_sample_and_the_demo() -> None:
    for dataset in (load_dataset("online-retail", DATA / "online_retail"), load_demo()):
        split = make_split(dataset, "time-split")
        assert split.cases
        assert all(c.at_index == len(split.train_events) for c in split.cases)


# --- sampled-100 --------------------------------------------------------------------------

def test_sampled_puts_the_held_out_item_among_unseen_negatives(
        movielens_full: Dataset) -> None:
    split = make_split(movielens_full, "sampled-100", rng=random.Random(7))
    assert split.protocol == "sampled-100" and split.metrics == ("hr@10",)
    seen: dict[str, set[str]] = defaultdict(set)
    for event in movielens_full.events:
        seen[event.user_id].add(event.item_id or "")
    universe = set(split.item_ids)
    for case in split.cases:
        assert case.candidates is not None and len(case.candidates) == 101
        assert case.relevant <= case.candidates <= universe
        assert not (case.candidates - case.relevant) & seen[case.user_id]


def test_sampled_is_reproducible_for_a_seed_and_varies_across_seeds() -> None:
    dataset = load_dataset("movielens", DATA / "movielens")
    options = {"base": "llamarec", "n_negatives": 3}
    first = make_split(dataset, "sampled-100", rng=random.Random(1), **options)
    again = make_split(dataset, "sampled-100", rng=random.Random(1), **options)
    other = make_split(dataset, "sampled-100", rng=random.Random(2), **options)
    assert first.cases == again.cases
    assert first.cases != other.cases
    assert first.protocol == "sampled-3"


def test_sampled_takes_every_unseen_item_when_fewer_than_asked() -> None:
    rows = [("u1", "a", 1), ("u1", "b", 2), ("u2", "c", 3), ("u2", "d", 4), ("u2", "a", 5)]
    split = make_split(_world(rows), "sampled-100", base="llamarec", min_interactions=1)
    by_user = {c.user_id: c.candidates for c in split.cases}
    assert by_user == {"u1": frozenset({"b", "c", "d"}), "u2": frozenset({"a", "b"})}


def test_sampled_needs_a_base_for_an_unknown_dataset() -> None:
    with pytest.raises(ConfigError, match="base must be one of"):
        make_split(_world([("u", "a", 1)]), "sampled-100")


# --- replay -------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "folder", "protocol"), [
    ("movielens", "movielens", "llamarec"),
    ("movielens", "movielens", "sampled-100"),
    ("online-retail", "online_retail", "time-split"),
    ("amazon-minionerec", "amazon_minionerec", "minionerec"),
])
def test_every_protocol_replays_on_its_tiny_sample(name: str, folder: str,
                                                   protocol: str) -> None:
    split = make_split(load_dataset(name, DATA / folder), protocol)
    assert split.cases
    at = [c.at_index for c in split.cases]
    assert at == sorted(at) and at[-1] <= len(split.train_events)
    result = _replay_popularity(split)
    assert list(result) == list(split.metrics)
    assert all(0.0 <= value <= 1.0 for value in result.values())


def test_unknown_protocol_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="time-split"):
        make_split(_world([("u", "a", 1)]), "leave-one-out")


# --- served: every list a worker sends --------------------------------------------------

def test_served_asks_after_every_trigger_with_the_users_next_instant_as_relevant() -> None:
    world = _world([("u1", "a", 0), ("u2", "b", 1), ("u1", "c", 2), ("u1", "d", 2),
                    ("u1", "e", 3), ("u2", "f", 4)])

    split = make_split(world, "served")

    by_trigger = {c.trigger.event_id: c for c in split.cases if c.trigger is not None}
    events = {e.event_id: e for e in split.train_events}
    assert len(by_trigger) == len(split.cases) == 4  # each user's last event: no next
    first = by_trigger["e0"]  # u1 bought a on day 0; next instant: c and d on day 2
    assert first.relevant == {"c", "d"} and first.at_index == 1
    assert first.now_ms == events["e0"].ts_ms and first.masked == frozenset()
    assert by_trigger["e2"].relevant == {"d"}  # inside the day-2 basket: the rest of it
    assert by_trigger["e3"].relevant == {"e"}
    assert by_trigger["e1"].relevant == {"f"}  # u2: day 1 → day 4


def test_served_max_events_is_a_slice_of_the_stream_in_order() -> None:
    world = _world([("u1", "a", 0), ("u1", "b", 1), ("u1", "c", 2), ("u1", "d", 3)])

    split = make_split(world, "served", max_events=3)

    assert [e.item_id for e in split.train_events] == ["a", "b", "c"]
    assert [c.relevant for c in split.cases] == [{"b"}, {"c"}]  # d is beyond the slice
    with pytest.raises(ConfigError, match="max_events"):
        make_split(world, "served", max_events=-1)


def test_served_triggers_are_the_workers_default_trigger_types() -> None:
    from stream_rec.config import Settings

    world = _world([("u1", "a", 0), ("u1", "b", 1), ("u1", "c", 2)])
    clicked = Dataset(world.name, world.catalog, (
        world.events[0], replace(world.events[1], type="rec_click"), world.events[2]))

    split = make_split(clicked, "served")

    assert "rec_click" not in Settings().trigger_types  # a worker does not answer clicks
    assert [c.trigger.event_id for c in split.cases if c.trigger] == ["e0"]
    assert split.cases[0].relevant == {"b"}  # the click is still the next interaction
