"""The SLM worker's LLM arm: one recommendation per trigger, whatever the LLM worker does."""

from __future__ import annotations

import pytest

from stream_rec.core.events import Event, RecItem, Recommendation
from stream_rec.llm.arm import LlmArm
from stream_rec.llm.messages import (
    RerankCandidate,
    RerankRequest,
    RerankResult,
    apply_order,
)

T0 = 1_300_000_000_000
ITEMS = [RecItem(f"i{n}", 1.0 - n / 10, f"reason {n}") for n in range(5)]
TITLES = {item.item_id: f"TITLE {item.item_id}" for item in ITEMS}


def _arm(max_pending: int = 4, deadline_ms: float = 1000.0) -> LlmArm:
    return LlmArm(worker_id="me", max_pending=max_pending, deadline_ms=deadline_ms, top_k=3)


def _ask(arm: LlmArm, n: int, *, origin_ms: float = 0.0, now_ms: int = 10,
         items: list[RecItem] = ITEMS) -> RerankRequest | Recommendation | None:
    event = Event(f"e{n}", "view", f"u{n}", T0 + n, item_id="i0")
    return arm.prepare(arm="llm", event=event, candidates=items, titles=TITLES,
                       history=["A", "B"], origin_ms=origin_ms, now_ms=now_ms,
                       fast_model="fast-scorer")


def _result(request: RerankRequest, order: list[str], status: str = "ok",
            reply_to: str = "me") -> RerankResult:
    return RerankResult(request.rec_id, request.user_id, reply_to, status, tuple(order),
                        "openai:gemma", 5.0, 0)


def test_a_request_carries_candidates_history_and_the_budget_left() -> None:
    arm = _arm()
    request = _ask(arm, 1, origin_ms=0.0, now_ms=100)
    assert isinstance(request, RerankRequest)
    assert [c.item_id for c in request.candidates] == [i.item_id for i in ITEMS]
    assert request.candidates[0].title == "TITLE i0" and request.history == ("A", "B")
    assert request.deadline_ms == 900.0 and request.deadline_at_ms == 1000.0
    assert request.reply_to == "me" and len(arm) == 1


def test_a_result_in_time_becomes_the_llm_ordered_recommendation() -> None:
    arm = _arm()
    request = _ask(arm, 1)
    assert isinstance(request, RerankRequest)
    rec = arm.on_result(_result(request, ["i3", "i1"]), now_ms=400)
    assert rec is not None and not rec.degraded and rec.fallback_reason is None
    assert [i.item_id for i in rec.items] == ["i3", "i1", "i0"]
    assert rec.model == "openai:gemma" and rec.arm == "llm" and rec.latency_ms == 400
    assert rec.trigger_ts_ms == T0 + 1 and len(arm) == 0


def test_at_the_deadline_the_fast_list_goes_out_tagged_and_a_late_result_is_dropped() -> None:
    arm = _arm()
    request = _ask(arm, 1)
    assert isinstance(request, RerankRequest)
    assert arm.expire(999) == []
    [rec] = arm.expire(1000)
    assert rec.degraded and rec.fallback_reason == "deadline" and rec.model == "fast-scorer"
    assert [i.item_id for i in rec.items] == ["i0", "i1", "i2"]
    assert arm.on_result(_result(request, ["i4"]), now_ms=1200) is None
    assert arm.outcomes["late"] == 1 and arm.outcomes["deadline"] == 1


def test_a_full_pending_table_sheds_at_once_with_the_fast_list() -> None:
    arm = _arm(max_pending=2)
    assert isinstance(_ask(arm, 1), RerankRequest)
    assert isinstance(_ask(arm, 2), RerankRequest)
    shed = _ask(arm, 3)
    assert isinstance(shed, Recommendation)
    assert shed.degraded and shed.fallback_reason == "shed"
    assert len(arm) == 2 and arm.max_pending_seen == 2 and arm.outcomes["shed"] == 1


@pytest.mark.parametrize(("status", "reason"), [("shed", "llm_busy"), ("error", "llm_error")])
def test_a_shed_or_failed_llm_answer_sends_the_fast_list_at_once(status: str,
                                                                  reason: str) -> None:
    arm = _arm()
    request = _ask(arm, 1)
    assert isinstance(request, RerankRequest)
    rec = arm.on_result(_result(request, [], status=status), now_ms=50)
    assert rec is not None and rec.degraded and rec.fallback_reason == reason


@pytest.mark.parametrize("order", [["i1", "zzz"], ["i1", "i1"]])
def test_an_answer_naming_an_unoffered_or_repeated_item_falls_back(order: list[str]) -> None:
    arm = _arm()
    request = _ask(arm, 1)
    assert isinstance(request, RerankRequest)
    rec = arm.on_result(_result(request, order), now_ms=50)
    assert rec is not None and rec.fallback_reason == "llm_error"
    assert [i.item_id for i in rec.items] == ["i0", "i1", "i2"]
    assert arm.outcomes["invalid"] == 1


def test_results_for_another_worker_are_ignored_and_leave_the_entry_pending() -> None:
    arm = _arm()
    request = _ask(arm, 1)
    assert isinstance(request, RerankRequest)
    assert arm.on_result(_result(request, ["i2"], reply_to="other"), now_ms=50) is None
    assert request.rec_id in arm


def test_a_redelivered_trigger_is_not_asked_twice() -> None:
    arm = _arm()
    assert isinstance(_ask(arm, 1), RerankRequest)
    assert _ask(arm, 1) is None
    assert len(arm) == 1


def test_with_no_budget_left_the_fast_list_goes_out_without_asking() -> None:
    arm = _arm(deadline_ms=1000.0)
    rec = _ask(arm, 1, origin_ms=0.0, now_ms=995)
    assert isinstance(rec, Recommendation) and rec.fallback_reason == "deadline"
    assert len(arm) == 0


def test_one_candidate_needs_no_llm_and_is_not_a_fallback() -> None:
    rec = _ask(_arm(), 1, items=ITEMS[:1])
    assert isinstance(rec, Recommendation) and not rec.degraded


def test_draining_answers_everything_pending_with_the_fast_list() -> None:
    arm = _arm()
    for n in range(3):
        _ask(arm, n)
    recs = arm.drain(now_ms=20)
    assert len(recs) == 3 and all(r.fallback_reason == "deadline" for r in recs)
    assert len(arm) == 0


def test_apply_order_keeps_unnamed_candidates_in_fast_order_and_cuts_to_top_k() -> None:
    cands = [RerankCandidate(f"c{n}", f"T{n}", 1.0, "r") for n in range(4)]
    assert [i.item_id for i in apply_order(cands, ["c2"], 3)] == ["c2", "c0", "c1"]
    assert [i.item_id for i in apply_order(cands, ["c3", "c2", "c1", "c0"], 4)] == [
        "c3", "c2", "c1", "c0"]
