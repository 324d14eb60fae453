"""The black-box check, run as ops would run it: a real-data slice sent by a client through a
real broker to a worker and its embedder (the real GGUF model), every recommendation compared
with what `stream-rec eval --protocol served` reports for the same trigger."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from stream_rec.config import Settings
from stream_rec.datasets import load_dataset
from stream_rec.evaluation.model_arm import model_hooks_factory
from stream_rec.evaluation.run import evaluate
from stream_rec.local.brokers import RunningBroker
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
