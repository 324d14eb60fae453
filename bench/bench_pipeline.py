"""End-to-end pipeline figures: one worker's throughput, and latency at a fixed offered load.

Runs the demo path (embedded broker, one worker process, real Online Retail events) twice:
as fast as the producer can go (throughput of recs), then paced (latency percentiles).
Prints the figures and writes them as JSON; it asserts nothing.

    python bench/bench_pipeline.py [--broker tansu|kafka] [--events 20000] [--rate 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from stream_rec.config import Settings
from stream_rec.demo import DemoOptions, run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="tansu")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--paced-events", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=Path("out/bench-pipeline.json"))
    args = parser.parse_args()
    console = Console(stderr=True, quiet=True)
    settings = replace(Settings.from_env(broker=args.broker), data_dir=Path("var/bench"))
    flat_out = run_demo(settings, DemoOptions(events=args.events, rate=0.0,
                                              show_every=10**9, timeout_s=900), console)
    paced = run_demo(settings, DemoOptions(events=args.paced_events, rate=args.rate,
                                           show_every=10**9, timeout_s=900), console)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cores": os.cpu_count(), "cpu": _cpu_model(),
                    "python": platform.python_version(), "ram_gb": _ram_gb(),
                    "load_avg_1m": os.getloadavg()[0]},
        "broker": args.broker,
        "max_rate": {"events": args.events, "recs_per_s": flat_out["recs_per_s"],
                     "latency_ms_p50": flat_out["latency_ms_p50"],
                     "latency_ms_p99": flat_out["latency_ms_p99"]},
        "paced": {"offered_per_s": args.rate, "events": args.paced_events,
                  "recs_per_s": paced["recs_per_s"], "latency_ms_p50": paced["latency_ms_p50"],
                  "latency_ms_p99": paced["latency_ms_p99"]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def _ram_gb() -> float:
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
