"""The dead-letter record: why a message was rejected, where from, and its original bytes."""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["dlq_label", "dlq_record"]

_DLQ_LABELS = frozenset({"<message>", "<key>", "<processing>", "event_id", "type", "user_id",
                         "item_id", "ts_ms", "quantity", "price", "rec_id", "context",
                         "query"})


def dlq_record(*, topic: str, partition: int, offset: int, key: bytes | None,
               value: bytes | None, field_name: str, rule: str, shown: str, reason: str,
               now_ms: int) -> dict[str, Any]:
    """The dead-letter message: why, where from, and the original bytes (base64)."""
    return {
        "error": "InvalidEvent",
        "reason": reason,
        "field": field_name,
        "rule": rule,
        "value": shown,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "key_b64": base64.b64encode(key).decode() if key is not None else None,
        "original_b64": base64.b64encode(value or b"").decode(),
        "received_at_ms": now_ms,
    }


def dlq_label(field_name: str) -> str:
    """A metric label from a bounded set: hostile field names must not create series."""
    if field_name in _DLQ_LABELS:
        return field_name
    return "context.*" if field_name.startswith("context.") else "<unknown-field>"
