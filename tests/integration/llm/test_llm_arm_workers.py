"""The LLM arm end to end: SLM and LLM workers on embedded Tansu, a real llama_cpp.server
on loopback serving the real GGUF, real attribution tables and the real ``ab report``.

Events here are real Online Retail purchases (to warm the item statistics) plus a few
synthetic views, clicks and purchases on real catalog items for fresh users, so the
expected per-arm counts are known exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
from pipeline_support import (
    DEMO,
    VIEWS_ONLY,
    WARMUP,
    Pipeline,
    arm_counters,
    fresh_views,
    wait_for,
)

from stream_rec.broker.publisher import event_records
from stream_rec.core import codec
from stream_rec.core.events import Event
from stream_rec.core.router import Router
from stream_rec.local.brokers import RunningBroker
from stream_rec.local.processes import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.model]



@pytest.fixture
def broker(tansu_broker: RunningBroker) -> RunningBroker:
    """The LLM arm does not depend on the broker kind: Tansu only (the embedded default)."""
    return tansu_broker


def _publish_paced(pipeline: Pipeline, events: list[Event], rate: float) -> None:
    for event in events:
        pipeline.publish(list(event_records([event])))
        time.sleep(1.0 / rate)


def _llm_worker(pipeline: Pipeline, llm_server: Any, **overrides: Any) -> WorkerProcess:
    return pipeline.start_worker(role="llm", llm_backend="openai", llm_url=llm_server.url,
                                 **overrides)


def _report_cli(pipeline: Pipeline, arms: str) -> dict[str, Any]:
    env = {**os.environ, "STREAM_REC_APP_ID": pipeline.settings.app_id,
           "STREAM_REC_ARMS": arms}
    done = subprocess.run(
        [sys.executable, "-m", "stream_rec", "ab", "report", "--json",
         "--broker", f"tansu://{pipeline.bootstrap}"],
        env=env, capture_output=True, timeout=120, check=True)
    report: dict[str, Any] = codec.loads(done.stdout)
    return report


def test_two_workers_serve_both_arms_each_user_sticks_to_one_and_the_report_counts_them(
        pipeline: Pipeline, llm_server: Any) -> None:
    arms = "slm:0.5,llm:0.5"
    slm = pipeline.start_worker(arms=arms, trigger_types=VIEWS_ONLY, llm_deadline_ms=20_000.0,
                                llm_rerank_top_n=20, llm_history_items=10)
    _llm_worker(pipeline, llm_server, llm_picks=1, llm_max_in_flight=8)
    pipeline.publish(list(event_records(WARMUP)))
    views = fresh_views("both", users=8, per_user=2)
    _publish_paced(pipeline, views, rate=2.0)
    recs = pipeline.read(pipeline.settings.topics.recs, until=len(views), timeout_s=120)

    assert {r["trigger_event_id"] for r in recs} == {e.event_id for e in views}
    router = Router.from_spec(arms, pipeline.settings.experiment_salt)
    arm_of: dict[str, set[str]] = {}
    for rec in recs:
        arm_of.setdefault(rec["user_id"], set()).add(rec["arm"])
        assert rec["arm"] == router.assign(rec["user_id"])
    assert all(len(found) == 1 for found in arm_of.values()), arm_of
    by_arm = Counter(rec["arm"] for rec in recs)
    assert set(by_arm) == {"slm", "llm"}, by_arm
    llm_recs = [r for r in recs if r["arm"] == "llm"]
    reranked = [r for r in llm_recs if not r["degraded"]]
    assert reranked and all(r["model"].startswith("openai:") for r in reranked)
    assert all(r["items"] for r in recs)
    catalog = {item.item_id for item in DEMO.catalog}
    assert all({i["item_id"] for i in r["items"]} <= catalog for r in recs)

    wait_for(lambda: {a: c.served for a, c in arm_counters(pipeline).items()} == dict(by_arm),
              "the ab-arms table to count every recommendation")
    report = _report_cli(pipeline, arms)
    assert list(report["arms"]) == ["slm", "llm"]
    for name, row in report["arms"].items():
        assert row["served"] == by_arm[name]
        assert set(row["ctr"]) == {"value", "ci_low", "ci_high"}
        assert row["latency_ms_p50"] is not None and row["latency_ms_p99"] is not None
    assert report["arms"]["llm"]["fallbacks"] == len(llm_recs) - len(reranked)
    assert report["difference"]["arm_a"] == "slm"
    assert slm.metric_total("stream_rec_ab_served") == len(recs)


def test_with_the_llm_worker_stopped_recommendations_keep_flowing_tagged_as_fallbacks(
        pipeline: Pipeline, llm_server: Any) -> None:
    deadline_ms = 3000.0
    pipeline.start_worker(model_path="none", arms="llm:1.0", trigger_types=VIEWS_ONLY,
                          llm_deadline_ms=deadline_ms)
    llm = _llm_worker(pipeline, llm_server, llm_picks=1)
    pipeline.publish(list(event_records(WARMUP)))
    first = fresh_views("stop-a", users=3)
    _publish_paced(pipeline, first, rate=1.0)
    topic = pipeline.settings.topics.recs
    recs = pipeline.read(topic, until=len(first))
    assert any(not r["degraded"] and r["model"].startswith("openai:") for r in recs), recs

    llm.stop()
    second = fresh_views("stop-b", users=6)
    pipeline.publish(list(event_records(second)))
    recs = pipeline.read(topic, until=len(first) + len(second))
    later = [r for r in recs if r["trigger_event_id"] in {e.event_id for e in second}]
    assert len(later) == len(second)
    for rec in later:
        assert rec["arm"] == "llm" and rec["degraded"] and rec["fallback_reason"] == "deadline"
        assert rec["items"] and rec["latency_ms"] >= deadline_ms * 0.9


def test_a_too_slow_llm_worker_is_answered_by_the_deadline(
        pipeline: Pipeline, llm_server: Any) -> None:
    # one pick of the real model costs ~0.5-1 s here, far beyond a 150 ms budget
    pipeline.start_worker(model_path="none", arms="llm:1.0", trigger_types=VIEWS_ONLY,
                          llm_deadline_ms=150.0)
    llm = _llm_worker(pipeline, llm_server, llm_picks=1)
    pipeline.publish(list(event_records(WARMUP)))
    views = fresh_views("slow", users=5)
    _publish_paced(pipeline, views, rate=2.0)
    recs = pipeline.read(pipeline.settings.topics.recs, until=len(views))
    assert all(r["degraded"] and r["fallback_reason"] == "deadline" for r in recs), recs
    wait_for(lambda: llm.metric_total("stream_rec_llm_requests_total") >= 1,
              "the LLM worker to see the requests")
    outcomes = llm.metrics()
    assert outcomes.get("stream_rec_llm_requests_total{outcome=ok}", 0) == 0


def test_a_burst_is_shed_at_both_bounded_queues_and_every_trigger_gets_one_rec(
        pipeline: Pipeline, llm_server: Any) -> None:
    max_pending, max_in_flight = 6, 2
    slm = pipeline.start_worker(model_path="none", arms="llm:1.0", trigger_types=VIEWS_ONLY,
                                llm_deadline_ms=5000.0, llm_max_pending=max_pending)
    llm = _llm_worker(pipeline, llm_server, llm_picks=1, llm_max_in_flight=max_in_flight)
    pipeline.publish(list(event_records(WARMUP)))
    burst = fresh_views("burst", users=60)
    pipeline.publish(list(event_records(burst)))
    recs = pipeline.read(pipeline.settings.topics.recs, until=len(burst), timeout_s=120)

    assert sorted(r["trigger_event_id"] for r in recs) == sorted(e.event_id for e in burst)
    reasons = Counter(r["fallback_reason"] for r in recs)
    assert reasons["shed"] > 0, reasons  # the SLM worker's pending table was full
    assert reasons["llm_busy"] + reasons["deadline"] + reasons[None] > 0, reasons
    slm_metrics, llm_metrics = slm.metrics(), llm.metrics()
    assert 0 < slm_metrics["stream_rec_llm_arm_pending_max_seen"] <= max_pending
    assert slm_metrics["stream_rec_llm_arm_pending_limit"] == max_pending
    assert 0 < llm_metrics["stream_rec_llm_in_flight_max_seen"] <= max_in_flight
    assert slm_metrics["stream_rec_llm_arm_pending"] == 0  # all answered


def test_an_llm_worker_on_a_local_gguf_reranks_within_the_deadline(pipeline: Pipeline) -> None:
    pipeline.start_worker(model_path="none", arms="llm:1.0", trigger_types=VIEWS_ONLY,
                          llm_deadline_ms=20_000.0, llm_rerank_top_n=20)
    llm = pipeline.start_worker(role="llm", llm_backend="local")
    pipeline.publish(list(event_records(WARMUP)))
    views = fresh_views("local", users=3)
    _publish_paced(pipeline, views, rate=1.0)
    recs = pipeline.read(pipeline.settings.topics.recs, until=len(views), timeout_s=90)
    assert all(not r["degraded"] and r["model"].startswith("llm:gemma") for r in recs), recs
    assert llm.metrics()["stream_rec_llm_requests_total{outcome=ok}"] == len(views)


def test_a_stopping_slm_worker_sends_its_pending_llm_recommendations_as_fallbacks(
        pipeline: Pipeline) -> None:
    slm = pipeline.start_worker(model_path="none", arms="llm:1.0", trigger_types=VIEWS_ONLY,
                                llm_deadline_ms=120_000.0)  # no LLM worker: all stay pending
    pipeline.publish(list(event_records(WARMUP)))
    views = fresh_views("drain", users=4)
    pipeline.publish(list(event_records(views)))
    wait_for(lambda: slm.metrics()["stream_rec_llm_arm_pending"] == len(views),
              "the requests to be pending", timeout_s=30)
    stopped = time.monotonic()
    slm.stop()
    recs = pipeline.read(pipeline.settings.topics.recs, until=len(views), timeout_s=30)
    assert time.monotonic() - stopped < 60  # long before the two-minute deadline
    assert all(r["degraded"] and r["fallback_reason"] == "deadline" for r in recs)
