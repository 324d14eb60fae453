"""Event decoding and validation: valid events parse, everything else names its field."""

from __future__ import annotations

import contextlib
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.core import codec
from stream_rec.core.events import (
    Event,
    EventLimits,
    parse_catalog_item,
    parse_event,
    parse_keyed_event,
)
from stream_rec.errors import InvalidEvent
from stream_rec.local.hostile import KINDS, bad_events

NOW_MS = 1_764_000_000_000


def _raw(**fields: object) -> bytes:
    base: dict[str, object] = {"event_id": "e1", "type": "purchase", "user_id": "u1",
                               "item_id": "85123A", "ts_ms": NOW_MS - 1000}
    base.update(fields)
    return codec.dumps(base)


def test_valid_purchase_parses_with_every_optional_field() -> None:
    event = parse_event(_raw(quantity=6, price=2.55, context={"invoice": "536365"}), NOW_MS)
    assert event == Event(event_id="e1", type="purchase", user_id="u1", ts_ms=NOW_MS - 1000,
                          item_id="85123A", quantity=6, price=2.55,
                          context={"invoice": "536365"})


def test_event_round_trips_through_its_wire_form() -> None:
    event = parse_event(_raw(quantity=2, price=1.5), NOW_MS)
    assert parse_event(codec.dumps(event.to_dict()), NOW_MS) == event


def test_unknown_type_names_the_allowed_types() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(_raw(type="buy"), NOW_MS)
    assert info.value.field == "type"
    assert "'buy'" in str(info.value) and "purchase" in str(info.value)


def test_search_needs_a_query_but_no_item() -> None:
    event = parse_event(_raw(type="search", item_id=None, query="lantern"), NOW_MS)
    assert event.query == "lantern" and event.item_id is None
    with pytest.raises(InvalidEvent, match="'query' is required"):
        parse_event(_raw(type="search", item_id=None), NOW_MS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_hostile_kind_is_rejected_naming_its_field(kind: str) -> None:
    bad = next(b for b in bad_events(len(KINDS), ts_ms=NOW_MS) if b.kind == kind)
    with pytest.raises(InvalidEvent) as info:
        parse_keyed_event(bad.key, bad.value, int(time.time() * 1000), EventLimits())
    assert info.value.field == bad.field


def test_infinite_price_written_as_huge_exponent_is_rejected() -> None:
    raw = _raw()[:-1] + b',"price":1e999}'
    with pytest.raises(InvalidEvent):
        parse_event(raw, NOW_MS)


def test_catalog_item_requires_a_title_and_a_boolean_stock_flag() -> None:
    item = parse_catalog_item(codec.dumps({"item_id": "1", "title": "LANTERN", "price": 3.0}))
    assert item.in_stock and item.title == "LANTERN"
    with pytest.raises(InvalidEvent, match="'in_stock' must be a boolean"):
        parse_catalog_item(codec.dumps({"item_id": "1", "title": "X", "in_stock": "yes"}))
    with pytest.raises(InvalidEvent, match="'title' is required"):
        parse_catalog_item(codec.dumps({"item_id": "1"}))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_either_parse_or_raise_invalid_event(raw: bytes) -> None:
    with contextlib.suppress(InvalidEvent):
        parse_event(raw, NOW_MS)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["event_id", "type", "user_id", "item_id", "ts_ms",
                                        "quantity", "price", "rec_id", "context", "query",
                                        "extra"]), _json, max_size=10))
def test_arbitrary_json_objects_yield_a_valid_event_or_a_named_field(data: dict) -> None:
    try:
        event = parse_event(codec.dumps(data), NOW_MS)
    except InvalidEvent as exc:
        assert exc.field in data or exc.field in ("type", "ts_ms", "event_id", "user_id",
                                                  "item_id", "rec_id", "query") \
            or exc.field.startswith("context.")
        return
    assert event.user_id and event.event_id
    assert event.price is None or math.isfinite(event.price)
