"""The pull API's latest-recs table is written where recs are sent: per user, the newest."""

from __future__ import annotations

from stream_rec.core import codec
from stream_rec.serving.console import LiveStats
from stream_rec.serving.latest_recs import LatestRecs, SentRec, newest_per_user


def _sent(user: str, at: int, rec_id: str) -> SentRec:
    fields = {"user_id": user, "generated_at_ms": at, "rec_id": rec_id, "arm": "slm",
              "latency_ms": 1.5}
    return SentRec(fields, codec.dumps(fields))


class _BoundTable(dict[str, bytes]):
    """A table that records, per write, which user's message was made current."""

    def __init__(self, held: dict[str, bytes]) -> None:
        super().__init__(held)
        self.current: str | None = None
        self.writes: list[tuple[str, str | None]] = []

    def __setitem__(self, key: str, value: bytes) -> None:
        self.writes.append((key, self.current))
        super().__setitem__(key, value)


def test_each_user_keeps_the_newest_rec_and_the_later_one_on_equal_times() -> None:
    sent = [_sent("u1", 10, "a"), _sent("u2", 5, "b"), _sent("u1", 30, "c"),
            _sent("u1", 20, "late"), _sent("u2", 5, "b-again")]
    newest = newest_per_user(sent)
    assert {user: rec.fields["rec_id"] for user, rec in newest.items()} == {
        "u1": "c", "u2": "b-again"}


def test_each_write_goes_to_its_users_partition_once_per_batch() -> None:
    table = _BoundTable({})
    latest = LatestRecs(table, LiveStats())

    def bind(user: str) -> None:
        table.current = user

    latest.remember([_sent("u1", 10, "a"), _sent("u2", 11, "b"), _sent("u1", 12, "c")],
                    bind=bind)
    assert sorted(table.writes) == [("u1", "u1"), ("u2", "u2")]
    assert codec.loads(table["u1"])["rec_id"] == "c"
    assert table["u2"] == _sent("u2", 11, "b").value  # the bytes the recs topic carried


def test_a_held_newer_rec_is_not_replaced_by_an_older_one() -> None:
    """A redelivered batch or a late LLM-arm rec never hides what the user was shown last."""
    table = {"u1": _sent("u1", 50, "newer").value, "u2": b"{not json"}
    latest = LatestRecs(table, LiveStats())
    latest.remember([_sent("u1", 40, "older"), _sent("u2", 1, "fresh")])
    assert codec.loads(table["u1"])["rec_id"] == "newer"
    assert codec.loads(table["u2"])["rec_id"] == "fresh"  # an unreadable value never blocks


def test_one_write_per_rec_in_order_leaves_what_the_batch_writes() -> None:
    sent = [_sent(f"u{k % 3}", (k * 7) % 5, f"r{k}") for k in range(30)]
    one_by_one: dict[str, bytes] = {"u0": _sent("u0", 3, "held").value}
    batched = dict(one_by_one)
    for rec in sent:
        LatestRecs(one_by_one, LiveStats()).remember([rec])
    LatestRecs(batched, LiveStats()).remember(sent)
    assert batched == one_by_one


def test_the_console_sees_every_sent_rec_with_the_table_off() -> None:
    stats = LiveStats()
    latest = LatestRecs(None, stats)
    latest.remember([_sent("u1", 10, "a"), _sent("u1", 11, "b")])
    assert [rec["rec_id"] for rec in stats.latest] == ["a", "b"]
    assert list(stats.latencies["slm"]) == [1.5, 1.5]
