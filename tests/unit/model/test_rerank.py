"""The in-process rerank's prompt and result: what the worker and the evaluation share."""

from __future__ import annotations

import math

from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, Event, RecItem
from stream_rec.core.profile import UserProfile, learn_one
from stream_rec.model.rerank import reordered, rerank_inputs

CATALOG = Catalog([CatalogItem("a", "RED MUG"), CatalogItem("b", "BLUE MUG"),
                   CatalogItem("c", "TEA; TOWEL"), CatalogItem("d", "CAKE TIN")])


def _profile(*items: str) -> UserProfile:
    profile = UserProfile.new("u")
    for n, item in enumerate(items):
        profile = learn_one(profile, Event(f"e{n}", "purchase", "u", 1_000 + n, item_id=item))
    return profile


def test_prefix_lists_the_users_recent_titles_oldest_first_and_texts_the_offered_titles() -> None:
    head = [RecItem("c", 0.9, "r1"), RecItem("d", 0.8, "r2")]
    prefix, texts = rerank_inputs(CATALOG, _profile("a", "b"), head)
    assert prefix == "A customer bought: RED MUG; BLUE MUG. Next they bought:"
    assert texts == [" TEA, TOWEL", " CAKE TIN"]  # ';' cannot fake a history separator


def test_reordered_sorts_only_the_head_by_score_and_keeps_reasons_and_the_tail() -> None:
    items = [RecItem("a", 3.0, "ra"), RecItem("b", 2.0, "rb"), RecItem("c", 1.0, "rc")]
    out = reordered(items, 2, [-5.0, -1.0])
    assert [(r.item_id, r.score, r.reason) for r in out] == [
        ("b", -1.0, "rb"), ("a", -5.0, "ra"), ("c", 1.0, "rc")]


def test_reordered_sinks_nan_scores_and_keeps_offered_order_on_ties() -> None:
    items = [RecItem("a", 3.0, ""), RecItem("b", 2.0, ""), RecItem("c", 1.0, "")]
    out = reordered(items, 3, [math.nan, -2.0, -2.0])
    assert [r.item_id for r in out] == ["b", "c", "a"]
