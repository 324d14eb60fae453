"""Amazon Reviews 2018 as preprocessed by MiniOneRec, replayed as a purchase stream.

Files, for one category prefix ``<C>`` (e.g. ``Industrial_and_Scientific``), plain or
``.gz``: ``<C>.valid.csv`` and ``<C>.test.csv`` (samples: history → next item), and the
catalog from ``<C>.item.json`` (``{item_id: {title, ...}}``) and/or ``<C>.info.tsv``
(``semantic_id<TAB>title<TAB>item_id``, no header).

Replay: valid rows, then test rows, in file order. A user's first row emits the history
items, then the target; a later row normally extends the previous one (its history is the
previous history plus the previous target, windowed to the last 10) and emits only the
target. A row that does not extend what was emitted emits the part of its history that does
not overlap the user's emitted tail, then the target. Each event is a ``purchase`` (a review
stands in for one) with ``context={"split": "valid"|"test", "row": <0-based row in that
file>, "role": "history"|"target"}``, which the ``minionerec`` protocol reads.

No timestamps are released, so ``ts_ms`` is synthetic: :data:`SYNTHETIC_START_MS`
(2018-01-01 UTC) plus one minute per event in replay order. Only the order means anything.
``event_id`` is ``az:<user>:<n>`` with ``n`` the user's 0-based event number. Titles are
HTML-unescaped; ``category`` is the item's ``categories`` field (empty in the 2018 files).
"""

from __future__ import annotations

import ast
import csv
import html
import json
from pathlib import Path

from stream_rec.core.events import CatalogItem, Event
from stream_rec.datasets.dataset import Dataset, column_index, find_file, open_text
from stream_rec.errors import DatasetError

__all__ = ["NAME", "SYNTHETIC_START_MS", "SYNTHETIC_STEP_MS", "find_categories",
           "load_amazon_minionerec"]

NAME = "amazon-minionerec"
SYNTHETIC_START_MS = 1_514_764_800_000  # 2018-01-01T00:00:00Z
SYNTHETIC_STEP_MS = 60_000
_SPLITS = ("valid", "test")
_COLUMNS = ("user_id", "history_item_id", "item_id")


def find_categories(data_dir: Path) -> list[str]:
    """Category prefixes that have a test CSV in ``data_dir``, sorted."""
    data_dir = Path(data_dir)
    found = {p.name.split(".test.csv")[0] for p in data_dir.glob("*.test.csv*")
             if p.name.endswith((".test.csv", ".test.csv.gz"))}
    return sorted(found)


def load_amazon_minionerec(data_dir: Path, category: str | None = None) -> Dataset:
    """Load one category's catalog and valid+test samples from ``data_dir``.

    ``category`` may be left out when the directory holds exactly one.
    """
    data_dir = Path(data_dir)
    if category is None:
        found = find_categories(data_dir) if data_dir.is_dir() else []
        if len(found) != 1:
            raise DatasetError(
                f"{NAME}: expected exactly one '<Category>.test.csv[.gz]' in "
                f"{str(data_dir)!r}, found {found or 'none'}; "
                + ("pass category=... to choose" if found else
                   "see the dataset's PROVENANCE.md for the MiniOneRec files"))
        category = found[0]
    catalog = _read_catalog(data_dir, category)
    events: list[Event] = []
    emitted: dict[str, list[str]] = {}
    for split in _SPLITS:
        path = find_file(data_dir, f"{category}.{split}.csv", NAME)
        for row_no, user, history, target in _read_samples(path):
            for role, item_id in _new_items(emitted.get(user, []), history, target):
                seq = emitted.setdefault(user, [])
                events.append(Event(
                    event_id=f"az:{user}:{len(seq)}", type="purchase", user_id=user,
                    item_id=item_id,
                    ts_ms=SYNTHETIC_START_MS + SYNTHETIC_STEP_MS * len(events),
                    context={"split": split, "row": row_no, "role": role}))
                seq.append(item_id)
    return Dataset(name=NAME, catalog=catalog, events=tuple(events))


def _new_items(emitted: list[str], history: list[str], target: str
               ) -> list[tuple[str, str]]:
    """(role, item) pairs a row adds to a user's emitted sequence."""
    overlap = 0
    for size in range(min(len(emitted), len(history)), 0, -1):
        if emitted[-size:] == history[:size]:
            overlap = size
            break
    return [("history", item) for item in history[overlap:]] + [("target", target)]


def _read_samples(path: Path) -> list[tuple[int, str, list[str], str]]:
    samples: list[tuple[int, str, list[str], str]] = []
    with open_text(path, NAME) as text:
        reader = csv.reader(text)
        cols = column_index(next(reader, []), _COLUMNS, path, NAME)
        for row_no, row in enumerate(reader):
            try:
                history = ast.literal_eval(row[cols["history_item_id"]])
                if not isinstance(history, list):
                    raise ValueError("history_item_id is not a list")
                samples.append((row_no, row[cols["user_id"]].strip(),
                                [str(int(item)) for item in history],
                                str(int(row[cols["item_id"]]))))
            except (IndexError, ValueError, SyntaxError, TypeError) as exc:
                raise DatasetError(f"{NAME}: {str(path)!r} data row {row_no} has no readable "
                                   f"user_id/history_item_id/item_id ({exc})") from exc
    return samples


def _read_catalog(data_dir: Path, category: str) -> tuple[CatalogItem, ...]:
    titles: dict[str, str] = {}
    categories: dict[str, str] = {}
    paths = []
    for name in (f"{category}.info.tsv", f"{category}.item.json"):
        try:
            paths.append(find_file(data_dir, name, NAME))
        except DatasetError:
            continue
    if not paths:
        raise DatasetError(f"{NAME}: expected {category}.item.json[.gz] or "
                           f"{category}.info.tsv[.gz] in {str(data_dir)!r} for the catalog")
    for path in paths:
        with open_text(path, NAME) as text:
            if path.name.startswith(f"{category}.info.tsv"):
                for line_no, line in enumerate(text, start=1):
                    parts = line.rstrip("\r\n").split("\t")
                    if len(parts) != 3:
                        raise DatasetError(f"{NAME}: {str(path)!r} line {line_no} is not "
                                           f"semantic_id<TAB>title<TAB>item_id: {line!r}")
                    titles[parts[2].strip()] = parts[1]
            else:
                try:
                    meta = json.load(text)
                except ValueError as exc:
                    raise DatasetError(f"{NAME}: {str(path)!r} is not JSON ({exc})") from exc
                for item_id, fields in meta.items():
                    titles[str(item_id)] = str(fields.get("title") or "")
                    categories[str(item_id)] = _category(fields.get("categories"))
    return tuple(
        CatalogItem(item_id=item_id, title=" ".join(html.unescape(title).split()),
                    category=categories.get(item_id, ""))
        for item_id, title in sorted(titles.items(), key=lambda kv: _id_key(kv[0]))
    )


def _category(value: object) -> str:
    if isinstance(value, list):
        value = " > ".join(str(part) for part in value)
    return html.unescape(str(value or "")).strip()[:256]


def _id_key(item_id: str) -> tuple[int, int | str]:
    return (0, int(item_id)) if item_id.isdigit() else (1, item_id)
