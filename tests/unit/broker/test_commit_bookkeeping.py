"""Which offsets a worker may commit: never past an event that was not processed.

faust 0.15.3 committed over a lost event at the commit point (bug E in
docs/reliability.md); ``take_committable`` is the rule the worker's consumer uses instead.
"""

from __future__ import annotations

from intervaltree import IntervalTree  # type: ignore[import-untyped]

from stream_rec.broker.faust_transport import take_committable


def test_a_contiguous_run_from_the_commit_point_is_committed_and_removed() -> None:
    acked = [10, 11, 12, 14]
    assert take_committable(acked, IntervalTree(), 10) == [10, 11, 12]
    assert acked == [14]


def test_an_unprocessed_event_at_the_commit_point_blocks_the_commit() -> None:
    acked = [11, 12, 13]
    assert take_committable(acked, IntervalTree(), 10) == []
    assert acked == [11, 12, 13]  # kept for when 10 is acked


def test_the_commit_resumes_once_the_missing_event_is_acked() -> None:
    acked = [11, 12, 13]
    take_committable(acked, IntervalTree(), 10)
    acked.append(10)
    assert take_committable(acked, IntervalTree(), 10) == [10, 11, 12, 13]


def test_offsets_the_broker_skipped_count_as_done() -> None:
    # e.g. a transaction marker at 10-11: the first record fetched after a seek to 10 was 12
    gaps = IntervalTree()
    gaps.addi(10, 12)
    acked = [12, 13]
    assert take_committable(acked, gaps, 10) == [10, 11, 12, 13]
    assert not gaps


def test_gaps_beyond_the_last_acked_offset_wait_for_it() -> None:
    gaps = IntervalTree()
    gaps.addi(20, 22)
    acked = [10]
    assert take_committable(acked, gaps, 10) == [10]
    assert sorted((i.begin, i.end) for i in gaps) == [(20, 22)]


def test_without_a_previous_commit_the_first_run_is_committed() -> None:
    # a new consumer group: where the log starts is not known to the consumer
    assert take_committable([3, 4, 6], IntervalTree(), None) == [3, 4]
    assert take_committable([0, 1], IntervalTree(), -1) == [0, 1]


def test_nothing_acked_means_nothing_to_commit() -> None:
    assert take_committable([], IntervalTree(), 5) == []
