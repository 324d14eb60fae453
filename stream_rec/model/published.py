"""Catalog item vectors as records of the compacted item-vectors topic.

The embedder process (``--role embedder``) publishes one record per item, keyed by item id;
serving workers fold them into their :class:`~stream_rec.model.semantic.SemanticIndex`
instead of holding the model. Value: orjson ``{"item_id", "model", "dim", "f32"}`` with the
vector as base64 of little-endian float32 (3.4 kB for a 640-d vector).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from stream_rec.core import codec
from stream_rec.errors import InvalidEvent

__all__ = ["PublishedVector", "parse_vector_record", "vector_record"]


@dataclass(frozen=True, slots=True)
class PublishedVector:
    """One item's vector and the model that made it."""

    item_id: str
    model: str
    vector: np.ndarray


def vector_record(item_id: str, model: str, vector: np.ndarray) -> tuple[bytes, bytes]:
    """(key, value) of the item-vectors record for ``item_id``."""
    data = np.asarray(vector, dtype="<f4")
    return item_id.encode(), codec.dumps({"item_id": item_id, "model": model,
                                          "dim": int(data.shape[0]),
                                          "f32": base64.b64encode(data.tobytes()).decode()})


def parse_vector_record(value: bytes) -> PublishedVector:
    """Decode a record of the item-vectors topic; raises :class:`InvalidEvent`."""
    try:
        doc = codec.loads(value)
        item_id, model, dim = doc["item_id"], doc["model"], int(doc["dim"])
        vector = np.frombuffer(base64.b64decode(doc["f32"], validate=True), dtype="<f4")
    except (codec.DecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidEvent("<vector>", "must be an item-vectors record", repr(exc)[:80]) from exc
    if not isinstance(item_id, str) or not item_id or not isinstance(model, str):
        raise InvalidEvent("item_id", "must be a non-empty string", repr(item_id)[:80])
    if vector.shape != (dim,) or dim < 1 or not np.all(np.isfinite(vector)):
        raise InvalidEvent("f32", f"must hold {dim} finite float32 values", str(vector.shape))
    return PublishedVector(item_id, model, vector.astype(np.float32))
