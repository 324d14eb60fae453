"""Online attribution: clicks and purchases go to the arm that served the recommendation,
exactly once, whatever order the topics deliver them in and however often they repeat."""

from __future__ import annotations

import math

import pytest

from stream_rec.ab.online import (
    LATENCY_BOUNDS_MS,
    AbParams,
    ArmCounters,
    ArmDelta,
    RecLog,
    histogram_percentile,
)
from stream_rec.ab.report import combine, summarize
from stream_rec.ab.store import AbStore, arm_key
from stream_rec.core import codec
from stream_rec.core.events import Event, RecItem, Recommendation

HOUR = 3_600_000
T0 = 1_300_000_000_000


def _rec(rec_id: str, user: str, arm: str, items: list[str], ts: int, *,
         latency_ms: float = 10.0, reason: str | None = None) -> Recommendation:
    return Recommendation(rec_id, user, tuple(RecItem(i, 1.0, "r") for i in items), arm, "m",
                          f"t-{rec_id}", ts + 5, latency_ms, degraded=reason is not None,
                          fallback_reason=reason, trigger_ts_ms=ts)


def _click(n: int, user: str, rec_id: str, ts: int) -> Event:
    return Event(f"c{n}", "rec_click", user, ts, item_id="x", rec_id=rec_id)


def _buy(n: int, user: str, item: str, ts: int, price: float | None = 2.5,
         quantity: int = 2) -> Event:
    return Event(f"p{n}", "purchase", user, ts, item_id=item, price=price, quantity=quantity)


class World:
    """An AbStore on dicts, fed with increasing offsets per topic, like one partition."""

    def __init__(self, params: AbParams = AbParams()) -> None:
        self.recs: dict[str, bytes] = {}
        self.arms: dict[str, bytes] = {}
        self.store = AbStore(self.recs, self.arms, params)
        self.rec_offset = self.event_offset = -1

    def serve(self, rec: Recommendation, offset: int | None = None) -> str:
        if offset is None:
            self.rec_offset += 1
            offset = self.rec_offset
        return self.store.on_recommendation(rec, partition=0, offset=offset)

    def event(self, event: Event, offset: int | None = None) -> str:
        if offset is None:
            self.event_offset += 1
            offset = self.event_offset
        return self.store.on_event(event, partition=0, offset=offset)

    def arm(self, name: str) -> ArmCounters:
        return self.store.totals().get(name, ArmCounters())


def test_clicks_and_conversions_go_to_the_arm_that_served_them() -> None:
    w = World()
    w.serve(_rec("r1", "u1", "slm", ["a", "b"], T0))
    w.serve(_rec("r2", "u2", "llm", ["a", "c"], T0))
    w.event(_click(1, "u1", "r1", T0 + 1))
    w.event(_buy(1, "u2", "c", T0 + 2))
    w.event(_buy(2, "u2", "z", T0 + 3))  # not recommended: no conversion
    slm, llm = w.arm("slm"), w.arm("llm")
    assert (slm.served, slm.clicks, slm.conversions) == (1, 1, 0)
    assert (llm.served, llm.clicks, llm.conversions, llm.converted_recs) == (1, 0, 1, 1)
    assert llm.revenue == pytest.approx(5.0)


def test_redelivered_messages_change_nothing() -> None:
    w = World()
    rec = _rec("r1", "u1", "slm", ["a"], T0)
    assert w.serve(rec, offset=0) == "served"
    assert w.serve(rec, offset=0) == "redelivered"
    assert w.event(_click(1, "u1", "r1", T0 + 1), offset=0) == "click"
    assert w.event(_click(1, "u1", "r1", T0 + 1), offset=0) == "redelivered"
    assert w.event(_buy(1, "u1", "a", T0 + 2), offset=1) == "conversion"
    assert w.event(_buy(1, "u1", "a", T0 + 2), offset=1) == "redelivered"
    arm = w.arm("slm")
    assert (arm.served, arm.clicks, arm.conversions) == (1, 1, 1)


def test_client_retries_at_new_offsets_count_once() -> None:
    w = World()
    w.serve(_rec("r1", "u1", "slm", ["a"], T0))
    assert w.serve(_rec("r1", "u1", "slm", ["a"], T0)) == "served_again"
    notes = [(w.event(_click(1, "u1", "r1", T0 + 1)), w.event(_buy(1, "u1", "a", T0 + 2)))
             for _ in range(3)]
    assert notes == [("click", "conversion")] + [("click_again", "purchase_again")] * 2
    arm = w.arm("slm")
    assert (arm.served, arm.clicks, arm.conversions) == (1, 1, 1)


def test_a_click_or_purchase_arriving_before_its_recommendation_still_counts() -> None:
    w = World()
    assert w.event(_click(1, "u1", "r1", T0 + 10)) == "click_early"
    assert w.event(_buy(1, "u1", "a", T0 + 20)) == "purchase_early"
    assert w.arm("llm").served == 0
    w.serve(_rec("r1", "u1", "llm", ["a", "b"], T0))
    arm = w.arm("llm")
    assert (arm.served, arm.clicks, arm.conversions, arm.converted_recs) == (1, 1, 1, 1)
    log = RecLog.from_dict(codec.loads(w.recs["u1"]))
    assert log.early_clicks == () and log.early_purchases == ()


def test_a_purchase_converts_the_newest_recommendation_only_within_the_window() -> None:
    w = World(AbParams(window_ms=24 * HOUR))
    w.serve(_rec("old", "u1", "slm", ["a"], T0))
    w.serve(_rec("new", "u1", "llm", ["a"], T0 + HOUR))
    w.event(_buy(1, "u1", "a", T0 + 2 * HOUR))
    assert w.arm("llm").conversions == 1 and w.arm("slm").conversions == 0
    w.event(_buy(2, "u1", "a", T0 + 3 * HOUR))  # (rec, item) counts once: last touch done
    assert w.arm("llm").conversions == 1
    late = World(AbParams(window_ms=24 * HOUR))
    late.serve(_rec("r", "u1", "slm", ["a"], T0))
    late.event(_buy(1, "u1", "a", T0 + 25 * HOUR))
    assert late.arm("slm").conversions == 0


def test_a_purchase_before_the_recommendation_is_not_a_conversion() -> None:
    w = World()
    w.event(_buy(1, "u1", "a", T0 - 10))
    w.serve(_rec("r1", "u1", "slm", ["a"], T0))
    assert w.arm("slm").conversions == 0


def test_a_users_log_stays_bounded() -> None:
    w = World(AbParams(max_recs=4, max_early=3))
    for n in range(10):
        w.serve(_rec(f"r{n}", "u1", "slm", ["a"], T0 + n))
        w.event(_click(n, "u1", f"unknown{n}", T0 + n))
    log = RecLog.from_dict(codec.loads(w.recs["u1"]))
    assert [r.rec_id for r in log.recs] == ["r6", "r7", "r8", "r9"]
    assert len(log.early_clicks) == 3
    assert w.arm("slm").served == 10


def test_fallbacks_latency_and_reasons_are_counted_per_arm() -> None:
    w = World()
    w.serve(_rec("r1", "u1", "llm", ["a"], T0, latency_ms=900.0))
    w.serve(_rec("r2", "u2", "llm", ["a"], T0, latency_ms=3000.0, reason="deadline"))
    w.serve(_rec("r3", "u3", "llm", ["a"], T0, latency_ms=3.0, reason="shed"))
    arm = w.arm("llm")
    assert arm.fallbacks == 2 and dict(arm.fallback_reasons) == {"deadline": 1, "shed": 1}
    assert sum(arm.latency_counts) == 3
    assert arm.summary()["fallback_rate"] == pytest.approx(2 / 3)


def test_arm_counters_are_written_under_the_current_partitions_key() -> None:
    w = World()
    w.store.on_recommendation(_rec("r1", "u1", "slm", ["a"], T0), partition=3, offset=0)
    assert list(w.arms) == [arm_key("slm", 3)] == ["slm|3"]


def test_histogram_percentiles_land_within_a_bucket_of_the_truth() -> None:
    counters = ArmCounters()
    values = [float(v) for v in range(1, 1001)]
    for v in values:
        counters = counters.plus(ArmDelta(latency_ms=v))
    p50 = histogram_percentile(counters.latency_counts, 0.5)
    p99 = histogram_percentile(counters.latency_counts, 0.99)
    assert p50 == pytest.approx(500, rel=0.15) and p99 == pytest.approx(990, rel=0.15)
    assert math.isnan(histogram_percentile(ArmCounters().latency_counts, 0.5))
    huge = ArmCounters().plus(ArmDelta(latency_ms=1e9))
    assert histogram_percentile(huge.latency_counts, 0.5) == LATENCY_BOUNDS_MS[-1]


def test_counters_survive_their_json_form_and_merge_by_addition() -> None:
    a = ArmCounters().plus(ArmDelta(served=1, clicks=1, latency_ms=5.0, revenue=2.0))
    b = ArmCounters().plus(ArmDelta(served=1, fallback_reason="deadline", latency_ms=50.0))
    assert ArmCounters.from_dict(codec.loads(codec.dumps(a.to_dict()))) == a
    both = a.merged(b)
    assert (both.served, both.clicks, both.fallbacks, sum(both.latency_counts)) == (2, 1, 1, 2)


def test_the_report_takes_the_latest_value_per_partition_and_sums_the_arm() -> None:
    def rec(key: str, counters: ArmCounters) -> tuple[bytes, bytes]:
        return codec.dumps(key), codec.dumps(counters.to_dict())

    one = ArmCounters().plus(ArmDelta(served=1))
    two = one.plus(ArmDelta(served=1, clicks=1))
    records = [rec("slm|0", one), rec("slm|0", two), rec("slm|1", one), rec("llm|0", one),
               (codec.dumps("gone|0"), codec.dumps(one.to_dict())), (codec.dumps("gone|0"), None)]
    totals = combine(records)
    assert set(totals) == {"slm", "llm"}
    assert (totals["slm"].served, totals["slm"].clicks) == (3, 1)


def test_the_report_has_simulate_s_shape_and_compares_each_arm_with_the_first() -> None:
    slm = ArmCounters(served=100, clicks=45)
    llm = ArmCounters(served=100, clicks=30)
    result = summarize({"slm": slm, "llm": llm}, arm_order=["slm", "llm", "holdout"])
    assert list(result["arms"]) == ["slm", "llm", "holdout"]
    assert result["arms"]["holdout"]["served"] == 0
    ctr = result["arms"]["slm"]["ctr"]
    assert set(ctr) == {"value", "ci_low", "ci_high"} and ctr["value"] == 0.45
    diff = result["difference"]
    assert (diff["arm_a"], diff["arm_b"]) == ("slm", "llm")
    assert diff["ctr_diff"] == pytest.approx(0.15) and diff["p_value"] == pytest.approx(
        0.02846, abs=1e-4)
    assert {(c["arm_b"], c["metric"]) for c in result["comparisons"]} == {
        ("llm", "ctr"), ("llm", "conversion_rate"), ("holdout", "ctr"),
        ("holdout", "conversion_rate")}


def test_a_purchase_that_converts_and_triggers_a_new_rec_counts_both_at_one_offset() -> None:
    from stream_rec.ab.online import SERVED_FROM_EVENTS, SERVED_FROM_LLM

    w = World()
    w.store.on_recommendation(_rec("r1", "u1", "slm", ["a"], T0), partition=0, offset=5,
                              source=SERVED_FROM_EVENTS)
    assert w.store.on_event(_buy(1, "u1", "a", T0 + 1), partition=0, offset=9) == "conversion"
    served = w.store.on_recommendation(_rec("r2", "u1", "slm", ["b"], T0 + 1), partition=0,
                                       offset=9, source=SERVED_FROM_EVENTS)
    assert served == "served"
    assert w.store.on_recommendation(_rec("r3", "u1", "llm", ["b"], T0 + 2), partition=0,
                                     offset=9, source=SERVED_FROM_LLM) == "served"
    assert (w.arm("slm").served, w.arm("slm").conversions, w.arm("llm").served) == (2, 1, 1)
