"""What `stream-rec eval --protocol served` reports is what the worker's handler sends:
the same events, one at a time, give the same list for every trigger (no broker here; the
integration test `tests/integration/serving/test_verify.py` checks it over a real broker
with the model)."""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.datasets import load_dataset
from stream_rec.evaluation.run import evaluate
from stream_rec.serving.handlers import EventHandler
from stream_rec.serving.runtime import build_runtime

DATA = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    offset: int
    partition: int
    topic: str = "stream-rec.events"
    timestamp: float = 0.0


@pytest.mark.parametrize(("dataset", "folder"), [("movielens", "movielens"),
                                                  ("online-retail", "online_retail")])
def test_the_worker_sends_what_eval_reports_for_every_trigger(
        dataset: str, folder: str, tmp_path: Path) -> None:
    recs_out = tmp_path / "recs.jsonl"
    results = evaluate(dataset, DATA / folder, "served", ["fast"], out_dir=None,
                       progress=False, ablation=False, plots=False, recs_out=recs_out)
    expected = {row["trigger_event_id"]: row["items"]
                for row in map(codec.loads, recs_out.read_bytes().splitlines())}
    loaded = load_dataset(dataset, DATA / folder)
    # a worker without the model serves the `fast` arm: the learned ranker, no model features
    runtime = build_runtime(Settings(model_path="none", broker="kafka://127.0.0.1:1"),
                            "127.0.0.1:1")
    for item in loaded.catalog:
        runtime.recommender.catalog.upsert(item)
    handler = EventHandler(runtime, {})
    offsets: dict[int, int] = {}
    sent: dict[str, list[str]] = {}
    for event in loaded.events:
        partition = zlib.crc32(event.user_id.encode()) % 4  # four partitions, one worker
        offset = offsets[partition] = offsets.get(partition, -1) + 1
        out = asyncio.run(handler.handle(Record(event.user_id.encode(),
                                                codec.dumps(event.to_dict()), offset,
                                                partition)))
        assert out.dead_letters == []
        for rec in out.recs:
            sent[rec.trigger_event_id] = [item.item_id for item in rec.items]

    assert results["split"]["cases"] == len(expected) > 100
    assert {trigger: sent.get(trigger) for trigger in expected} == expected
