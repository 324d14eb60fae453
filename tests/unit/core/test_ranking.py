"""The fast scorer on tiny worlds whose right answers are obvious."""

from __future__ import annotations

from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, Event
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import Recommender, rec_id_for

T0 = 1_300_000_000_000
CATALOG = [CatalogItem("tea", "TEAPOT", "Kitchen"), CatalogItem("cup", "TEA CUP", "Kitchen"),
           CatalogItem("lamp", "LAMP", "Lights"), CatalogItem("bulb", "BULB", "Lights"),
           CatalogItem("sock", "SOCKS", "Clothes"), CatalogItem("soap", "SOAP", "Bath")]


def _world() -> tuple[Recommender, dict[str, UserProfile]]:
    recommender = Recommender(Catalog(CATALOG), ItemStats())
    return recommender, {}


def _feed(recommender: Recommender, profiles: dict[str, UserProfile],
          steps: list[tuple[str, str, str]]) -> None:
    for n, (user, type_, item) in enumerate(steps):
        event = Event(f"e{n}", type_, user, T0 + n * 1000, item_id=item)
        before = profiles.get(user, UserProfile.new(user))
        obs = recommender.observe(before, event)
        profiles[user] = obs.profile
        if obs.delta is not None:
            recommender.stats.learn_one(obs.delta)


def test_checkerboard_users_who_buy_a_teapot_get_the_cup_because_of_the_teapot() -> None:
    recommender, profiles = _world()
    steps = []
    for u in range(6):  # kitchen shoppers buy tea then cup; light shoppers buy lamp then bulb
        steps += [(f"k{u}", "purchase", "tea"), (f"k{u}", "purchase", "cup"),
                  (f"l{u}", "purchase", "lamp"), (f"l{u}", "purchase", "bulb")]
    steps.append(("new", "purchase", "tea"))
    _feed(recommender, profiles, steps)
    recs = recommender.recommend(profiles["new"], now_ms=T0 + 100_000)
    assert recs[0].item_id == "cup"
    assert recs[0].reason == "often bought with TEAPOT"
    assert [r.item_id for r in recs].index("cup") < [r.item_id for r in recs].index("bulb")


def test_a_one_off_item_just_bought_is_not_recommended_again() -> None:
    recommender, profiles = _world()
    steps = [(f"u{u}", "purchase", "lamp") for u in range(10)]  # ten buyers, nobody re-buys
    steps += [(f"u{u}", "purchase", "bulb") for u in range(10)]
    _feed(recommender, profiles, steps)
    trigger = Event("t", "purchase", "u0", T0 + 50_000, item_id="bulb")
    recs = recommender.recommend(profiles["u0"], now_ms=T0 + 50_000, trigger=trigger)
    assert "bulb" not in [r.item_id for r in recs]


def test_items_bought_again_and_again_come_back_with_a_count() -> None:
    recommender, profiles = _world()
    steps = []
    for u in range(5):  # soap is re-bought by everybody
        steps += [(f"u{u}", "purchase", "soap")] * 3
    _feed(recommender, profiles, steps)
    assert recommender.stats.repeat_propensity("soap") > 0.5
    recs = recommender.recommend(profiles["u1"], now_ms=T0 + 60_000)
    soap = next(r for r in recs if r.item_id == "soap")
    assert soap.reason == "you bought this 3 times"


def test_out_of_stock_and_unknown_items_are_never_recommended() -> None:
    recommender, profiles = _world()
    steps = []
    for u in range(4):
        steps += [(f"u{u}", "purchase", "tea"), (f"u{u}", "purchase", "cup"),
                  (f"u{u}", "purchase", "ghost")]
    _feed(recommender, profiles, steps)
    recommender.catalog.upsert(CatalogItem("cup", "TEA CUP", "Kitchen", in_stock=False))
    recs = recommender.recommend(profiles["u0"], now_ms=T0 + 60_000)
    ids = [r.item_id for r in recs]
    assert "cup" not in ids and "ghost" not in ids and ids


def test_a_user_with_no_history_gets_trending_items() -> None:
    recommender, profiles = _world()
    _feed(recommender, profiles, [("a", "purchase", "sock"), ("b", "purchase", "sock"),
                                  ("c", "view", "lamp")])
    recs = recommender.recommend(UserProfile.new("cold"), now_ms=T0 + 10_000)
    assert recs[0].item_id == "sock" and recs[0].reason == "trending now"


def test_cart_items_are_left_out() -> None:
    recommender, profiles = _world()
    _feed(recommender, profiles, [("a", "purchase", "tea"), ("a", "purchase", "cup"),
                                  ("b", "add_to_cart", "tea")])
    recs = recommender.recommend(profiles["b"], now_ms=T0 + 10_000)
    assert "tea" not in [r.item_id for r in recs]


def test_rec_id_is_stable_per_trigger() -> None:
    assert rec_id_for("u", "e1") == rec_id_for("u", "e1") != rec_id_for("u", "e2")
