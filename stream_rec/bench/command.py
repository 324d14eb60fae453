"""What ``stream-rec bench`` does: run the points, print each, write the reports."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from stream_rec.bench.report import markdown_table, write_report
from stream_rec.bench.run import BenchOptions, run_sweep
from stream_rec.config import Settings
from stream_rec.core import codec

__all__ = ["bench_main"]


def bench_main(settings: Settings, *, brokers: Sequence[str], workers: Sequence[int],
               rates: Sequence[float | None], users: int, duration_s: float,
               warmup_s: float, backlog: int, out: Path | None, summary_json: Path | None,
               console: Console, command: str,
               ceiling_from: float | None = None) -> list[dict[str, Any]]:
    """Run every (broker, workers, rate) point, and with ``ceiling_from`` a search for the
    highest sustained rate from there; raises ValueError on a bad option."""
    if not brokers or not workers or not (rates or ceiling_from):
        raise ValueError("--broker, --workers and --rate each need at least one value")
    if any(n < 1 for n in workers) or any(r is not None and r <= 0 for r in rates):
        raise ValueError("workers must be >= 1 and rates > 0 (or max)")
    if duration_s <= 0 or users < 1:
        raise ValueError("--duration and --users must be > 0")
    run_dir = Path(settings.data_dir) / "bench"
    settings = replace(settings, log_level="warning")
    base = BenchOptions(users=users, duration_s=duration_s, warmup_s=warmup_s,
                        backlog=backlog)

    def show(row: dict[str, Any]) -> None:
        if "ceiling" in row:
            console.print(f"[bold]{row['broker']:6} x{row['workers']} ceiling: "
                          + (f"{row['ceiling']:,.0f}/s offered and sustained "
                             f"({row['ceiling_recs_per_s']:,.0f} recs/s, p99 "
                             f"{row['ceiling_p99_ms']} ms, {row['ceiling_cpu_ms_per_rec']} "
                             "CPU ms/rec)[/]" if row["ceiling"] else "no rate sustained[/]"))
            return
        if "skipped" in row:
            console.print(f"[yellow]skipped[/] {row['broker']} x{row['workers']} "
                          f"@{row['offered_rate']}: {row['skipped']}")
            return
        console.print(
            f"{row['broker']:6} x{row['workers']} @{row['offered_rate']!s:>6}/s: "
            f"[bold]{row['recs_per_s']:,.0f} recs/s[/], p50 {row['latency_ms_p50']} ms, "
            f"p99 {row['latency_ms_p99']} ms, lag max {row['lag_max']}, "
            f"RSS {row['rss_mb_max']} MB, {row['cpu_ms_per_rec']} CPU ms/rec "
            f"{_split(row)}(load {row['load_avg_1m_start']}), "
            f"{'sustained' if row['sustained'] else 'not sustained'}")

    runs = run_sweep(settings, brokers, workers, rates, base, run_dir, on_result=show,
                     ceiling_from=ceiling_from)
    date = time.strftime("%Y-%m-%d")
    if out is not None:
        for path in write_report(out, runs, command=command, date=date):
            console.print(f"wrote {path}")
    else:
        console.print(markdown_table(runs))
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        doc = runs[0] if len(runs) == 1 else {"date": date, "command": command, "runs": runs}
        summary_json.write_bytes(codec.dumps(doc) + b"\n")
    return runs


def _split(row: dict[str, Any]) -> str:
    stages = ("broker_io", "state", "ranking", "output")
    if f"cpu_ms_per_rec_{stages[0]}" not in row:
        return ""
    return "(" + ", ".join(f"{s} {row[f'cpu_ms_per_rec_{s}']}" for s in stages) + ") "
