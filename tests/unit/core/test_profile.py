"""Per-user state: what it remembers, and that redelivery never double-counts."""

from __future__ import annotations

import random
from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.core.events import Event
from stream_rec.core.profile import ProfileParams, Touch, UserProfile, apply_event, learn_one


def _ev(n: int, type_: str = "purchase", item: str = "A", ts: int = 0) -> Event:
    return Event(event_id=f"e{n}", type=type_, user_id="u", ts_ms=1_300_000_000_000 + ts,
                 item_id=item)


def test_purchases_count_per_item_and_leave_the_cart() -> None:
    p = UserProfile.new("u")
    p = learn_one(p, _ev(1, "add_to_cart", "A"))
    assert p.cart == ("A",)
    p = learn_one(p, _ev(2, "purchase", "A", 10))
    p = learn_one(p, _ev(3, "purchase", "A", 20))
    assert p.cart == ()
    assert p.purchase_counts() == {"A": 2}
    assert p.count("purchase") == 2 and p.count("add_to_cart") == 1


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from("ABCDE"), max_size=30), st.sampled_from("ABCDEF"))
def test_times_bought_reads_the_same_count_as_purchase_counts(items: list[str],
                                                              probe: str) -> None:
    p = UserProfile.new("u")
    for n, item in enumerate(items):
        p = learn_one(p, _ev(n, "purchase", item, 10 * n))
    assert p.times_bought(probe) == p.purchase_counts().get(probe, 0)


def test_recent_history_is_bounded_and_newest_first() -> None:
    p = UserProfile.new("u")
    for n in range(30):
        p = learn_one(p, _ev(n, "view", f"i{n}", n), params=ProfileParams(recent_items=5))
    assert len(p.recent) == 5
    assert p.recent_item_ids(3) == ["i29", "i28", "i27"]


def test_category_affinity_decays_with_half_life() -> None:
    params = ProfileParams(half_life_s=10.0)
    p = learn_one(UserProfile.new("u"), _ev(1, "view", "A", 0), category="Candles",
                  params=params)
    p = learn_one(p, _ev(2, "view", "B", 10_000), category="Bags", params=params)
    scores = dict(p.categories)
    assert abs(scores["Candles"] - 0.5) < 1e-6 and scores["Bags"] == 1.0


def test_redelivered_offset_is_skipped() -> None:
    p, applied = apply_event(UserProfile.new("u"), _ev(1), partition=0, offset=5)
    assert applied
    again, applied = apply_event(p, _ev(1), partition=0, offset=5)
    assert not applied and again == p
    older, applied = apply_event(p, _ev(9), partition=0, offset=4)
    assert not applied and older == p


def test_client_duplicate_event_id_at_a_new_offset_is_skipped() -> None:
    p, _ = apply_event(UserProfile.new("u"), _ev(1), partition=0, offset=5)
    again, applied = apply_event(p, _ev(1), partition=0, offset=6)
    assert not applied and again.purchase_counts() == {"A": 1}


def test_profile_survives_its_table_encoding() -> None:
    p = UserProfile.new("u")
    for n in range(5):
        p, _ = apply_event(p, _ev(n, "purchase", f"i{n % 2}", n), partition=1, offset=n,
                           category="C")
    assert UserProfile.from_dict(p.to_dict()) == p


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["view", "add_to_cart", "purchase"]),
                          st.sampled_from("ABCD")), min_size=1, max_size=25),
       st.integers(min_value=0, max_value=2**16))
def test_any_redelivery_pattern_gives_the_state_of_one_clean_pass(
        steps: list[tuple[str, str]], seed: int) -> None:
    events = [(n, _ev(n, t, item, n)) for n, (t, item) in enumerate(steps)]
    clean = UserProfile.new("u")
    for offset, event in events:
        clean, _ = apply_event(clean, event, partition=0, offset=offset)
    rng = random.Random(seed)
    delivered = []
    position = 0
    while position < len(events):  # at-least-once: a rebalance replays from an older offset
        delivered.append(events[position])
        position += 1
        if rng.random() < 0.3:
            position = max(0, position - rng.randint(1, 4))
    replayed = UserProfile.new("u")
    for offset, event in delivered:
        replayed, _ = apply_event(replayed, event, partition=0, offset=offset)
    assert replayed == clean


def test_folding_an_event_keeps_every_field_it_does_not_touch() -> None:
    # every field set, so a field the fold forgot to carry over would fall back to its default
    profile = UserProfile(
        user_id="u", recent=(Touch("a", "view", 1_000),), purchased=(("b", 2, 900),),
        cart=("c",), categories=(("toys", 1.5),), counts=(("view", 3),), first_ts_ms=500,
        last_ts_ms=1_000, offsets=((0, 7),), recent_event_ids=("e0",))
    search = Event(event_id="e1", user_id="u", type="search", ts_ms=1_000, query="kites")
    after, applied = apply_event(profile, search, partition=1, offset=3)
    assert applied
    expected = {f.name: getattr(profile, f.name) for f in fields(UserProfile)}
    expected.update(counts=(("search", 1), ("view", 3)), offsets=((0, 7), (1, 3)),
                    recent_event_ids=("e0", "e1"))
    assert {f.name: getattr(after, f.name) for f in fields(UserProfile)} == expected
    assert learn_one(profile, search) == UserProfile(**{**expected, "offsets": ((0, 7),)})
