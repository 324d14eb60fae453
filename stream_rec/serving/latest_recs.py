"""Each user's latest recommendation, kept where it is sent: the pull API's table.

The ``latest-recs`` table (RocksDB, changelogged) holds per user the recs topic record of
the newest recommendation this worker sent, written once the broker acknowledged it:

- by the events agent, with one of the user's events of the batch made current, so the
  write and its changelog record go to the user's partition (as the user's state);
- by the llm-recs agent, for LLM-arm recommendations decided by a task (a result, a
  deadline, or the copy a stopping worker leaves on llm-recs), in that record's stream.

No record is read back from the recs topic (that read-back doubled the records a worker
consumed per event: docs/benchmarks.md). The value is the record's bytes, so the pull API
answers exactly what the topic carried (same ``rec_id``: clicks on it are attributed).
The console's live numbers (:class:`LiveStats`) see every sent recommendation, with or
without the table.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from stream_rec.core import codec
from stream_rec.serving.console import LiveStats

__all__ = ["LATEST_RECS_TABLE", "LatestRecs", "SentRec", "newest_per_user"]

LATEST_RECS_TABLE = "latest-recs"


@dataclass(frozen=True, slots=True)
class SentRec:
    """One recommendation as the recs topic carried it: its fields and its bytes."""

    fields: dict[str, Any]
    value: bytes

    @property
    def user_id(self) -> str:
        return str(self.fields["user_id"])

    @property
    def generated_at_ms(self) -> int:
        return int(self.fields["generated_at_ms"])


def newest_per_user(sent: Sequence[SentRec]) -> dict[str, SentRec]:
    """Per user, the newest of ``sent`` by ``generated_at_ms``; on equal times the later
    one, as one table write per record in order would leave it."""
    newest: dict[str, SentRec] = {}
    for rec in sent:
        kept = newest.get(rec.user_id)
        if kept is None or kept.generated_at_ms <= rec.generated_at_ms:
            newest[rec.user_id] = rec
    return newest


class LatestRecs:
    """Remembers sent recommendations: in ``table`` (None when the pull API is off,
    ``STREAM_REC_LATEST_RECS=off``) and in the console's ``stats``."""

    def __init__(self, table: MutableMapping[str, bytes] | None, stats: LiveStats) -> None:
        self.table = table
        self.stats = stats

    def remember(self, sent: Sequence[SentRec],
                 bind: Callable[[str], None] | None = None) -> None:
        """Note ``sent`` (acknowledged by the broker), in order. ``bind(user_id)`` makes one
        of the user's messages faust's current event before the user's table write (None
        when the stream's current event is already the right one). A held rec newer than
        the user's newest here (a late LLM-arm rec, a redelivery) stays."""
        for rec in sent:
            self.stats.on_rec(rec.fields)
        if self.table is None:
            return
        for user, rec in newest_per_user(sent).items():
            if bind is not None:
                bind(user)
            held = self.table.get(user)
            if held is None or _generated_at_ms(held) <= rec.generated_at_ms:
                self.table[user] = rec.value


def _generated_at_ms(value: bytes) -> int:
    try:
        return int(codec.loads(value)["generated_at_ms"])
    except (codec.DecodeError, KeyError, TypeError, ValueError):
        return -1  # an unreadable held value never blocks a newer rec
