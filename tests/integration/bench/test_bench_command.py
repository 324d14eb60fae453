"""``stream-rec bench`` end to end for a few seconds on embedded Tansu (asserts no timings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream_rec.bench import SUMMARY_KEYS
from stream_rec.core import codec

pytestmark = pytest.mark.integration


def test_bench_command_writes_a_summary_with_sane_values(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "stream_rec", "bench", "--broker", "tansu", "--workers", "1",
         "--rate", "100", "--users", "300", "--duration", "4", "--warmup", "1",
         "--summary-json", str(summary_path), "--data-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = codec.loads(summary_path.read_bytes())
    assert set(SUMMARY_KEYS) <= set(summary)
    assert (summary["broker"], summary["workers"], summary["offered_rate"]) == ("tansu", 1, 100.0)
    assert summary["recs_per_s"] > 0
    assert summary["events_sent"] >= 300  # 5 s at 100/s, give or take
    assert summary["recs_received"] == summary["events_sent"] == summary["events_applied"]
    assert 0 < summary["latency_ms_p50"] <= summary["latency_ms_p99"]
    assert summary["rss_mb_max"] > 50
    assert summary["cpu_ms_per_rec"] > 0
