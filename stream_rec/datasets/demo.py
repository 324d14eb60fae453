"""The bundled demo stream: real Online Retail purchases of a subset of customers.

``stream_rec/data/online_retail_demo.jsonl.gz`` holds wire events (``Event.to_dict()`` per
line, time-ordered, real ``ts_ms``) and ``online_retail_catalog.jsonl.gz`` the catalog items
they reference. ``scripts/make_samples.py`` writes both; attribution is in
``stream_rec/data/PROVENANCE.md``.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from stream_rec.core import codec
from stream_rec.core.events import parse_catalog_item, parse_event
from stream_rec.datasets.dataset import Dataset
from stream_rec.errors import DatasetError, InvalidEvent

__all__ = ["CATALOG_FILE", "DEMO_NAME", "EVENTS_FILE", "load_demo", "write_jsonl_gz"]

DEMO_NAME = "online-retail-demo"
EVENTS_FILE = "online_retail_demo.jsonl.gz"
CATALOG_FILE = "online_retail_catalog.jsonl.gz"
_FAR_FUTURE_MS = 2**62


def load_demo() -> Dataset:
    """Read the bundled demo events and catalog, validated as on the wire."""
    data = resources.files("stream_rec") / "data"
    try:
        events = tuple(parse_event(line, now_ms=_FAR_FUTURE_MS)
                       for line in _lines(data / EVENTS_FILE))
        catalog = tuple(parse_catalog_item(line) for line in _lines(data / CATALOG_FILE))
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{DEMO_NAME}: cannot read stream_rec/data/{EVENTS_FILE} or "
                           f"{CATALOG_FILE} ({exc}); reinstall stream-rec or run "
                           "scripts/make_samples.py") from exc
    except InvalidEvent as exc:
        raise DatasetError(f"{DEMO_NAME}: a bundled record is invalid ({exc}); regenerate "
                           "with scripts/make_samples.py") from exc
    return Dataset(name=DEMO_NAME, catalog=catalog, events=events)


def write_jsonl_gz(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write one compact JSON object per line, gzip'd reproducibly (no name, mtime 0)."""
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                              compresslevel=9, mtime=0) as out:
        for record in records:
            out.write(codec.dumps(record) + b"\n")


def _lines(resource: Any) -> Iterator[bytes]:
    with resource.open("rb") as raw, gzip.GzipFile(fileobj=raw) as text:
        for line in text:
            if line.strip():
                yield line
