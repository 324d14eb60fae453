"""The pull API on two workers of one group, on the embedded Tansu broker.

Two ``stream-rec worker`` processes share the events' partitions. Fresh users view items;
each user's latest recommendation (read from the recs topic) must come back, byte for byte
the same JSON, from ``GET /users/{user}/recommendations`` on *either* worker: the owner of
the user's partition answers, the other forwards to it. The user's state needs the token.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from pipeline_support import WARMUP, Pipeline, fresh_views, open_pipeline, wait_for

from stream_rec.broker.publisher import event_records
from stream_rec.core import codec
from stream_rec.local.brokers import RunningBroker
from stream_rec.local.processes import WorkerProcess
from stream_rec.serving.pull import user_partition

pytestmark = pytest.mark.integration

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" /
                     "recommendation.schema.json").read_text())
USERS = 12


@pytest.fixture
def tansu_pipeline(tansu_broker: RunningBroker, tmp_path: Path) -> Iterator[Pipeline]:
    yield from open_pipeline(tansu_broker, tmp_path, "t", commit_interval_s=0.5, model_path="none",
                             trigger_types=("view", "rec_request"))


def partitions_of(worker: WorkerProcess) -> list[int]:
    status, body = worker.get("/api/worker")
    return codec.loads(body)["worker"]["partitions"] if status == 200 else []


def test_either_of_two_workers_returns_the_users_latest_recommendation(
        tansu_pipeline: Pipeline) -> None:
    pipe = tansu_pipeline
    first = pipe.start_worker(data_dir=pipe.run_dir / "w0")
    second = pipe.start_worker(data_dir=pipe.run_dir / "w1")
    workers = [first, second]
    wait_for(lambda: sorted(partitions_of(first) + partitions_of(second)) == [0, 1, 2, 3]
             and all(partitions_of(w) for w in workers), "both workers to own partitions")
    pipe.publish(list(event_records(WARMUP)))
    views = fresh_views(f"pull-{uuid.uuid4().hex[:6]}", USERS, per_user=2)
    pipe.publish(list(event_records(views)))
    recs = pipe.read(pipe.settings.topics.recs, until=len(views))

    latest: dict[str, dict[str, object]] = {}
    for rec in recs:
        held = latest.get(rec["user_id"])
        if held is None or rec["generated_at_ms"] >= held["generated_at_ms"]:  # type: ignore[operator]
            latest[rec["user_id"]] = rec
    users = sorted({event.user_id for event in views})
    owners = {w.url: set(partitions_of(w)) for w in workers}
    forwarded = 0
    for user in users:
        owner = next(url for url, parts in owners.items()
                     if user_partition(user, pipe.settings.partitions) in parts)
        for worker in workers:
            def answered(worker: WorkerProcess = worker, user: str = user) -> bool:
                status, body = worker.get(f"/users/{user}/recommendations", token=False)
                return status == 200 and codec.loads(body)["rec_id"] == latest[user]["rec_id"]

            wait_for(answered, f"{worker.url} to answer {user}'s latest recommendation", 30)
            status, body = worker.get(f"/users/{user}/recommendations", token=False)
            assert status == 200
            assert codec.loads(body) == latest[user]
            jsonschema.validate(codec.loads(body), SCHEMA)
            forwarded += worker.url != owner
    assert forwarded >= len(users)  # every user was asked once of the worker not owning it


def test_user_state_is_off_without_the_token_and_routed_with_it(
        tansu_pipeline: Pipeline) -> None:
    pipe = tansu_pipeline
    first = pipe.start_worker(data_dir=pipe.run_dir / "w0")
    second = pipe.start_worker(data_dir=pipe.run_dir / "w1", web_token=first.settings.web_token)
    wait_for(lambda: bool(partitions_of(first)) and bool(partitions_of(second)),
             "both workers to own partitions")
    views = fresh_views(f"state-{uuid.uuid4().hex[:6]}", 4)
    pipe.publish(list(event_records(views)))
    pipe.read(pipe.settings.topics.recs, until=len(views))
    user = views[0].user_id

    for worker in (first, second):
        status, body = worker.get(f"/users/{user}/state", token=False)
        assert status == 403, body
        wait_for(lambda w=worker: w.get(f"/users/{user}/state")[0] == 200,
                 f"{worker.url} to serve {user}'s state")
        state = codec.loads(worker.get(f"/users/{user}/state")[1])
        assert state["user_id"] == user and state["counts"] == {"view": 1}
    console = codec.loads(first.get("/api/console", token=False)[1])
    assert sorted(w["url"] for w in console["workers"]) == sorted([first.url, second.url])
    assert console["totals"]["events"] == len(views)


def test_a_worker_without_a_token_serves_no_state(tmp_path: Path,
                                                  tansu_pipeline: Pipeline) -> None:
    pipe = tansu_pipeline
    worker = WorkerProcess(pipe.settings, log_path=tmp_path / "w.log")
    worker.settings = replace(worker.settings, web_token="", data_dir=pipe.run_dir / "w")
    pipe.workers.append(worker.start())
    worker.wait_ready(120)
    status, body = worker.get("/users/anyone/state")
    assert status == 404 and b"STREAM_REC_WEB_TOKEN" in body
