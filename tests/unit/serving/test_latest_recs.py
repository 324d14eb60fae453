"""The pull API's latest-recs table is filled in batches: per user, the newest record."""

from __future__ import annotations

from typing import Any

from stream_rec.core import codec
from stream_rec.serving.web import newest_per_user


def _rec(user: str, at: int, rec_id: str) -> bytes:
    return codec.dumps({"user_id": user, "generated_at_ms": at, "rec_id": rec_id})


def test_each_user_keeps_the_newest_rec_and_the_later_record_on_equal_times() -> None:
    values = [_rec("u1", 10, "a"), _rec("u2", 5, "b"), _rec("u1", 30, "c"),
              _rec("u1", 20, "late"), _rec("u2", 5, "b-again"), b"{not json",
              codec.dumps({"user_id": "u3"})]
    seen: list[dict[str, Any]] = []
    newest = newest_per_user(values, seen.append)
    assert newest == {"u1": (30, values[2], 2), "u2": (5, values[4], 4)}
    # every decodable rec reaches the live counters, the broken ones are skipped
    assert [rec["rec_id"] for rec in seen] == ["a", "b", "c", "late", "b-again"]


def test_one_write_per_record_in_order_leaves_what_the_batch_writes() -> None:
    """Folding the batch's winners into a table gives the table one write per record gives."""
    values = [_rec(f"u{k % 3}", (k * 7) % 5, f"r{k}") for k in range(30)]
    one_by_one: dict[str, bytes] = {"u0": _rec("u0", 3, "held")}
    batched = dict(one_by_one)
    for value in values:
        rec = codec.loads(value)
        held = one_by_one.get(rec["user_id"])
        if held is None or codec.loads(held)["generated_at_ms"] <= rec["generated_at_ms"]:
            one_by_one[rec["user_id"]] = value
    for user, (at, value, _) in newest_per_user(values, lambda rec: None).items():
        held = batched.get(user)
        if held is None or codec.loads(held)["generated_at_ms"] <= at:
            batched[user] = value
    assert batched == one_by_one
