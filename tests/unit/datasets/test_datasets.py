"""Dataset loaders on the tiny vendored samples (tests/data), the bundled demo, and the
smaller shared datasets (skipped when /work/shared/data is absent)."""

from __future__ import annotations

import csv
import gzip
import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.core.events import parse_catalog_item, parse_event
from stream_rec.datasets import Dataset, load_dataset, load_demo
from stream_rec.datasets.amazon_minionerec import (
    SYNTHETIC_START_MS,
    SYNTHETIC_STEP_MS,
    find_categories,
    load_amazon_minionerec,
)
from stream_rec.datasets.online_retail import is_product_code, product_type
from stream_rec.errors import ConfigError, DatasetError

DATA = Path(__file__).resolve().parents[2] / "data"
CATEGORY = "Industrial_and_Scientific"
AMAZON_HEADER = ["user_id", "history_item_title", "item_title", "history_item_id", "item_id",
                 "history_item_sid", "item_sid"]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _assert_replayable(dataset: Dataset) -> None:
    stamps = [e.ts_ms for e in dataset.events]
    assert stamps == sorted(stamps), "ts_ms must be non-decreasing"
    ids = [e.event_id for e in dataset.events]
    assert len(set(ids)) == len(ids), "event ids must be unique"
    catalog_ids = {item.item_id for item in dataset.catalog}
    assert len(catalog_ids) == len(dataset.catalog)


@pytest.fixture(scope="module")
def movielens() -> Dataset:
    return load_dataset("movielens", DATA / "movielens")


@pytest.fixture(scope="module")
def retail() -> Dataset:
    return load_dataset("online-retail", DATA / "online_retail")


@pytest.fixture(scope="module")
def amazon() -> Dataset:
    return load_dataset("amazon-minionerec", DATA / "amazon_minionerec")


@pytest.fixture(scope="module")
def demo() -> Dataset:
    return load_demo()


# --- MovieLens ----------------------------------------------------------------------------

def test_movielens_emits_one_purchase_per_rating(movielens: Dataset) -> None:
    ratings = _csv_rows(DATA / "movielens" / "ratings.csv")
    assert len(movielens.events) == len(ratings)
    assert {e.type for e in movielens.events} == {"purchase"}
    first = ratings[0]
    event = next(e for e in movielens.events
                 if e.event_id == f"ml:{first['userId']}:{first['movieId']}")
    assert event.user_id == first["userId"] and event.item_id == first["movieId"]
    assert event.ts_ms == int(first["timestamp"]) * 1000
    assert event.quantity == 1 and event.context == {"rating": float(first["rating"])}


def test_movielens_catalog_keeps_title_with_year_and_pipe_joined_genres(
        movielens: Dataset) -> None:
    movies = _csv_rows(DATA / "movielens" / "movies.csv")
    assert len(movielens.catalog) == len(movies)
    by_id = {item.item_id: item for item in movielens.catalog}
    for row in movies[:20]:
        item = by_id[row["movieId"]]
        assert item.title == row["title"]
        assert item.category == ("" if row["genres"] == "(no genres listed)" else row["genres"])


def test_movielens_breaks_timestamp_ties_by_user_then_movie(movielens: Dataset) -> None:
    keys = [(e.ts_ms, int(e.user_id), int(e.item_id or 0)) for e in movielens.events]
    assert keys == sorted(keys)


def test_movielens_full_dataset_has_every_rating(shared_data: Callable[[str], Path]) -> None:
    dataset = load_dataset("movielens", shared_data("movielens-latest-small"))
    assert len(dataset.events) == 100_836
    assert len(dataset.catalog) == 9_742
    assert len({e.user_id for e in dataset.events}) == 610
    _assert_replayable(dataset)


# --- Online Retail ------------------------------------------------------------------------

def test_online_retail_keeps_only_customer_product_purchases(retail: Dataset) -> None:
    rows = _csv_rows(DATA / "online_retail" / "online_retail.csv.gz")
    expected = {(r["InvoiceNo"], r["StockCode"]) for r in rows
                if not r["InvoiceNo"].startswith("C") and int(r["Quantity"]) > 0
                and r["CustomerID"] and r["StockCode"] not in {"POST", "M"}}
    got = {(e.context["invoice"], e.item_id) for e in retail.events}
    assert got == expected
    assert not any(str(e.context["invoice"]).startswith("C") for e in retail.events)
    assert "536596" not in {e.context["invoice"] for e in retail.events}  # no CustomerID


def test_online_retail_exact_duplicate_rows_count_once(retail: Dataset) -> None:
    # the sample holds two identical lines: 536863,20727,...,1,2010-12-03 11:19,1.65,17967
    event = next(e for e in retail.events if e.event_id == "or:536863:20727")
    assert event.quantity == 1


def test_online_retail_sums_quantities_of_distinct_lines(retail: Dataset) -> None:
    # 536863 has item 22147 on two different lines, quantities 1 and 3
    event = next(e for e in retail.events if e.event_id == "or:536863:22147")
    assert (event.quantity, event.price, event.user_id) == (4, 1.45, "17967")


def test_online_retail_item_on_two_minutes_takes_the_earlier(retail: Dataset) -> None:
    # 578548/84347 has lines at 2011-11-24 15:02 and 15:03 (UTC)
    event = next(e for e in retail.events if e.event_id == "or:578548:84347")
    assert event.ts_ms == 1_322_146_920_000


def test_online_retail_orders_by_time_then_invoice_then_stock_code(retail: Dataset) -> None:
    keys = [(e.ts_ms, e.context["invoice"], e.item_id) for e in retail.events]
    assert keys == sorted(keys)


def test_online_retail_catalog_covers_exactly_the_purchased_items(retail: Dataset) -> None:
    assert {item.item_id for item in retail.catalog} == {e.item_id for e in retail.events}
    for item in retail.catalog:
        assert item.title and item.title == item.title.strip()
        assert item.category and item.price is not None and item.price >= 0


@pytest.mark.parametrize(("description", "kind"), [
    ("WHITE HANGING HEART T-LIGHT HOLDER", "HOLDER"),
    ("JUMBO BAG RED RETROSPOT", "BAG"),
    ("SET OF 3 CAKE TINS PANTRY DESIGN", "TIN"),
    ("PACK OF 72 RETROSPOT CAKE CASES", "CASE"),
    ("HAND WARMER UNION JACK", "JACK"),
    ("REGENCY CAKESTAND 3 TIER", "TIER"),
    ("ASSORTED COLOURS SILK FAN", "FAN"),
    ("PINK", "OTHER"),
])
def test_product_type_is_the_last_non_modifier_word_in_singular(description: str,
                                                                kind: str) -> None:
    assert product_type(description) == kind


@pytest.mark.parametrize(("code", "is_product"), [
    ("85123A", True), ("22423", True), ("15056BL", True), ("POST", False), ("DOT", False),
    ("M", False), ("m", False), ("C2", False), ("BANK CHARGES", False), ("AMAZONFEE", False),
    ("gift_0001_20", False), ("DCGS0003", False), ("DCGSSBOY", False), ("CRUK", False),
])
def test_only_five_digit_stock_codes_are_products(code: str, is_product: bool) -> None:
    assert is_product_code(code) is is_product


# --- Amazon / MiniOneRec ------------------------------------------------------------------

def test_amazon_emits_history_before_the_first_target(amazon: Dataset) -> None:
    rows = _csv_rows(DATA / "amazon_minionerec" / f"{CATEGORY}.valid.csv.gz")
    first = rows[0]
    user_events = [e for e in amazon.events if e.user_id == first["user_id"]]
    history = [str(i) for i in json.loads(first["history_item_id"])]
    assert [e.item_id for e in user_events[:len(history) + 1]] == [*history, first["item_id"]]
    assert [e.context["role"] for e in user_events[:len(history) + 1]] == \
        ["history"] * len(history) + ["target"]


def test_amazon_emits_one_target_per_csv_row_in_row_order(amazon: Dataset) -> None:
    targets = [e for e in amazon.events if e.context["role"] == "target"]
    for split in ("valid", "test"):
        rows = _csv_rows(DATA / "amazon_minionerec" / f"{CATEGORY}.{split}.csv.gz")
        mine = [e for e in targets if e.context["split"] == split]
        assert [(e.user_id, e.item_id) for e in mine] == \
            [(r["user_id"], r["item_id"]) for r in rows]
        assert [e.context["row"] for e in mine] == list(range(len(rows)))


def test_amazon_each_row_sees_its_history_as_the_users_latest_events(amazon: Dataset) -> None:
    for split in ("valid", "test"):
        rows = _csv_rows(DATA / "amazon_minionerec" / f"{CATEGORY}.{split}.csv.gz")
        for row_no, row in enumerate(rows):
            index = next(i for i, e in enumerate(amazon.events)
                         if e.context == {"split": split, "row": row_no, "role": "target"})
            before = [e.item_id for e in amazon.events[:index] if e.user_id == row["user_id"]]
            history = [str(i) for i in json.loads(row["history_item_id"])]
            assert before[-len(history):] == history


def test_amazon_timestamps_are_synthetic_minutes_in_row_order(amazon: Dataset) -> None:
    assert [e.ts_ms for e in amazon.events] == [
        SYNTHETIC_START_MS + SYNTHETIC_STEP_MS * i for i in range(len(amazon.events))]


def test_amazon_catalog_comes_from_item_json(amazon: Dataset) -> None:
    with gzip.open(DATA / "amazon_minionerec" / f"{CATEGORY}.item.json.gz", "rt") as f:
        meta = json.load(f)
    assert [item.item_id for item in amazon.catalog] == sorted(meta, key=int)


def _write_amazon(directory: Path, category: str, rows: dict[str, list[list[str]]],
                  titles: dict[str, str]) -> None:
    for split, split_rows in rows.items():
        with (directory / f"{category}.{split}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(AMAZON_HEADER)
            writer.writerows(split_rows)
    (directory / f"{category}.info.tsv").write_text(
        "".join(f"<a_{i}>\t{title}\t{i}\n" for i, title in titles.items()))


def _row(user: str, history: list[int], target: int) -> list[str]:
    return [user, "[]", "", repr(history), str(target), "[]", ""]


def test_amazon_row_that_does_not_extend_the_last_emits_only_what_is_new(
        tmp_path: Path) -> None:
    rows = {"valid": [_row("A1", [1, 2], 3)],
            "test": [_row("A1", [2, 3, 9], 4),   # 9 is new: emit 9 then 4
                     _row("A1", [7, 8], 5)]}      # no overlap at all: emit 7, 8, 5
    _write_amazon(tmp_path, "Toys", rows, {str(i): f"Item {i}" for i in range(10)})
    dataset = load_amazon_minionerec(tmp_path)
    assert [e.item_id for e in dataset.events] == ["1", "2", "3", "9", "4", "7", "8", "5"]


def test_amazon_titles_are_html_unescaped(tmp_path: Path) -> None:
    _write_amazon(tmp_path, "Tools", {"valid": [], "test": [_row("A1", [1], 2)]},
                  {"1": "T&Uuml;RLEN Dial &amp; Gauge", "2": "Tape 2&quot;"})
    titles = {item.item_id: item.title for item in load_amazon_minionerec(tmp_path).catalog}
    assert titles == {"1": "TÜRLEN Dial & Gauge", "2": 'Tape 2"'}


def test_amazon_with_two_categories_asks_which(tmp_path: Path) -> None:
    for category in ("Toys", "Tools"):
        _write_amazon(tmp_path, category, {"valid": [], "test": [_row("A1", [1], 2)]},
                      {"1": "a", "2": "b"})
    assert find_categories(tmp_path) == ["Tools", "Toys"]
    with pytest.raises(DatasetError, match="pass category="):
        load_amazon_minionerec(tmp_path)
    assert len(load_amazon_minionerec(tmp_path, category="Toys").events) == 2


@st.composite
def _windowed_rows(draw: st.DrawFn) -> tuple[list[int], int, list[tuple[list[int], int]]]:
    seq = draw(st.lists(st.integers(0, 6), min_size=2, max_size=30))
    start = draw(st.integers(1, len(seq) - 1))
    rows = [(seq[max(0, j - 10):j], seq[j]) for j in range(start, len(seq))]
    return seq, start, rows


@settings(max_examples=40, deadline=None)
@given(_windowed_rows())
def test_amazon_replay_of_windowed_rows_recovers_the_user_sequence(
        case: tuple[list[int], int, list[tuple[list[int], int]]]) -> None:
    seq, start, rows = case
    with tempfile.TemporaryDirectory() as tmp:
        half = len(rows) // 2
        _write_amazon(Path(tmp), "Cat",
                      {"valid": [_row("A7", h, t) for h, t in rows[:half]],
                       "test": [_row("A7", h, t) for h, t in rows[half:]]},
                      {str(i): f"Item {i}" for i in range(7)})
        events = load_amazon_minionerec(Path(tmp)).events
    assert [e.item_id for e in events] == [str(i) for i in seq[max(0, start - 10):]]


def test_amazon_full_category_replays_every_sample(shared_data: Callable[[str], Path]) -> None:
    path = shared_data("amazon18-industrial-scientific-minionerec")
    dataset = load_dataset("amazon-minionerec", path)
    roles = Counter((e.context["split"], e.context["role"]) for e in dataset.events)
    assert roles[("valid", "target")] == 4_532
    assert roles[("test", "target")] == 4_533
    assert len(dataset.catalog) == 3_686
    assert len({e.user_id for e in dataset.events}) == 3_285
    _assert_replayable(dataset)


# --- Demo and every dataset ---------------------------------------------------------------

def test_demo_is_a_real_time_ordered_purchase_stream(demo: Dataset) -> None:
    assert demo.name == "online-retail-demo"
    assert len(demo.events) >= 20_000
    assert 700 <= len({e.user_id for e in demo.events}) <= 800
    assert {e.type for e in demo.events} == {"purchase"}
    first, last = demo.events[0].ts_ms, demo.events[-1].ts_ms
    assert last - first > 300 * 86_400_000  # spans most of 2010-12 .. 2011-12


def test_demo_catalog_covers_every_event_item(demo: Dataset) -> None:
    assert {e.item_id for e in demo.events} == {item.item_id for item in demo.catalog}


def test_demo_events_round_trip_through_the_wire_decoder(demo: Dataset) -> None:
    from stream_rec.core import codec
    for event in demo.events[:500]:
        assert parse_event(codec.dumps(event.to_dict()), now_ms=2**62) == event
    for item in demo.catalog[:100]:
        assert parse_catalog_item(codec.dumps(item.to_dict())) == item


@pytest.fixture(params=["movielens", "retail", "amazon", "demo"])
def any_dataset(request: pytest.FixtureRequest) -> Iterator[Dataset]:
    yield request.getfixturevalue(request.param)


def test_every_dataset_is_time_ordered_with_unique_event_ids(any_dataset: Dataset) -> None:
    _assert_replayable(any_dataset)


def test_every_dataset_references_only_catalog_items(any_dataset: Dataset) -> None:
    catalog = {item.item_id for item in any_dataset.catalog}
    assert {e.item_id for e in any_dataset.events} <= catalog


def test_loading_twice_gives_identical_events(retail: Dataset) -> None:
    assert load_dataset("online-retail", DATA / "online_retail") == retail


# --- Registry errors ----------------------------------------------------------------------

def test_missing_file_error_names_the_file_and_the_directory(tmp_path: Path) -> None:
    expected = r"expected 'online_retail\.csv'.*" + re.escape(str(tmp_path))
    with pytest.raises(DatasetError, match=expected):
        load_dataset("online-retail", tmp_path)
    with pytest.raises(DatasetError, match=r"movies\.csv"):
        load_dataset("movielens", tmp_path)


def test_missing_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("movielens", tmp_path / "nowhere")


def test_unknown_dataset_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="amazon-minionerec"):
        load_dataset("netflix", tmp_path)


def test_missing_column_is_named(tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A (1999),Drama\n")
    (tmp_path / "ratings.csv").write_text("userId,movieId,score\n1,1,4.0\n")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['rating', 'timestamp'\]"):
        load_dataset("movielens", tmp_path)


def test_unreadable_row_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A (1999),Drama\n")
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,x,4.0,964982703\n")
    with pytest.raises(DatasetError, match="line 3"):
        load_dataset("movielens", tmp_path)


def test_corrupt_gzip_is_a_dataset_error(tmp_path: Path) -> None:
    (tmp_path / "online_retail.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset("online-retail", tmp_path)
