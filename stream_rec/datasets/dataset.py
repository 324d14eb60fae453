"""The :class:`Dataset` every loader returns, and the file lookup the loaders share."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from stream_rec.core.events import CatalogItem, Event
from stream_rec.errors import DatasetError

__all__ = ["Dataset", "column_index", "find_file", "open_text"]


@dataclass(frozen=True, slots=True)
class Dataset:
    """A catalog plus the whole interaction log as wire events in replay order.

    ``events`` is sorted by ``ts_ms`` (non-decreasing) with a deterministic tie order, and
    every ``event_id`` is unique and the same on every load of the same files.
    """

    name: str
    catalog: tuple[CatalogItem, ...]
    events: tuple[Event, ...]

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, catalog=<{len(self.catalog)} items>, "
                f"events=<{len(self.events)} events>)")


def find_file(data_dir: Path, name: str, dataset: str) -> Path:
    """``data_dir/name`` or ``data_dir/name.gz``, or a DatasetError saying what was expected."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"{dataset}: data directory {str(data_dir)!r} does not exist; "
                           f"pass the directory that holds {name!r}")
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{dataset}: expected {name!r} (or {name + '.gz'!r}) in "
                       f"{str(data_dir)!r}; see the dataset's PROVENANCE.md for where to get it")


def column_index(header: list[str], required: tuple[str, ...], path: Path,
                 dataset: str) -> dict[str, int]:
    """Position of each required column, or a DatasetError naming the missing ones."""
    columns = [name.strip().lstrip("\ufeff") for name in header]
    missing = [name for name in required if name not in columns]
    if missing:
        raise DatasetError(f"{dataset}: {str(path)!r} lacks column(s) {missing}; expected a "
                           f"header with {list(required)}, got {columns}")
    return {name: columns.index(name) for name in required}


@contextmanager
def open_text(path: Path, dataset: str) -> Iterator[TextIO]:
    """Open a UTF-8 text file, gunzipping ``*.gz``; read errors become DatasetError."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8",
                                                                newline="") as text:
                yield text
        else:
            with path.open(encoding="utf-8", newline="") as text:
                yield text
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{dataset}: cannot read {str(path)!r} ({exc}); replace it with "
                           "an intact copy") from exc
