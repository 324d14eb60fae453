"""Write a sweep's results: results.json (stable keys), results.md and a latency plot."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stream_rec.bench.summary import SUMMARY_KEYS
from stream_rec.core import codec

__all__ = ["machine", "markdown_table", "write_report"]

_TABLE = (("broker", "broker"), ("workers", "workers"), ("offered_rate", "offered/s"),
          ("recs_per_s", "recs/s"), ("latency_ms_p50", "p50 ms"),
          ("latency_ms_p99", "p99 ms"), ("lag_max", "max lag"), ("sustained", "sustained"),
          ("rss_mb_max", "RSS MB"), ("cpu_ms_per_rec", "CPU ms/rec"),
          ("load_avg_1m_start", "load 1m"))


def machine() -> dict[str, Any]:
    """Cores, RAM, CPU model, Python and the load right now."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "cpu": cpu, "ram_gib": round(ram, 1),
            "python": platform.python_version(), "load_avg_1m": round(os.getloadavg()[0], 2)}


def markdown_table(runs: Sequence[dict[str, Any]]) -> str:
    """One row per run (skipped runs say why)."""
    lines = ["| " + " | ".join(title for _, title in _TABLE) + " |",
             "|" + "---|" * len(_TABLE)]
    ceilings = []
    for run in runs:
        if "ceiling" in run:
            ceilings.append(
                f"* **ceiling, {run['broker']}, {run['workers']} worker(s): "
                + (f"{run['ceiling']:,.0f}/s offered and sustained** "
                   f"({run['ceiling_recs_per_s']:,.1f} recs/s, p99 {run['ceiling_p99_ms']} ms, "
                   f"{run['ceiling_cpu_ms_per_rec']} CPU ms/rec)" if run["ceiling"] else
                   "no offered rate was sustained**"))
            continue
        if "skipped" in run:
            lines.append(f"| {run['broker']} | {run['workers']} | {run['offered_rate']} | "
                         f"skipped: {run['skipped']} |" + " |" * (len(_TABLE) - 4))
            continue
        cells = []
        for key, _ in _TABLE:
            value = run.get(key)
            if isinstance(value, float):
                value = f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
            elif isinstance(value, bool):
                value = "yes" if value else "no"
            elif isinstance(value, int) and key != "workers":
                value = f"{value:,}"
            cells.append("n/a" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(ceilings) + "\n" if ceilings else "")


def write_report(out_dir: Path, runs: Sequence[dict[str, Any]], *, command: str,
                 date: str) -> list[Path]:
    """results.json, results.md and (with matplotlib) latency_vs_throughput.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    m = machine()
    doc = {"date": date, "command": command, "machine": m, "keys": list(SUMMARY_KEYS),
           "runs": list(runs)}
    written = [out_dir / "results.json", out_dir / "results.md"]
    written[0].write_bytes(codec.dumps(doc) + b"\n")
    written[1].write_text(
        f"# stream-rec bench, {date}\n\n`{command}`\n\n{m['cores']} cores, {m['cpu']}, "
        f"{m['ram_gib']} GiB RAM, Python {m['python']}\n\n" + markdown_table(runs))
    plot = _plot(out_dir / "latency_vs_throughput.png", runs)
    return [*written, *([plot] if plot else [])]


def _plot(path: Path, runs: Sequence[dict[str, Any]]) -> Path | None:
    try:
        # lazy: matplotlib is the optional "plots" extra
        import matplotlib

        matplotlib.use("Agg")
        # lazy: matplotlib is the optional "plots" extra
        import matplotlib.pyplot as plt
    except ImportError:  # the `plots` extra is not installed
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    series: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        if "skipped" not in run and "ceiling" not in run and run.get("latency_ms_p50") is not None:
            series.setdefault((run["broker"], run["workers"]), []).append(run)
    for (broker, workers), points in sorted(series.items()):
        points = sorted(points, key=_offered)  # in order of offered load, max last
        xs = [p["recs_per_s"] for p in points]
        line, = ax.plot(xs, [p["latency_ms_p99"] for p in points], marker="o",
                        label=f"{broker}, {workers} worker{'s' if workers > 1 else ''}: p99")
        ax.plot(xs, [p["latency_ms_p50"] for p in points], marker=".", linestyle="--",
                color=line.get_color(), label="  p50")
        for p in points:
            ax.annotate(str(p["offered_rate"]), (p["recs_per_s"], p["latency_ms_p99"]),
                        textcoords="offset points", xytext=(3, 4), fontsize=7,
                        color=line.get_color())
    ax.set_xlabel("recommendations per second received (labels: offered events/s)")
    ax.set_ylabel("end-to-end latency, ms (log)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("stream-rec: latency vs throughput (event produced → rec received)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _offered(run: dict[str, Any]) -> float:
    rate = run.get("offered_rate")
    return float(rate) if isinstance(rate, int | float) else float("inf")
