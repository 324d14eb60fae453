"""The worker with the real GGUF model: catalog understanding, reranking and its fallback."""

from __future__ import annotations

import time
import urllib.request

import pytest
from pipeline_support import DEMO, Pipeline

from stream_rec.broker.publisher import catalog_records, event_records
from stream_rec.core import codec
from stream_rec.core.events import CatalogItem, Event
from stream_rec.local.brokers import RunningBroker
from stream_rec.local.processes import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.model]


@pytest.fixture
def broker(tansu_broker: RunningBroker) -> RunningBroker:
    """Model behaviour does not depend on the broker: these run on Tansu only."""
    return tansu_broker


def _readyz(worker: WorkerProcess) -> dict[str, object]:
    with urllib.request.urlopen(worker.url + "/readyz", timeout=5) as response:
        data: dict[str, object] = codec.loads(response.read())
        return data


def _embedded(worker: WorkerProcess) -> int:
    model = _readyz(worker)["model"]
    assert isinstance(model, dict)
    return int(model["items_embedded"])


def test_the_embedder_embeds_the_catalog_and_a_worker_has_every_vector_when_ready(
        pipeline: Pipeline) -> None:
    embedder = pipeline.start_embedder()
    model = _readyz(embedder)["model"]
    assert isinstance(model, dict) and len(str(model["sha256"])) == 64
    assert _embedded(embedder) == len(DEMO.catalog)

    worker = pipeline.start_worker()

    assert _embedded(worker) == len(DEMO.catalog)
    assert _readyz(worker)["model"]["name"] == model["name"]  # type: ignore[index]


def test_a_worker_that_embeds_itself_does_so_before_it_is_ready(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker(item_vectors="worker")
    ready = _readyz(worker)
    assert _embedded(worker) == len(DEMO.catalog)
    model = ready["model"]
    assert isinstance(model, dict) and len(str(model["sha256"])) == 64


def test_a_new_catalog_item_becomes_recommendable_without_a_restart(pipeline: Pipeline) -> None:
    pipeline.start_embedder()
    worker = pipeline.start_worker()
    seen = DEMO.catalog[0]
    twin = CatalogItem("NEW-TWIN-1", f"{seen.title} DELUXE", seen.category, 4.95)
    pipeline.publish(list(catalog_records([twin])), pipeline.settings.topics.catalog)
    deadline = time.monotonic() + 30
    while _embedded(worker) < len(DEMO.catalog) + 1:
        assert time.monotonic() < deadline, "the new item was never embedded"
        time.sleep(0.2)
    view = Event("newbie-view-1", "view", "newbie-1", DEMO.events[0].ts_ms, item_id=seen.item_id)
    pipeline.publish(list(event_records([view])))
    rec = pipeline.read(pipeline.settings.topics.recs, until=1)[0]
    items = {item["item_id"]: item for item in rec["items"]}
    assert "NEW-TWIN-1" in items, rec
    assert items["NEW-TWIN-1"]["reason"] == f"similar to {seen.title}"


def test_a_model_deadline_miss_yields_tagged_fallback_recommendations(
        pipeline: Pipeline) -> None:
    pipeline.start_worker(rerank_top_n=5, model_deadline_ms=1.0)
    events = DEMO.events[:40]
    pipeline.publish(list(event_records(events)))
    recs = pipeline.read(pipeline.settings.topics.recs, until=len(events))
    assert all(rec["degraded"] for rec in recs if len(rec["items"]) > 1)
    assert all(not rec["model"].endswith("+rerank") for rec in recs)
    assert sum(1 for rec in recs if rec["items"]) >= 0.9 * len(recs)


def test_with_time_to_spare_the_model_reranks_only_the_offered_items(pipeline: Pipeline) -> None:
    pipeline.start_worker(rerank_top_n=5, model_deadline_ms=20_000.0)
    events = DEMO.events[:30]
    pipeline.publish(list(event_records(events)))
    recs = pipeline.read(pipeline.settings.topics.recs, until=len(events), timeout_s=240)
    reranked = [rec for rec in recs if rec["model"].endswith("+rerank")]
    assert reranked and not any(rec["degraded"] for rec in reranked)
    catalog = {item.item_id for item in DEMO.catalog}
    for rec in reranked:
        ids = [item["item_id"] for item in rec["items"]]
        assert len(ids) == len(set(ids)) and set(ids) <= catalog
