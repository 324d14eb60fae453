"""Soak: the fault scenarios of tests/integration/test_faults.py, longer, on both brokers.

More kills, more events, state kept and deleted, exactly-once on Kafka, a slow reader next
to a baseline. Prints one line of figures per run and writes them all as JSON; it asserts
nothing (the tests do). Every line states the machine and the date.

    python bench/soak.py                              # everything (~30 min on 2 cores)
    python bench/soak.py --broker tansu --only kill_loop --kills 10 --events 20000
    python bench/soak.py --quick                      # a smaller pass (~10 min)
    python bench/soak.py --worker-pythonpath /tmp/patched   # try a patched stream_rec
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_rec.chaos import (
    ChaosResult,
    broker_restart,
    chaos_settings,
    kill_during_catch_up,
    kill_loop,
    slow_consumer,
    two_workers_rebalance,
    workload,
)
from stream_rec.datasets import load_demo
from stream_rec.local.brokers import RunningBroker, start_broker


@dataclass(frozen=True)
class Run:
    """One scenario run of the soak."""

    name: str
    scenario: Callable[..., ChaosResult]
    events: int
    users: int = 120
    guarantee: str = "at_least_once"
    kafka_only: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def plan(kills: int, events: int) -> list[Run]:
    return [
        Run("kill_loop/deleted", kill_loop, events,
            options={"kills": kills, "delete_state": "always", "rate": 150.0}),
        Run("kill_loop/kept", kill_loop, events,
            options={"kills": kills, "delete_state": "never", "rate": 150.0}),
        Run("kill_loop/alternate", kill_loop, events,
            options={"kills": kills, "delete_state": "alternate", "rate": 150.0}),
        Run("kill_during_catch_up", kill_during_catch_up, events, users=events),
        Run("two_workers_rebalance", two_workers_rebalance, events, options={"rate": 150.0}),
        Run("slow_consumer/no-reader", slow_consumer, events * 2,
            options={"reader_per_s": None, "rate": 0.0}),
        Run("slow_consumer/5-per-s", slow_consumer, events * 2,
            options={"reader_per_s": 5.0, "rate": 0.0}),
        Run("slow_consumer/stalled", slow_consumer, events * 2,
            options={"reader_per_s": 0.0, "rate": 0.0}),
        Run("kill_loop/exactly_once/kept", kill_loop, events, guarantee="exactly_once",
            kafka_only=True, options={"kills": kills, "delete_state": "never", "rate": 150.0}),
        Run("kill_loop/exactly_once/deleted", kill_loop, events, guarantee="exactly_once",
            kafka_only=True,
            options={"kills": kills, "delete_state": "always", "rate": 150.0}),
        Run("broker_restart", broker_restart, events, kafka_only=True,
            options={"rate": 150.0}),  # last: it restarts the shared broker
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=["tansu", "kafka", "both"], default="both")
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--events", type=int, default=8000)
    parser.add_argument("--quick", action="store_true", help="3 kills, 3,000 events")
    parser.add_argument("--only", default="", help="run names starting with this")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--worker-pythonpath", default="")
    parser.add_argument("--out", type=Path, default=Path("out/soak.json"))
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # retries while a broker restarts
    kills, events = (3, 3000) if args.quick else (args.kills, args.events)
    demo = load_demo()
    catalog = demo.catalog[:600]
    items = [item.item_id for item in catalog]
    env = {"PYTHONPATH": args.worker_pythonpath} if args.worker_pythonpath else None
    brokers = ["tansu", "kafka"] if args.broker == "both" else [args.broker]
    header = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(),
              "kills": kills, "events": events, "seed": args.seed}
    print(json.dumps(header))
    results: list[dict[str, Any]] = []
    root = Path(tempfile.mkdtemp(prefix="stream-rec-soak-"))
    for kind in brokers:
        with start_broker(kind, root / kind / "broker", timeout_s=120) as broker:
            for n, run in enumerate(plan(kills, events)):
                if not run.name.startswith(args.only) or (run.kafka_only and kind != "kafka"):
                    continue
                result = one(run, broker, root / kind / f"{n:02d}", items, catalog,
                             args.seed + n, env)
                row = {"run": run.name, **result.to_dict()}
                results.append(row)
                print(line(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**header, "runs": results}, indent=1, default=str))
    print(f"wrote {args.out}; worker logs under {root}")


def one(run: Run, broker: RunningBroker, run_dir: Path, items: list[str], catalog: Any,
        seed: int, env: dict[str, str] | None) -> ChaosResult:
    rng = random.Random(seed)
    records = workload(run.events, rng=rng, items=items, users=run.users, hostile_every=100,
                       client_dup_every=97)
    settings = chaos_settings(broker, run_dir, processing_guarantee=run.guarantee)
    try:
        return run.scenario(broker, settings, records, run_dir=run_dir, rng=rng, seed=seed,
                            catalog=catalog, worker_env=env, **run.options)
    except Exception as exc:  # a soak reports a failed run and goes on to the next
        failed = ChaosResult(scenario=run.name, broker=broker.info.kind,
                             guarantee=run.guarantee, seed=seed)
        failed.notes.append(f"run failed: {exc!r}")
        failed.workers_alive = False
        return failed


def line(row: dict[str, Any]) -> str:
    """One human line per run: the figures docs/reliability.md quotes."""
    restarts = row["restarts"]
    ready = {kind: [r["ready_s"] for r in restarts if r["local_state"] == kind]
             for kind in ("fresh", "kept", "deleted")}
    med = {k: f"{statistics.median(v):.1f}" for k, v in ready.items() if v}
    dup = row["recs_duplicates"]
    dup_pct = f"{100 * dup / row['recs_distinct']:.1f}%" if row["recs_distinct"] else "-"
    return (f"{row['broker']:5} {row['run']:30} ok={row['ok']!s:5} "
            f"events={row['valid_in_log']} kills={row['kills']}({row['kills_mid_stream']} mid) "
            f"lost={row['events_lost']} doubled={row['events_double_counted']} "
            f"changelog_lost={row['changelog_events_lost']} "
            f"recs_dup={dup}({dup_pct}) recs_missing={row['recs_missing']} "
            f"ready_s={med} resume_s={row['recs_resume_s']} "
            f"pace={row['processed_per_s']}/s rss_peak={row['worker_peak_rss_mb']}MB "
            f"broker_rss={row['broker_peak_rss_mb']}MB wall={row['wall_s']}s "
            f"notes={row['notes'][:2]}")


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gb": round(ram, 1),
            "python": platform.python_version(), "load_1m": round(os.getloadavg()[0], 2)}


if __name__ == "__main__":
    main()
