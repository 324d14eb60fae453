"""The benchmark's pure parts: replicated workload, pacing, summary and report tables."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from stream_rec.bench.probe import read_arrivals
from stream_rec.bench.report import markdown_table
from stream_rec.bench.run import find_ceiling
from stream_rec.bench.summary import (
    SUMMARY_KEYS,
    SUSTAINED_P99_MS,
    RunObservations,
    is_sustained,
    summarize,
)
from stream_rec.bench.workload import due_count, replicate, shift_user_id, users_in
from stream_rec.core.events import Event

EVENTS = tuple(Event(f"e{n}", "purchase", user, 1_000 + 10 * n, item_id=f"i{n % 4}")
               for n, user in enumerate(["11", "22", "11", "33", "22", "11"]))


def test_shifted_user_ids_are_distinct_per_replica_and_keep_numeric_ids_numeric() -> None:
    ids = {shift_user_id(user, r) for user in ("7", "11", "99999", "123456") for r in range(50)}
    assert len(ids) == 4 * 50
    assert shift_user_id("11", 0) == "11"
    assert shift_user_id("11", 3).isdigit()
    assert shift_user_id("user-a", 2) == "user-a~2"


def test_replicate_reaches_the_target_user_count_with_unique_event_ids() -> None:
    stream = list(itertools.islice(replicate(EVENTS, users=7), 200))
    users = {event.user_id for event, _, _ in stream}
    assert len(users) == 7
    assert len({event.event_id for event, _, _ in stream}) == len(stream)
    for event, key, value in stream[:10]:
        assert key == event.user_id.encode()
        assert f'"user_id":"{event.user_id}"'.encode() in value


def test_each_replicated_user_sees_time_moving_forward_across_cycles() -> None:
    last: dict[str, int] = {}
    for event, _, _ in itertools.islice(replicate(EVENTS, users=9), 500):
        assert event.ts_ms >= last.get(event.user_id, 0)
        last[event.user_id] = event.ts_ms


def test_replicas_start_at_different_points_of_the_story() -> None:
    first = [event for event, _, _ in itertools.islice(replicate(EVENTS, users=9), 3)]
    assert [e.event_id.split(".")[0] for e in first] == ["e0", "e2", "e4"]
    assert users_in(EVENTS) == ["11", "22", "33"]


def test_pacing_schedule_sends_event_i_at_i_over_rate() -> None:
    assert due_count(-0.1, 100.0) == 0
    assert due_count(0.0, 100.0) == 1
    assert due_count(0.0099, 100.0) == 1
    assert due_count(0.01, 100.0) == 2
    assert due_count(10.0, 250.0) == 2501
    assert [due_count(t / 1000, 1000.0) for t in range(5)] == [1, 2, 3, 4, 5]


def _obs(**overrides: object) -> RunObservations:
    base: dict[str, object] = dict(
        broker="tansu", workers=1, offered_rate=100.0, users=10,
        produced={"a": 10.0, "b": 11.0, "c": 12.0, "early": 1.0},
        arrivals={"a": 10.010, "b": 11.030, "c": 12.020, "early": 1.5},
        window=(5.0, 15.0), worker_cpu_s=[0.5], worker_rss_peak_mb=[400.0, 420.5],
        lag_samples=[3, 9, 2], load_avg=(0.5, 1.25))
    base.update(overrides)
    return RunObservations(**base)  # type: ignore[arg-type]


def test_summary_has_the_stable_keys_and_counts_only_the_window() -> None:
    summary = summarize(_obs())
    assert list(summary)[: len(SUMMARY_KEYS)] == list(SUMMARY_KEYS)
    assert summary["recs_per_s"] == pytest.approx(0.3)  # 3 arrivals in a 10 s window
    assert summary["latency_ms_p50"] == pytest.approx(20.0)
    assert summary["latency_ms_p50"] <= summary["latency_ms_p99"] <= summary["latency_ms_max"]
    assert summary["latency_ms_max"] == pytest.approx(30.0)
    assert summary["cpu_ms_per_rec"] == pytest.approx(500.0 / 3, abs=1e-3)
    assert summary["rss_mb_max"] == 420.5
    assert (summary["lag_max"], summary["lag_end"]) == (9, 2)
    assert summary["load_avg_1m_start"] == 0.5


def test_sustained_means_keeping_up_with_the_offered_rate() -> None:
    assert summarize(_obs(offered_rate=0.3))["sustained"] is True
    assert summarize(_obs(offered_rate=100.0))["sustained"] is False
    assert summarize(_obs(offered_rate=None))["offered_rate"] == "max"


def test_a_run_without_recs_has_no_latency_and_no_cpu_per_rec() -> None:
    summary = summarize(_obs(arrivals={}))
    assert summary["recs_per_s"] == 0
    assert summary["latency_ms_p50"] is None and summary["cpu_ms_per_rec"] is None
    assert not math.isnan(summary["cpu_util"])


def test_markdown_table_has_a_row_per_run_and_says_why_one_was_skipped() -> None:
    rows = [summarize(_obs()), {"broker": "kafka", "workers": 1, "offered_rate": "max",
                                "skipped": "no Java"}]
    table = markdown_table(rows).splitlines()
    assert len(table) == 4
    assert "| tansu | 1 | 100.0 |" in table[2]
    assert "skipped: no Java" in table[3]


def test_probe_arrivals_file_keeps_the_first_arrival_of_each_rec(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.txt"
    path.write_text("e1 10.5\ne2 11.0\ne1 12.0\n\n")
    assert read_arrivals(path) == {"e1": 10.5, "e2": 11.0}


def test_a_growing_lag_or_a_long_tail_is_not_sustained() -> None:
    assert is_sustained(1000.0, 990.0, [10, 20, 15, 12], p99_ms=40.0)
    assert not is_sustained(1000.0, 990.0, [10, 20, 900, 2500], p99_ms=40.0)
    assert not is_sustained(1000.0, 990.0, [10, 20], p99_ms=SUSTAINED_P99_MS + 1)
    assert not is_sustained(1000.0, 900.0, [0], p99_ms=10.0)
    assert not is_sustained(None, 5000.0, [0], p99_ms=10.0)


def test_the_ceiling_search_finds_the_highest_sustained_rate_and_quotes_only_that() -> None:
    tried: list[float] = []

    def run(rate: float) -> dict[str, object]:
        tried.append(rate)
        return {"offered_rate": rate, "sustained": rate <= 1730, "recs_per_s": min(rate, 1800)}

    best = find_ceiling(run, 500.0, max_points=10)

    assert best is not None and best["sustained"]
    assert tried[:4] == [500.0, 750.0, 1120.0, 1680.0]  # the ramp
    assert 1680.0 <= float(best["offered_rate"]) <= 1730 < min(r for r in tried if r > 1730)


def test_no_ceiling_when_nothing_is_sustained() -> None:
    assert find_ceiling(lambda rate: {"offered_rate": rate, "sustained": False}, 100.0) is None
