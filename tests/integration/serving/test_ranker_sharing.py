"""The learned ranker shared through the compacted ranker topic, on the session brokers.

Real events teach worker "teacher"; its publish interval is far beyond the test's length,
so only the clean-shutdown publish can put its contribution on the topic. A worker under a
new id then starts from what the teacher learned (not the priors) once ready; the teacher
restarted under its own id restores its contribution (counted once) and continues it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from pipeline_support import DEMO, Pipeline, wait_for

from stream_rec.broker.publisher import event_records
from stream_rec.core import codec
from stream_rec.core.features import FEATURES
from stream_rec.core.learned_ranker import RankerState
from stream_rec.local.processes import WorkerProcess

pytestmark = pytest.mark.integration

NEVER_S = 600.0  # no periodic publish within the test
PRIORS = np.asarray(RankerState.prior().weights)


def weights(worker: WorkerProcess) -> np.ndarray:
    """The worker's effective ranker weights, as its ``/metrics`` export them."""
    samples = worker.metrics()
    return np.asarray([samples[f"stream_rec_ranker_weight{{feature={name}}}"]
                       for name in FEATURES])


def ranker(worker: WorkerProcess) -> dict[str, Any]:
    summary: dict[str, Any] = worker.readyz()["ranker"]
    return summary


def latest_records(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """The ranker topic's latest record per contributor (what compaction keeps)."""
    return asyncio.run(_latest(pipeline.bootstrap, pipeline.settings.topics.ranker))


async def _latest(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    latest: dict[str, dict[str, Any]] = {}
    try:
        for _ in range(10):  # a few empty fetches: the topic is small and fully written
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    latest[message.key.decode()] = codec.loads(message.value)
    finally:
        await consumer.stop()
    return latest


def teach(pipeline: Pipeline, events: list[Any], *, recs_before: int) -> None:
    """Publish ``events`` and wait for their recommendations (one per purchase)."""
    pipeline.publish(list(event_records(events)))
    pipeline.read(pipeline.settings.topics.recs, until=recs_before + len(events))


def test_a_new_worker_starts_from_what_another_learned_and_a_restart_continues_it(
        pipeline: Pipeline) -> None:
    first, second = DEMO.events[:300], DEMO.events[300:450]
    teacher = pipeline.start_worker(model_path="none", ranker_contributor="teacher",
                                    ranker_publish_s=NEVER_S)
    # learning happens before each rec is sent: it is done once all recs are read
    teach(pipeline, first, recs_before=0)
    taught = ranker(teacher)
    learned = weights(teacher)
    assert taught["own_updates"] > 0 and taught["contributors"] == 1
    assert np.abs(learned - PRIORS).max() > 1e-3, "the teacher learned nothing"
    assert latest_records(pipeline) == {}  # nothing published yet: the interval is long
    assert teacher.stop() == 0
    [record] = latest_records(pipeline).values()  # the shutdown publish
    assert record["contributor"] == "teacher" and record["updates"] == taught["own_updates"]

    newcomer = pipeline.start_worker(model_path="none", ranker_contributor="newcomer",
                                     ranker_publish_s=0.5)
    np.testing.assert_allclose(weights(newcomer), learned, rtol=0, atol=1e-9)
    fresh = ranker(newcomer)
    assert (fresh["updates"], fresh["own_updates"], fresh["contributors"]) == (
        taught["own_updates"], 0, 1)
    assert newcomer.stop() == 0

    restarted = pipeline.start_worker(model_path="none", ranker_contributor="teacher",
                                      ranker_publish_s=0.5)
    np.testing.assert_allclose(weights(restarted), learned, rtol=0, atol=1e-9)
    back = ranker(restarted)
    assert (back["own_updates"], back["contributors"], back["seq"]) == (
        taught["own_updates"], 1, record["seq"])
    teach(pipeline, second, recs_before=len(first))
    wait_for(lambda: latest_records(pipeline)["teacher"]["updates"]
             == ranker(restarted)["own_updates"], "the restarted teacher's next record",
             timeout_s=30)
    continued = latest_records(pipeline)["teacher"]
    assert continued["updates"] > taught["own_updates"]  # stored + new, counted once
    assert continued["seq"] > record["seq"]
    assert ranker(restarted)["updates"] == continued["updates"]
