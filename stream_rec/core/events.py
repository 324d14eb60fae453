"""Wire types: user events, catalog items and recommendation messages.

Events are validated at the edge: :func:`parse_event` turns raw bytes into an
:class:`Event` or raises :class:`~stream_rec.errors.InvalidEvent` naming the field, the
rule and the value. Nothing downstream re-checks what is validated here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_rec.core import codec
from stream_rec.errors import InvalidEvent

__all__ = [
    "EVENT_TYPES",
    "FALLBACK_REASONS",
    "ITEM_EVENT_TYPES",
    "CatalogItem",
    "Event",
    "EventLimits",
    "RecItem",
    "Recommendation",
    "parse_catalog_item",
    "parse_event",
    "parse_keyed_event",
    "parse_recommendation",
]

EVENT_TYPES = ("add_to_cart", "purchase", "rec_click", "rec_request", "remove_from_cart",
               "search", "view")
ITEM_EVENT_TYPES = frozenset({"view", "add_to_cart", "remove_from_cart", "purchase", "rec_click"})
_FIELDS = frozenset({"event_id", "type", "user_id", "item_id", "ts_ms", "quantity", "price",
                     "rec_id", "context", "query"})
_CATALOG_FIELDS = frozenset({"item_id", "title", "category", "price", "in_stock"})
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+\-]{0,127}$")
_MIN_TS_MS = 631_152_000_000  # 1990-01-01 (MovieLens starts in 1996)
_MAX_QUANTITY = 10_000
_MAX_PRICE = 1_000_000.0
# Why a recommendation is tagged ``degraded`` (the fast order was sent instead):
#   deadline        the LLM arm's answer did not come back within llm_deadline_ms
#   shed            the SLM worker's pending-rerank table was full (load shedding)
#   llm_busy        the LLM worker's in-flight queue was full (load shedding)
#   llm_error       the LLM backend failed or answered with something unusable
#   model_timeout   the in-process rerank missed model_deadline_ms
#   model_busy      the in-process model pool was full
#   model_error     the in-process model failed
FALLBACK_REASONS = ("deadline", "shed", "llm_busy", "llm_error", "model_timeout",
                    "model_busy", "model_error")


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Bounds applied to every event; the worker builds one from Settings."""

    max_bytes: int = 16_384
    max_context_keys: int = 32
    max_text_chars: int = 256
    max_future_skew_ms: int = 86_400_000


@dataclass(frozen=True, slots=True)
class Event:
    """One validated user event."""

    event_id: str
    type: str
    user_id: str
    ts_ms: int
    item_id: str | None = None
    quantity: int = 1
    price: float | None = None
    rec_id: str | None = None
    query: str | None = None
    context: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event_id": self.event_id, "type": self.type,
                               "user_id": self.user_id, "ts_ms": self.ts_ms}
        if self.item_id is not None:
            out["item_id"] = self.item_id
        if self.quantity != 1:
            out["quantity"] = self.quantity
        for name in ("price", "rec_id", "query"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.context:
            out["context"] = dict(self.context)
        return out


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One catalog entry, keyed by ``item_id`` on the compacted catalog topic."""

    item_id: str
    title: str
    category: str = ""
    price: float | None = None
    in_stock: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "title": self.title, "category": self.category,
                "price": self.price, "in_stock": self.in_stock}


@dataclass(frozen=True, slots=True)
class RecItem:
    """One recommended item with its score and a reason grounded in the user's events."""

    item_id: str
    score: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "score": round(self.score, 6), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One message on the recommendations topic."""

    rec_id: str
    user_id: str
    items: tuple[RecItem, ...]
    arm: str
    model: str
    trigger_event_id: str
    generated_at_ms: int
    latency_ms: float
    degraded: bool = False
    fallback_reason: str | None = None  # one of FALLBACK_REASONS when degraded
    trigger_ts_ms: int = 0  # the trigger event's ts_ms: attribution windows use event time

    def to_dict(self) -> dict[str, Any]:
        return {
            "rec_id": self.rec_id,
            "user_id": self.user_id,
            "items": [item.to_dict() for item in self.items],
            "arm": self.arm,
            "model": self.model,
            "trigger_event_id": self.trigger_event_id,
            "trigger_ts_ms": self.trigger_ts_ms,
            "generated_at_ms": self.generated_at_ms,
            "latency_ms": round(self.latency_ms, 3),
            "degraded": self.degraded,
            "fallback_reason": self.fallback_reason,
        }


def parse_event(raw: bytes, now_ms: int, limits: EventLimits = EventLimits()) -> Event:
    """Decode and validate one event, or raise InvalidEvent naming field, rule and value."""
    if len(raw) > limits.max_bytes:
        raise InvalidEvent("<message>", f"must be at most {limits.max_bytes} bytes", len(raw))
    data = decode_object(raw)
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise InvalidEvent(unknown[0], f"is not a known field (known: {sorted(_FIELDS)})",
                           data[unknown[0]])
    event_type = _required(data, "type")
    if event_type not in EVENT_TYPES:
        raise InvalidEvent("type", f"must be one of {list(EVENT_TYPES)}", event_type)
    ts_ms = _int(data, "ts_ms", required=True)
    assert ts_ms is not None
    if ts_ms < _MIN_TS_MS or ts_ms > now_ms + limits.max_future_skew_ms:
        raise InvalidEvent("ts_ms", "must be after 1990-01-01 and not more than "
                           f"{limits.max_future_skew_ms // 1000} s in the future", ts_ms)
    item_id = _identifier(data, "item_id", required=event_type in ITEM_EVENT_TYPES)
    quantity = _int(data, "quantity", required=False)
    if quantity is not None and not 1 <= quantity <= _MAX_QUANTITY:
        raise InvalidEvent("quantity", f"must be between 1 and {_MAX_QUANTITY}", quantity)
    rec_id = _identifier(data, "rec_id", required=event_type == "rec_click")
    query = _text(data, "query", limits.max_text_chars, required=event_type == "search")
    return Event(
        event_id=_identifier(data, "event_id", required=True) or "",
        type=event_type,
        user_id=_identifier(data, "user_id", required=True) or "",
        ts_ms=ts_ms,
        item_id=item_id,
        quantity=quantity if quantity is not None else 1,
        price=_price(data),
        rec_id=rec_id,
        query=query,
        context=_context(data, limits),
    )


def parse_recommendation(raw: bytes) -> Recommendation:
    """Decode a message of the recs topic (what the attribution agent reads).

    Checks what attribution relies on (ids, arm, items, times, flags); raises
    :class:`InvalidEvent` naming the field otherwise. ``trigger_ts_ms`` defaults to
    ``generated_at_ms`` for messages written before it existed.
    """
    data = decode_object(raw)
    items_raw = data.get("items")
    if not isinstance(items_raw, list):
        raise InvalidEvent("items", "must be a list", items_raw)
    items = []
    for entry in items_raw:
        if not isinstance(entry, dict):
            raise InvalidEvent("items", "must hold objects", entry)
        score = entry.get("score", 0.0)
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise InvalidEvent("items.score", "must be a number", score)
        items.append(RecItem(_identifier(entry, "item_id", required=True) or "", float(score),
                             str(entry.get("reason", ""))))
    generated = _int(data, "generated_at_ms", required=True)
    assert generated is not None
    trigger_ts = _int(data, "trigger_ts_ms", required=False)
    latency = data.get("latency_ms", 0.0)
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
        raise InvalidEvent("latency_ms", "must be a number >= 0", latency)
    degraded = data.get("degraded", False)
    if not isinstance(degraded, bool):
        raise InvalidEvent("degraded", "must be a boolean", degraded)
    reason = data.get("fallback_reason")
    if reason is not None and reason not in FALLBACK_REASONS:
        raise InvalidEvent("fallback_reason", f"must be null or one of {list(FALLBACK_REASONS)}",
                           reason)
    arm = data.get("arm")
    if not isinstance(arm, str) or not arm:
        raise InvalidEvent("arm", "must be a non-empty string", arm)
    return Recommendation(
        rec_id=_identifier(data, "rec_id", required=True) or "",
        user_id=_identifier(data, "user_id", required=True) or "",
        items=tuple(items),
        arm=arm,
        model=str(data.get("model", "")),
        trigger_event_id=str(data.get("trigger_event_id", "")),
        generated_at_ms=generated,
        latency_ms=float(latency),
        degraded=degraded,
        fallback_reason=reason,
        trigger_ts_ms=trigger_ts if trigger_ts is not None else generated,
    )


def parse_catalog_item(raw: bytes, limits: EventLimits = EventLimits()) -> CatalogItem:
    """Decode and validate one catalog record."""
    if len(raw) > limits.max_bytes:
        raise InvalidEvent("<message>", f"must be at most {limits.max_bytes} bytes", len(raw))
    data = decode_object(raw)
    unknown = sorted(set(data) - _CATALOG_FIELDS)
    if unknown:
        raise InvalidEvent(unknown[0], f"is not a known catalog field "
                           f"(known: {sorted(_CATALOG_FIELDS)})", data[unknown[0]])
    in_stock = data.get("in_stock", True)
    if not isinstance(in_stock, bool):
        raise InvalidEvent("in_stock", "must be a boolean", in_stock)
    return CatalogItem(
        item_id=_identifier(data, "item_id", required=True) or "",
        title=_text(data, "title", 512, required=True) or "",
        category=_text(data, "category", limits.max_text_chars, required=False) or "",
        price=_price(data),
        in_stock=in_stock,
    )


def parse_keyed_event(key: bytes | None, raw: bytes | None, now_ms: int,
                      limits: EventLimits = EventLimits()) -> Event:
    """An event as read from the events topic: valid, and keyed by its own ``user_id``
    (state is partitioned by user), or :class:`InvalidEvent` saying which rule failed."""
    event = parse_event(raw or b"", now_ms, limits)
    if key is None or key != event.user_id.encode():
        shown = None if key is None else key[:64].decode("utf-8", "replace")
        raise InvalidEvent("<key>", "must equal user_id (events are partitioned by user)",
                           shown)
    return event


def decode_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, or :class:`InvalidEvent` saying why it is not one."""
    try:
        data = codec.loads(raw)
    except codec.DecodeError as exc:
        raise InvalidEvent("<message>", "must be valid UTF-8 JSON", str(exc)) from exc
    if not isinstance(data, dict):
        raise InvalidEvent("<message>", "must be a JSON object", type(data).__name__)
    return data


def _required(data: Mapping[str, Any], name: str) -> Any:
    if name not in data or data[name] is None:
        raise InvalidEvent(name, "is required", None)
    return data[name]


def _identifier(data: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidEvent(name, "is required", None)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent(name, "must be a string", value)
    text = str(value)
    if not _ID_RE.match(text):
        raise InvalidEvent(name, "must be 1-128 characters of letters, digits and _.:@/+-, "
                           "starting with a letter or digit", value)
    return text


def _int(data: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidEvent(name, "is required", None)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(name, "must be an integer", value)
    return value


def _price(data: Mapping[str, Any]) -> float | None:
    value = data.get("price")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent("price", "must be a number", value)
    if not math.isfinite(value) or not 0 <= value <= _MAX_PRICE:
        raise InvalidEvent("price", f"must be a finite number between 0 and {_MAX_PRICE:g}",
                           value)
    return float(value)


def _text(data: Mapping[str, Any], name: str, max_chars: int, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidEvent(name, "is required", None)
        return None
    if not isinstance(value, str):
        raise InvalidEvent(name, "must be a string", value)
    if len(value) > max_chars:
        raise InvalidEvent(name, f"must be at most {max_chars} characters", len(value))
    if any(ch in value for ch in "\x00\r\n") and name != "query":
        raise InvalidEvent(name, "must not contain NUL or line breaks", value)
    return value


def _context(data: Mapping[str, Any], limits: EventLimits) -> dict[str, str | int | float | bool]:
    value = data.get("context")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent("context", "must be a JSON object", value)
    if len(value) > limits.max_context_keys:
        raise InvalidEvent("context", f"must have at most {limits.max_context_keys} keys",
                           len(value))
    out: dict[str, str | int | float | bool] = {}
    for key, item in value.items():
        if len(key) > 64:
            raise InvalidEvent("context", "keys must be at most 64 characters", key)
        if isinstance(item, str):
            if len(item) > limits.max_text_chars:
                raise InvalidEvent(f"context.{key}",
                                   f"must be at most {limits.max_text_chars} characters",
                                   len(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidEvent(f"context.{key}", "must be a finite number", item)
        elif not isinstance(item, bool | int | float):
            raise InvalidEvent(f"context.{key}",
                               "must be a string, number or boolean (no nesting)", item)
        out[key] = item
    return out
