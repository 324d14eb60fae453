"""Attribution over two key-value tables: the worker's faust tables, or dicts in tests.

    AbStore(recs_table, arms_table).on_recommendation(rec, partition=…, offset=…)
    AbStore(…).on_event(event, partition=…, offset=…)
    AbStore(…).totals() → {arm: ArmCounters} over the partitions this process holds

``recs_table`` holds one :class:`RecLog` per user, ``arms_table`` one
:class:`ArmCounters` per ``"{arm}|{partition}"``, both as orjson bytes. Each call writes
at most one key of each table, with no ``await`` in between, while the message of
``partition`` is being processed (faust changelogs a write to the current message's
partition, so an arm key only ever has one writer).
"""

from __future__ import annotations

from collections.abc import MutableMapping

from stream_rec.ab.online import (
    SERVED_FROM_EVENTS,
    AbParams,
    ArmCounters,
    Attributed,
    RecLog,
    log_event,
    log_recommendation,
)
from stream_rec.core import codec
from stream_rec.core.events import Event, Recommendation

__all__ = ["ARMS_TABLE", "RECS_TABLE", "AbStore", "arm_key"]

#: faust table names (their changelogs are ``{app_id}-{name}-changelog``)
ARMS_TABLE = "ab-arms"
RECS_TABLE = "ab-recs"


def arm_key(arm: str, partition: int) -> str:
    """The ``ab-arms`` key of one arm's counters for one partition."""
    return f"{arm}|{partition}"


class AbStore:
    """Folds recommendations and feedback into the rec-log and arm-counter tables."""

    def __init__(self, recs: MutableMapping[str, bytes], arms: MutableMapping[str, bytes],
                 params: AbParams = AbParams()) -> None:
        self.recs = recs
        self.arms = arms
        self.params = params

    def on_recommendation(self, rec: Recommendation, *, partition: int, offset: int,
                          source: str = SERVED_FROM_EVENTS) -> str:
        """Fold one served recommendation (``source``: which topic's message served it, see
        ``ab.online``); returns what happened (``Attributed.note``)."""
        stored = self.recs.get(rec.user_id)
        log = RecLog.from_dict(codec.loads(stored)) if stored else RecLog(rec.user_id)
        outcome = log_recommendation(log, rec, partition=partition, offset=offset,
                                     source=source, params=self.params)
        return self._save(rec.user_id, stored, outcome, partition)

    def on_event(self, event: Event, *, partition: int, offset: int) -> str:
        """Fold a ``rec_click`` or ``purchase``; returns what happened (``Attributed.note``)."""
        if event.type not in ("rec_click", "purchase"):
            return "ignored"
        stored = self.recs.get(event.user_id)
        log = RecLog.from_dict(codec.loads(stored)) if stored else RecLog(event.user_id)
        outcome = log_event(log, event, partition=partition, offset=offset, params=self.params)
        return self._save(event.user_id, stored, outcome, partition)

    def totals(self) -> dict[str, ArmCounters]:
        """Per-arm counters summed over the partitions in ``arms``."""
        out: dict[str, ArmCounters] = {}
        for key, value in list(self.arms.items()):
            arm = str(key).rsplit("|", 1)[0]
            counters = ArmCounters.from_dict(codec.loads(value))
            out[arm] = out[arm].merged(counters) if arm in out else counters
        return out

    def _save(self, user_id: str, stored: bytes | None, outcome: Attributed,
              partition: int) -> str:
        if not outcome.applied:
            if stored is not None:
                # a redelivery: write the stored value again, so that a changelog send lost
                # with the crash that caused the redelivery catches up (as the users table)
                self.recs[user_id] = stored
            return outcome.note
        if outcome.arm is not None and outcome.delta is not None:
            key = arm_key(outcome.arm, partition)
            current = self.arms.get(key)
            counters = ArmCounters.from_dict(codec.loads(current)) if current else ArmCounters()
            self.arms[key] = codec.dumps(counters.plus(outcome.delta).to_dict())
        self.recs[user_id] = codec.dumps(outcome.log.to_dict())
        return outcome.note
