"""JSON encoding for every message stream-rec reads or writes; the only orjson importer."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["DecodeError", "dumps", "loads"]

DecodeError = orjson.JSONDecodeError


def dumps(obj: Any) -> bytes:
    """Serialise to compact JSON bytes (dataclasses and numpy scalars included)."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


def loads(raw: bytes | str) -> Any:
    """Parse JSON; raises :data:`DecodeError` on invalid UTF-8 or JSON (NaN included)."""
    return orjson.loads(raw)
