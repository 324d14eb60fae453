"""Validation stages, for tuning without looking at the test cases.

``stage="valid"`` asks earlier questions than the test stage and never streams a test
target:

- ``llamarec``: the protocol's own ``stage="valid"`` (each user's second-to-last item);
- ``minionerec``: the valid CSV's targets, asked just before each is streamed (the replay
  stops at the last one, so no test row is seen);
- ``time-split``: events before the test cut only, split again one month earlier.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stream_rec.datasets import Dataset, Split, TestCase, make_split
from stream_rec.errors import ConfigError

__all__ = ["STAGES", "split_for_stage"]

STAGES = ("test", "valid")
_VALID_GAP_MS = int(timedelta(days=30).total_seconds() * 1000)


def split_for_stage(dataset: Dataset, protocol: str, stage: str, **options: Any) -> Split:
    """The split to replay for ``stage`` (``test`` is the protocol itself)."""
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {list(STAGES)}, got {stage!r}")
    if stage == "test":
        return make_split(dataset, protocol, **options)
    if protocol == "llamarec":
        return make_split(dataset, protocol, stage="valid", **options)
    if protocol == "minionerec":
        return _minionerec_valid(dataset)
    if protocol == "time-split":
        cut_ms = _epoch_ms(options.pop("cut", "2011-11-01"))
        before = Dataset(dataset.name, dataset.catalog,
                         tuple(e for e in dataset.events if e.ts_ms < cut_ms))
        return make_split(before, protocol, cut=cut_ms - _VALID_GAP_MS, **options)
    raise ConfigError(f"stage 'valid' is not defined for protocol {protocol!r}; "
                      "use llamarec, minionerec or time-split")


def _minionerec_valid(dataset: Dataset) -> Split:
    test = make_split(dataset, "minionerec")
    cases = tuple(
        TestCase(user_id=e.user_id, at_index=i, relevant=frozenset({e.item_id or ""}),
                 masked=frozenset(), now_ms=e.ts_ms)
        for i, e in enumerate(dataset.events)
        if e.context.get("split") == "valid" and e.context.get("role") == "target")
    first_test = min((c.at_index for c in test.cases), default=len(dataset.events))
    return Split(protocol="minionerec", train_events=dataset.events[:first_test], cases=cases,
                 item_ids=test.item_ids, metrics=test.metrics,
                 stats={**test.stats, "cases": len(cases), "stage_valid": 1})


def _epoch_ms(cut: str | int | datetime) -> int:
    if isinstance(cut, int) and not isinstance(cut, bool):
        return cut
    when = datetime.fromisoformat(cut) if isinstance(cut, str) else cut
    if not isinstance(when, datetime):
        raise ConfigError(f"time-split: cut must be an ISO date or epoch ms, got {cut!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)
