"""Online attribution end to end, on Tansu and on real Kafka: a worker serves three arms,
clients click and buy, and the ab-arms table (what ``stream-rec ab report`` reads) counts
exactly what each arm earned. No LLM worker runs: the LLM arm's recs are its fallbacks."""

from __future__ import annotations

from collections import Counter

import pytest
from pipeline_support import VIEWS_ONLY, WARMUP, Pipeline, arm_counters, fresh_views, wait_for

from stream_rec.broker.publisher import event_records
from stream_rec.core.events import Event

pytestmark = pytest.mark.integration


def test_clicks_and_purchases_are_attributed_to_the_arm_that_served_them(
        pipeline: Pipeline) -> None:
    arms = "slm:0.4,llm:0.3,holdout:0.3"
    worker = pipeline.start_worker(model_path="none", arms=arms, trigger_types=VIEWS_ONLY,
                                   llm_deadline_ms=300.0)  # no LLM worker: llm recs fall back
    pipeline.publish(list(event_records(WARMUP)))
    views = fresh_views("attr", users=30)
    pipeline.publish(list(event_records(views)))
    recs = {r["user_id"]: r for r in pipeline.read(pipeline.settings.topics.recs,
                                                    until=len(views))}
    expected: dict[str, Counter[str]] = {}
    feedback: list[Event] = []
    ts = views[-1].ts_ms + 10_000
    for n, view in enumerate(views):
        rec = recs[view.user_id]
        want = expected.setdefault(rec["arm"], Counter())
        want["served"] += 1
        want["fallbacks"] += int(rec["degraded"])
        items = [i["item_id"] for i in rec["items"]]
        assert items, rec
        if n % 2 == 0:  # a click, and the client's retry of it
            click = Event(f"attr-c{n}", "rec_click", view.user_id, ts + n, item_id=items[0],
                          rec_id=rec["rec_id"])
            feedback += [click, click]
            want["clicks"] += 1
        if n % 3 == 0:  # buys a recommended item: a conversion worth 2 x 2.5
            feedback.append(Event(f"attr-p{n}", "purchase", view.user_id, ts + n,
                                  item_id=items[-1], price=2.5, quantity=2))
            want["conversions"] += 1
            want["revenue"] += 5
        if n % 5 == 0:  # buys something else: no conversion
            other = next(e.item_id for e in WARMUP if e.item_id not in items)
            feedback.append(Event(f"attr-q{n}", "purchase", view.user_id, ts + n,
                                  item_id=other, price=9.0))
    feedback.append(Event("attr-stray", "rec_click", views[0].user_id, ts, item_id="x",
                          rec_id="no-such-rec"))
    pipeline.publish(list(event_records(feedback)))

    def counted() -> dict[str, dict[str, float]]:
        return {arm: {"served": c.served, "fallbacks": c.fallbacks, "clicks": c.clicks,
                      "conversions": c.conversions, "revenue": c.revenue}
                for arm, c in arm_counters(pipeline).items()}

    want_all = {arm: {k: float(c[k]) for k in ("served", "fallbacks", "clicks",
                                               "conversions", "revenue")}
                for arm, c in expected.items()}
    wait_for(lambda: counted() == want_all, f"per-arm counts {want_all}")
    assert set(expected) == {"slm", "llm", "holdout"}
    assert expected["llm"]["fallbacks"] == expected["llm"]["served"]  # no LLM worker ran
    assert expected["slm"]["fallbacks"] == expected["holdout"]["fallbacks"] == 0
    totals = arm_counters(pipeline)
    assert all(c.converted_recs == c.conversions for c in totals.values())
    exported = worker.metrics()
    for arm, want in expected.items():
        assert exported[f"stream_rec_ab_clicks{{arm={arm}}}"] == want["clicks"]
