"""``stream-rec demo`` (the README's main command, ``make run``) as a newcomer runs it: no
broker configured, so it starts the embedded Tansu, the embedder with the default GGUF
model and a serving worker, replays real shop events with hostile ones mixed in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream_rec.datasets import load_demo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def test_the_demo_on_the_embedded_default_answers_every_trigger_and_dead_letters_the_bad(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_REC_")}
    summary_path = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "stream_rec", "demo", "--events", "400", "--rate", "0",
         "--inject-bad", "6", "--show-every", "100", "--data-dir", str(tmp_path / "var"),
         "--summary-json", str(summary_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())

    demo = load_demo()
    assert summary["broker"] == "tansu"
    assert summary["events_sent"] == 400
    assert summary["recs_out"] == sum(1 for e in demo.events[:400] if e.type == "purchase")
    assert summary["dlq"] == 6
    assert sum(summary["dlq_fields"].values()) == 6
    assert summary["models"] == ["gemma-3-270m-q4_k_m"]
    assert summary["items_embedded"] == len(demo.catalog)
    assert summary["model"]["sha256"]
    assert summary["latency_ms_p50"] > 0
    # what the newcomer sees: the embedder and the worker announced, recs with reasons
    shown = done.stdout + done.stderr
    assert "the model embedded the catalog" in shown
    assert "ready in" in shown
    assert " — " in shown
