"""The black-box check, run as ops would run it: a real-data slice sent by a client through a
real broker to a worker and its embedder (the real GGUF model), every recommendation compared
with what `stream-rec eval --protocol served` reports for the same trigger."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from stream_rec.broker.publisher import catalog_records, publish
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.datasets import load_dataset
from stream_rec.evaluation.model_arm import model_hooks_factory
from stream_rec.evaluation.run import evaluate
from stream_rec.local.brokers import RunningBroker
from stream_rec.local.processes import WorkerProcess
from stream_rec.local.verify import VerifyOptions, read_expected, run_verify

pytestmark = [pytest.mark.integration, pytest.mark.model]

DATA = Path(__file__).resolve().parents[2] / "data"
SLICE = 300


def test_a_slice_through_the_broker_gets_exactly_the_lists_eval_reports(
        broker: RunningBroker, tmp_path: Path) -> None:
    recs = tmp_path / "eval-recs.jsonl"
    results = evaluate("online-retail", DATA / "online_retail", "served", ["slm"],
                       out_dir=None, progress=False, ablation=False, plots=False,
                       protocol_options={"max_events": SLICE},
                       model_hooks=model_hooks_factory(["slm"]), recs_out=recs)
    expected = read_expected(recs, "slm")
    scheme = "tansu" if broker.info.kind == "tansu" else "kafka"
    settings = replace(Settings(), broker=f"{scheme}://{broker.info.bootstrap}",
                       data_dir=tmp_path / "state")

    report = run_verify(settings, load_dataset("online-retail", DATA / "online_retail"),
                        expected, VerifyOptions(max_events=SLICE), Console(quiet=True))

    assert report.events_sent == report.triggers == SLICE and report.dead_letters == 0
    assert report.models == ["slm/gemma-3-270m-q4_k_m"]  # the model's features were served
    assert report.compared == results["split"]["cases"] == len(expected) > 250
    assert report.identical == report.compared, report.mismatches
    assert report.worker_metrics == report.eval_metrics
    assert report.worker_metrics["hr@10"] > 0


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_REC_")}
    env["STREAM_REC_TOPIC_PREFIX"] = settings.topic_prefix
    env["STREAM_REC_BROKER"] = settings.broker
    return subprocess.run([sys.executable, "-m", "stream_rec", *args], capture_output=True,
                          text=True, timeout=600, env=env)


def test_the_check_by_hand_replay_in_order_then_compare_with_eval(
        tansu_broker: RunningBroker, tmp_path: Path) -> None:
    """What an operator runs against workers they started: `replay --in-order --recs-out`,
    `eval --protocol served --recs-out`, then `verify --worker-recs` compares."""
    tag = uuid.uuid4().hex[:8]
    settings = replace(Settings(), broker=f"tansu://{tansu_broker.info.bootstrap}",
                       topic_prefix=f"hand{tag}", app_id=f"hand-{tag}",
                       data_dir=tmp_path / "state")
    dataset = load_dataset("online-retail", DATA / "online_retail")
    asyncio.run(ensure_topics(tansu_broker.info.bootstrap, settings))
    asyncio.run(publish(tansu_broker.info.bootstrap, settings.topics.catalog,
                        catalog_records(dataset.catalog), one_record_batches=True))
    embedder = WorkerProcess.embedder(settings, log_path=tmp_path / "embedder.log").start()
    worker = WorkerProcess(settings, log_path=tmp_path / "worker.log")
    try:
        embedder.wait_ready(timeout_s=300)
        worker.start().wait_ready(timeout_s=300)
        sent = _cli(settings, "replay", "--dataset", "online-retail", "--dataset-dir",
                    str(DATA / "online_retail"), "--limit", str(SLICE), "--no-catalog",
                    "--in-order", "--recs-out", str(tmp_path / "worker.jsonl"))
        assert sent.returncode == 0, sent.stderr
    finally:
        worker.stop()
        embedder.stop()
    evaluated = _cli(settings, "eval", "--dataset", "online-retail", "--data-dir",
                     str(DATA / "online_retail"), "--protocol", "served", "--max-events",
                     str(SLICE), "--arms", "slm", "--out", str(tmp_path / "eval"),
                     "--recs-out", str(tmp_path / "eval.jsonl"))
    assert evaluated.returncode == 0, evaluated.stderr

    checked = _cli(settings, "verify", "--dataset", "online-retail", "--data-dir",
                   str(DATA / "online_retail"), "--max-events", str(SLICE), "--eval-recs",
                   str(tmp_path / "eval.jsonl"), "--worker-recs", str(tmp_path / "worker.jsonl"),
                   "--out", str(tmp_path / "verify"))

    assert checked.returncode == 0, checked.stderr[-2000:]
    summary = codec.loads((tmp_path / "verify" / "verify.json").read_bytes())
    assert summary["identical"] == summary["compared"] > 250
    assert summary["worker_metrics"] == summary["eval_metrics"]
