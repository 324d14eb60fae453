"""A/B: intervals and tests match hand-computed values; feedback is attributed to the arm
that earned it; the simulated A/B replays a real dataset through the worker's recommender."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import stream_rec.ab
from stream_rec.ab import Attribution, two_proportion_test, wilson_interval
from stream_rec.ab.attribution import LATENCY_RESERVOIR
from stream_rec.ab.simulate import CHART, arm_names, simulate, write_report
from stream_rec.ab.stats import paired_rate_difference
from stream_rec.core.events import Event
from stream_rec.core.percentiles import percentile
from stream_rec.core.router import Router
from stream_rec.errors import ConfigError

DATA = Path(__file__).resolve().parents[2] / "data"
HOUR_MS = 3_600_000


# ----- statistics --------------------------------------------------------------------------

def test_wilson_interval_of_five_in_ten_is_the_textbook_value() -> None:
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)


def test_wilson_interval_of_zero_successes_starts_at_zero_and_stays_informative() -> None:
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)  # z²/(n+z²) = 3.8415/13.8415


def test_wilson_interval_of_no_trials_is_nan_and_bad_counts_raise() -> None:
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_two_proportion_test_matches_hand_computed_values() -> None:
    # 45/100 vs 30/100: pooled p = 0.375, se = sqrt(.375*.625*.02) = 0.068465, z = 2.1909;
    # Wald se = sqrt(.45*.55/100 + .3*.7/100) = 0.067639 → diff 0.15 ± 0.13257
    test = two_proportion_test(45, 100, 30, 100)
    assert test.diff == pytest.approx(0.15)
    assert test.z == pytest.approx(2.1909, abs=1e-4)
    assert test.p_value == pytest.approx(0.02846, abs=1e-4)
    assert test.ci_low == pytest.approx(0.01743, abs=1e-4)
    assert test.ci_high == pytest.approx(0.28257, abs=1e-4)
    assert test.significant


def test_equal_rates_are_not_significant_and_empty_arms_give_nan() -> None:
    same = two_proportion_test(10, 100, 20, 200)
    assert same.diff == pytest.approx(0.0) and same.p_value == pytest.approx(1.0)
    assert not same.significant
    assert two_proportion_test(0, 50, 0, 50).p_value == 1.0
    assert math.isnan(two_proportion_test(1, 10, 0, 0).p_value)


def test_paired_difference_matches_hand_computed_values() -> None:
    # users (a, b, n): (3, 1, 4), (2, 2, 4), (1, 0, 2): rates 6/10 and 3/10, diff 0.3;
    # residuals d - 0.3 n = 0.8, -1.2, 0.4 → sum of squares 2.24; se = sqrt(1.5 * 2.24) / 10
    test = paired_rate_difference([3, 2, 1], [1, 2, 0], [4, 4, 2])
    assert (test.rate_a, test.rate_b, test.diff) == pytest.approx((0.6, 0.3, 0.3))
    se = math.sqrt(1.5 * 2.24) / 10
    assert test.ci_low == pytest.approx(0.3 - 1.959964 * se, abs=1e-6)
    assert test.ci_high == pytest.approx(0.3 + 1.959964 * se, abs=1e-6)
    assert test.z == pytest.approx(1.63663, abs=1e-4)
    assert test.p_value == pytest.approx(0.10171, abs=1e-4)
    assert test.users == 3 and not test.significant


def test_paired_difference_of_identical_arms_is_zero_and_of_a_constant_gap_is_certain() -> None:
    same = paired_rate_difference([1, 2, 3], [1, 2, 3], [5, 5, 5])
    assert (same.diff, same.z, same.p_value) == (0.0, 0.0, 1.0)
    gap = paired_rate_difference([2, 4], [1, 2], [2, 4])  # b always hits half as often
    assert gap.diff == pytest.approx(0.5) and gap.p_value == 0.0 and gap.significant


def test_paired_difference_is_narrower_than_the_unpaired_test_when_users_differ() -> None:
    # users differ a lot (rates 0.9 and 0.1) but arm a beats arm b by one hit for each
    hits_a, hits_b, n = [9, 9, 2, 2], [8, 8, 1, 1], [10, 10, 10, 10]
    paired = paired_rate_difference(hits_a, hits_b, n)
    unpaired = two_proportion_test(sum(hits_a), sum(n), sum(hits_b), sum(n))
    assert paired.diff == pytest.approx(unpaired.diff)
    assert paired.ci_high - paired.ci_low < unpaired.ci_high - unpaired.ci_low
    with pytest.raises(ValueError, match="one count per user"):
        paired_rate_difference([1], [1, 2], [3, 3])
    assert math.isnan(paired_rate_difference([1], [0], [2]).p_value)


def test_percentile_interpolates_and_is_nan_when_empty() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert math.isnan(percentile([], 0.5))


# ----- attribution -------------------------------------------------------------------------

def _rec(rec_id: str, user: str, arm: str, items: list[str], ts_ms: int, *,
         latency_ms: float = 1.0, degraded: bool = False) -> dict[str, object]:
    return {"rec_id": rec_id, "user_id": user, "arm": arm,
            "items": [{"item_id": i, "score": 1.0} for i in items], "latency_ms": latency_ms,
            "degraded": degraded, "generated_at_ms": ts_ms}


def _click(rec_id: str, user: str, item: str, ts_ms: int) -> Event:
    return Event(f"c-{rec_id}-{ts_ms}", "rec_click", user, ts_ms, item_id=item, rec_id=rec_id)


def _buy(user: str, item: str, ts_ms: int, *, price: float | None = None,
         quantity: int = 1) -> Event:
    return Event(f"p-{user}-{item}-{ts_ms}", "purchase", user, ts_ms, item_id=item,
                 price=price, quantity=quantity)


def test_click_counts_for_the_arm_of_its_rec_once_per_rec_id() -> None:
    att = Attribution(arms=["a", "b"])
    att.on_recommendation(_rec("r1", "u1", "a", ["x", "y"], 1000))
    att.on_recommendation(_rec("r2", "u2", "b", ["x"], 1000))
    att.on_event(_click("r1", "u1", "x", 2000))
    att.on_event(_click("r1", "u1", "y", 3000))  # second click on the same rec
    snap = att.snapshot()
    assert (snap["a"]["clicks"], snap["b"]["clicks"]) == (1, 0)
    assert snap["a"]["ctr"] == 1.0 and snap["b"]["ctr"] == 0.0
    assert snap["a"]["ctr_ci"] == list(wilson_interval(1, 1))


def test_click_with_unknown_rec_id_is_ignored() -> None:
    att = Attribution(arms=["a"])
    att.on_recommendation(_rec("r1", "u1", "a", ["x"], 1000))
    att.on_event(_click("nope", "u1", "x", 2000))
    att.on_event(Event("e", "rec_click", "u1", 2000, item_id="x"))  # no rec_id at all
    assert att.snapshot()["a"]["clicks"] == 0


def test_purchase_of_a_recommended_item_is_a_conversion_with_revenue() -> None:
    att = Attribution(arms=["a", "b"])
    att.on_recommendation(_rec("r1", "u1", "a", ["x", "y"], 1000))
    att.on_event(_buy("u1", "x", 5000, price=2.5, quantity=4))
    att.on_event(_buy("u1", "y", 6000))  # unpriced: a conversion without revenue
    snap = att.snapshot()["a"]
    assert snap["conversions"] == 2
    assert snap["converted_recs"] == 1 and snap["conversion_rate"] == 1.0
    assert snap["revenue"] == 10.0


def test_purchase_counts_once_per_rec_and_item_for_the_newest_rec() -> None:
    att = Attribution(arms=["a", "b"])
    att.on_recommendation(_rec("r1", "u1", "a", ["x"], 1000))
    att.on_recommendation(_rec("r2", "u1", "b", ["x"], 2000))
    att.on_event(_buy("u1", "x", 3000))
    att.on_event(_buy("u1", "x", 4000))  # buying it again earns nothing more
    snap = att.snapshot()
    assert (snap["a"]["conversions"], snap["b"]["conversions"]) == (0, 1)


def test_purchase_by_another_user_or_of_another_item_is_not_attributed() -> None:
    att = Attribution(arms=["a"])
    att.on_recommendation(_rec("r1", "u1", "a", ["x"], 1000))
    att.on_event(_buy("u2", "x", 2000))
    att.on_event(_buy("u1", "z", 2000))
    assert att.snapshot()["a"]["conversions"] == 0


def test_purchase_after_the_window_is_not_attributed_and_old_recs_are_evicted() -> None:
    att = Attribution(window_ms=24 * HOUR_MS, arms=["a"])
    att.on_recommendation(_rec("r1", "u1", "a", ["x"], 0))
    att.on_event(_buy("u1", "x", 24 * HOUR_MS + 1))
    att.on_event(_click("r1", "u1", "x", 24 * HOUR_MS + 2))
    snap = att.snapshot()["a"]
    assert (snap["conversions"], snap["clicks"], snap["served"]) == (0, 0, 1)
    assert len(att) == 0


def test_purchase_just_inside_the_window_is_attributed() -> None:
    att = Attribution(window_ms=24 * HOUR_MS, arms=["a"])
    att.on_recommendation(_rec("r1", "u1", "a", ["x"], 0))
    att.on_event(_buy("u1", "x", 24 * HOUR_MS))
    assert att.snapshot()["a"]["conversions"] == 1


def test_memory_stays_bounded_by_the_window_and_max_recs() -> None:
    att = Attribution(window_ms=10, max_recs=50, arms=["a"])
    for i in range(1000):
        att.on_recommendation(_rec(f"r{i}", f"u{i % 7}", "a", ["x"], i))
    assert len(att) <= 11
    capped = Attribution(window_ms=10**9, max_recs=50, arms=["a"])
    for i in range(1000):
        capped.on_recommendation(_rec(f"r{i}", f"u{i % 7}", "a", ["x"], i))
    assert len(capped) == 50 and capped.snapshot()["a"]["served"] == 1000


def test_fallbacks_and_latency_percentiles_are_reported_per_arm() -> None:
    att = Attribution(arms=["a"])
    for i in range(100):
        att.on_recommendation(_rec(f"r{i}", "u", "a", ["x"], i, latency_ms=float(i + 1),
                                   degraded=i % 4 == 0))
    snap = att.snapshot()["a"]
    assert snap["fallbacks"] == 25 and snap["fallback_rate"] == 0.25
    assert snap["latency_ms_p50"] == pytest.approx(50.5)
    assert snap["latency_ms_p99"] == pytest.approx(99.01)


def test_latency_reservoir_never_grows_past_its_capacity() -> None:
    att = Attribution(arms=["a"])
    for i in range(LATENCY_RESERVOIR + 500):
        att.on_recommendation(_rec(f"r{i}", "u", "a", [], i, latency_ms=1.0))
    assert len(att.arms["a"].latency_ms) == LATENCY_RESERVOIR
    assert att.arms["a"].latency_seen == LATENCY_RESERVOIR + 500


def test_package_exports_are_pinned() -> None:
    assert sorted(stream_rec.ab.__all__) == [
        "ArmStats", "Attribution", "DEFAULT_WINDOW_MS", "ProportionTest",
        "two_proportion_test", "wilson_interval"]


# ----- router and simulation ---------------------------------------------------------------

def test_fifty_fifty_assignment_holds_within_tolerance_on_ten_thousand_users() -> None:
    router = Router.from_spec("fast:0.5,slm:0.5", "exp-1")
    share = sum(router.assign(f"u{i}") == "fast" for i in range(10_000)) / 10_000
    assert abs(share - 0.5) < 0.02


@pytest.fixture(scope="module")
def simulated() -> dict[str, object]:
    return simulate("online-retail", DATA / "online_retail", arms_spec="fast,repeat")


def test_simulation_reports_every_arm_with_the_documented_keys(
        simulated: dict[str, object]) -> None:
    result: dict = simulated  # type: ignore[type-arg]
    assert {"dataset", "arms", "difference", "comparisons", "users", "notes"} <= set(result)
    assert set(result["arms"]) == {"fast", "repeat"}
    for arm in result["arms"].values():
        assert {"served", "clicks", "ctr", "conversions", "latency_ms_p50", "latency_ms_p99",
                "fallbacks"} <= set(arm)
        assert set(arm["ctr"]) == {"value", "ci_low", "ci_high"}
        assert arm["ctr"]["ci_low"] <= arm["ctr"]["value"] <= arm["ctr"]["ci_high"]
    assert {"arm_a", "arm_b", "ctr_diff", "ci", "p_value", "significant", "paired"} <= set(
        result["difference"])
    assert result["notes"] == []


def test_simulation_serves_every_user_by_every_arm_once_per_event_with_history(
        simulated: dict[str, object]) -> None:
    from stream_rec.datasets import load_dataset

    result: dict = simulated  # type: ignore[type-arg]
    events = load_dataset("online-retail", DATA / "online_retail").events
    seen: set[str] = set()
    served_users: set[str] = set()
    expected = 0
    for event in events:
        if event.user_id in seen:
            expected += 1
            served_users.add(event.user_id)
        seen.add(event.user_id)
    assert result["asked"] == expected
    assert [arm["served"] for arm in result["arms"].values()] == [expected, expected]
    assert result["users"] == result["comparisons"][0]["users"] == len(served_users)
    assert all(arm["clicks"] <= arm["served"] for arm in result["arms"].values())


def test_simulation_difference_is_the_paired_difference_of_the_arms_rates(
        simulated: dict[str, object]) -> None:
    result: dict = simulated  # type: ignore[type-arg]
    fast, repeat = result["arms"]["fast"], result["arms"]["repeat"]
    diff = result["difference"]
    assert (diff["arm_a"], diff["arm_b"]) == ("fast", "repeat")
    assert diff["ctr_diff"] == pytest.approx(fast["ctr"]["value"] - repeat["ctr"]["value"])
    conversion = result["comparisons"][0]["conversion_rate"]
    assert conversion["diff"] == pytest.approx(
        fast["conversion_rate"]["value"] - repeat["conversion_rate"]["value"])
    low, high = diff["ci"]
    assert low <= diff["ctr_diff"] <= high


def test_simulation_is_deterministic_and_honours_the_event_limit() -> None:
    first = simulate("online-retail", DATA / "online_retail", arms_spec="fast,repeat",
                     limit_events=200)
    again = simulate("online-retail", DATA / "online_retail", arms_spec="fast:0.5,repeat:0.5",
                     limit_events=200)
    assert first["events"] == 200

    def counts(result: dict) -> dict:  # type: ignore[type-arg]
        return {name: (arm["served"], arm["clicks"], arm["conversions"])
                for name, arm in result["arms"].items()}

    assert counts(first) == counts(again)
    assert first["difference"] == again["difference"]


def test_arm_names_accept_plain_names_and_ignore_weights() -> None:
    assert arm_names("fast,slm") == ["fast", "slm"]
    assert arm_names(" fast:0.5 , slm:0.5,fast") == ["fast", "slm"]
    with pytest.raises(ConfigError, match="at least one arm"):
        arm_names(" , ")


def test_simulation_without_a_loadable_model_drops_the_model_arm_and_says_so(
        tmp_path: Path) -> None:
    result = simulate("online-retail", DATA / "online_retail", arms_spec="fast,slm",
                      limit_events=100, model_path=str(tmp_path / "missing.gguf"))
    assert list(result["arms"]) == ["fast"]
    assert result["comparisons"] == [] and result["difference"] is None
    assert any("model arms dropped" in note for note in result["notes"])


def test_report_writes_json_and_chart(simulated: dict[str, object], tmp_path: Path) -> None:
    paths = write_report(simulated, tmp_path)  # type: ignore[arg-type]
    assert json.loads((tmp_path / "ab.json").read_text())["dataset"] == "online-retail"
    if len(paths) == 2:
        assert (tmp_path / CHART).stat().st_size > 0
