"""UCI Online Retail (``online_retail.csv.gz``) as a stream of purchase events.

Rows kept: invoices not starting with ``C`` (cancellations), ``Quantity > 0``, a
``CustomerID``, and a product StockCode (:func:`is_product_code`). Exact duplicate rows are
dropped (the file has thousands, as in the original), then lines are merged per
(invoice, StockCode): quantities summed, price the quantity-weighted mean unit price,
time the earliest line's. One ``purchase`` event per (invoice, item):

- ``user_id`` the CustomerID, ``item_id`` the StockCode, ``context={"invoice": InvoiceNo}``;
- ``ts_ms`` from InvoiceDate read as UTC (the shop's local time; the UK is on UTC in
  winter). A few invoices span two minutes, so one invoice can hold two instants;
- ``quantity`` capped at 10,000, the wire limit (three lines in the file exceed it);
- order: time, then invoice, then StockCode; ``event_id`` is ``or:<invoice>:<StockCode>``.

Catalog, over the kept rows only: title the most frequent stripped Description (ties to the
alphabetically first), price the median line unit price, category from
:func:`product_type`; the data has no category of its own.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

from stream_rec.core.events import CatalogItem, Event
from stream_rec.datasets.dataset import Dataset, column_index, find_file, open_text
from stream_rec.errors import DatasetError

__all__ = ["FILE_NAME", "MAX_QUANTITY", "NAME", "is_product_code", "load_online_retail",
           "product_type"]

NAME = "online-retail"
FILE_NAME = "online_retail.csv.gz"
MAX_QUANTITY = 10_000
_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
            "CustomerID")
# Products are five digits plus an optional one- or two-letter variant (85123A, 15056BL).
# Every other code in the file is a fee or an adjustment: POST, DOT, C2 (carriage), M/m
# (manual), D (discount), S (samples), B (bad debt), CRUK (charity), PADS, BANK CHARGES,
# AMAZONFEE, gift_0001_* (vouchers), DCGS* (consignment lines).
_PRODUCT_CODE = re.compile(r"^[0-9]{5}[A-Za-z]{0,2}$")

# Words skipped when looking for a description's head noun: colours, patterns, sizes and
# other modifiers that often end a product name ("JUMBO BAG RED RETROSPOT").
_MODIFIERS = frozenset((
    "ASSORTED", "BLACK", "BLUE", "BROWN", "CHRISTMAS", "COLOUR", "COLOURS", "CREAM", "DESIGN",
    "DESIGNS", "DOTS", "EDWARDIAN", "FLORAL", "GOLD", "GREEN", "GREY", "IVORY", "JUMBO", "LARGE",
    "LONDON", "MEDIUM", "MINI", "NATURAL", "ORANGE", "PAISLEY", "PANTRY", "PINK", "POLKADOT",
    "PURPLE", "RED", "RETRO", "RETROSPOT", "ROSE", "ROUND", "SCANDINAVIAN", "SET", "SILVER",
    "SKULL", "SKULLS", "SMALL", "SPACEBOY", "SPOT", "SPOTS", "STRIPE", "STRIPES", "TRADITIONAL",
    "VINTAGE", "WHITE", "WOODLAND", "YELLOW",
))
_WORD = re.compile(r"[A-Z][A-Z'-]*[A-Z]")


def is_product_code(stock_code: str) -> bool:
    """True for product StockCodes (``85123A``), False for fees, postage and adjustments."""
    return _PRODUCT_CODE.match(stock_code) is not None


def product_type(description: str) -> str:
    """Coarse product type: the description's last word that is not a modifier, singular.

    >>> product_type("WHITE HANGING HEART T-LIGHT HOLDER")
    'HOLDER'
    >>> product_type("JUMBO BAG RED RETROSPOT")
    'BAG'
    >>> product_type("SET OF 3 CAKE TINS PANTRY DESIGN")
    'TIN'
    """
    words = [w for w in _WORD.findall(description.upper()) if len(w) >= 3]
    for word in reversed(words):
        if word not in _MODIFIERS:
            return _singular(word)
    return "OTHER"


def _singular(word: str) -> str:
    if word.endswith("IES") and len(word) > 4:
        return word[:-3] + "Y"
    if word.endswith(("XES", "CHES", "SHES", "SSES")):
        return word[:-2]
    if word.endswith("S") and not word.endswith(("SS", "US", "IS")) and len(word) > 3:
        return word[:-1]
    return word


def load_online_retail(data_dir: Path) -> Dataset:
    """Load ``online_retail.csv.gz`` (or ``online_retail.csv``) from ``data_dir``."""
    path = find_file(data_dir, FILE_NAME.removesuffix(".gz"), NAME)
    seen_rows: set[tuple[str, ...]] = set()
    times: dict[str, int] = {}
    # (invoice, code) -> (ts_ms, customer, quantity, price * quantity)
    lines: dict[tuple[str, str], tuple[int, str, int, float]] = {}
    titles: defaultdict[str, Counter[str]] = defaultdict(Counter)
    prices: defaultdict[str, list[float]] = defaultdict(list)
    with open_text(path, NAME) as text:
        reader = csv.reader(text)
        cols = column_index(next(reader, []), _COLUMNS, path, NAME)
        inv_c, code_c, desc_c, qty_c, date_c, price_c, cust_c = (cols[c] for c in _COLUMNS)
        for line_no, row in enumerate(reader, start=2):
            try:
                invoice, code, customer = row[inv_c], row[code_c], row[cust_c]
                if invoice.startswith("C") or not customer or not is_product_code(code):
                    continue
                quantity = int(row[qty_c])
                if quantity <= 0:
                    continue
                key = tuple(row)
                if key in seen_rows:
                    continue
                seen_rows.add(key)
                price = float(row[price_c])
                date = row[date_c]
                ts_ms = times.get(date)
                if ts_ms is None:
                    ts_ms = times[date] = _parse_ms(date)
                customer = customer.removesuffix(".0")
            except (IndexError, ValueError) as exc:
                raise DatasetError(f"{NAME}: {str(path)!r} line {line_no} cannot be read as "
                                   f"{list(_COLUMNS)}: {row!r} ({exc})") from exc
            merged = lines.get((invoice, code))
            if merged is None:
                lines[(invoice, code)] = (ts_ms, customer, quantity, price * quantity)
            else:
                lines[(invoice, code)] = (min(merged[0], ts_ms), customer,
                                          merged[2] + quantity, merged[3] + price * quantity)
            titles[code][row[desc_c].strip()] += 1
            prices[code].append(price)
    order = sorted(lines, key=lambda key: (lines[key][0], key))
    events = tuple(
        Event(event_id=f"or:{invoice}:{code}", type="purchase", user_id=lines[key][1],
              item_id=code, ts_ms=lines[key][0], quantity=min(lines[key][2], MAX_QUANTITY),
              price=round(lines[key][3] / lines[key][2], 4), context={"invoice": invoice})
        for key in order
        for invoice, code in (key,)
    )
    catalog = tuple(_catalog_item(code, titles[code], prices[code]) for code in sorted(titles))
    return Dataset(name=NAME, catalog=catalog, events=events)


def _catalog_item(code: str, titles: Counter[str], prices: list[float]) -> CatalogItem:
    named = [(-count, title) for title, count in titles.items() if title]
    title = min(named)[1] if named else code
    return CatalogItem(item_id=code, title=title, category=product_type(title),
                       price=round(statistics.median(prices), 4))


def _parse_ms(date: str) -> int:
    """``YYYY-MM-DD HH:MM[:SS]`` read as UTC, in milliseconds."""
    parsed = datetime.fromisoformat(date.strip()).replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1000
