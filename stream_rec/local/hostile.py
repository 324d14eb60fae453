"""Malformed and hostile events, each with the field the validator must blame.

Used by ``stream-rec demo --inject-bad N`` and by the tests: every one of these must end
on the dead-letter topic with a reason, and never stop a worker.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from stream_rec.core import codec

__all__ = ["KINDS", "BadEvent", "bad_events"]


@dataclass(frozen=True, slots=True)
class BadEvent:
    """One hostile message: its key, its raw bytes, and the field that must be blamed."""

    kind: str
    key: bytes
    value: bytes
    field: str


def _event(user: str, n: int, now_ms: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {"event_id": f"bad-{n}", "type": "view", "user_id": user,
                               "item_id": "85123A", "ts_ms": now_ms}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def _j(obj: object) -> bytes:
    return codec.dumps(obj)


_Maker = Callable[[str, int, int], tuple[bytes, bytes, str]]
KINDS: dict[str, _Maker] = {
    "truncated_json": lambda u, n, t: (u.encode(), _j(_event(u, n, t))[:-7], "<message>"),
    "not_an_object": lambda u, n, t: (u.encode(), b"[1, 2, 3]", "<message>"),
    "empty": lambda u, n, t: (u.encode(), b"", "<message>"),
    "invalid_utf8": lambda u, n, t: (u.encode(), b'{"event_id": "\xff\xfe", "type": "view"}',
                                     "<message>"),
    "nan_number": lambda u, n, t: (u.encode(), _j(_event(u, n, t))[:-1] + b',"price":NaN}',
                                   "<message>"),
    "unknown_type": lambda u, n, t: (u.encode(), _j(_event(u, n, t, type="buy")), "type"),
    "missing_user": lambda u, n, t: (u.encode(), _j(_event(u, n, t, user_id=_DROP)), "user_id"),
    "missing_item": lambda u, n, t: (u.encode(), _j(_event(u, n, t, type="purchase",
                                                           item_id=_DROP)), "item_id"),
    "ts_as_text": lambda u, n, t: (u.encode(), _j(_event(u, n, t, ts_ms="yesterday")), "ts_ms"),
    "ts_far_future": lambda u, n, t: (u.encode(), _j(_event(u, n, t, ts_ms=4_102_444_800_000)),
                                      "ts_ms"),
    "negative_quantity": lambda u, n, t: (u.encode(), _j(_event(u, n, t, type="purchase",
                                                                quantity=-5)), "quantity"),
    "absurd_quantity": lambda u, n, t: (u.encode(), _j(_event(u, n, t, type="purchase",
                                                              quantity=10**9)), "quantity"),
    "bool_price": lambda u, n, t: (u.encode(), _j(_event(u, n, t, price=True)), "price"),
    "extra_field": lambda u, n, t: (u.encode(), _j(_event(u, n, t, admin=True)), "admin"),
    "nested_context": lambda u, n, t: (u.encode(), _j(_event(u, n, t, context={
        "a": {"b": {"c": {"d": [1, 2, 3]}}}})), "context.a"),
    "huge_payload": lambda u, n, t: (u.encode(), _j(_event(u, n, t, context={
        "blob": "x" * 40_000})), "<message>"),
    "user_id_injection": lambda u, n, t: (b"x", _j(_event(u, n, t, user_id="x; DROP TABLE")),
                                          "user_id"),
    "key_mismatch": lambda u, n, t: (b"someone-else", _j(_event(u, n, t)), "<key>"),
    "click_without_rec": lambda u, n, t: (u.encode(), _j(_event(u, n, t, type="rec_click")),
                                          "rec_id"),
}


def bad_events(n: int, *, ts_ms: int, rng: random.Random | None = None,
               users: tuple[str, ...] = ("12346", "12347", "12348")) -> list[BadEvent]:
    """``n`` hostile messages cycling through every kind (shuffled if ``rng`` is given)."""
    kinds = list(KINDS)
    if rng is not None:
        rng.shuffle(kinds)
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        key, value, field_name = KINDS[kind](users[i % len(users)], i, ts_ms)
        out.append(BadEvent(kind, key, value, field_name))
    return out
