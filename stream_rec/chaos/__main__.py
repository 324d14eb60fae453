"""``python -m stream_rec.chaos``: print the hostile-input table, or run one fault scenario.

    python -m stream_rec.chaos hostile-table
    python -m stream_rec.chaos run kill_loop --broker tansu --kills 3 --events 4000 \\
        --delete-state
    python -m stream_rec.chaos run broker_restart --broker kafka --events 3000
    python -m stream_rec.chaos run kill_loop --broker kafka --guarantee exactly_once
    python -m stream_rec.chaos run model_stall --broker tansu --model-deadline-ms 1

``run`` starts its own embedded broker (or uses ``kafka://host:port``), runs the scenario on
fresh topics, and prints the :class:`ChaosResult` as JSON (exit status 1 unless ``ok``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from stream_rec.chaos.harness import chaos_settings, workload
from stream_rec.chaos.hostile_cases import hostile_markdown
from stream_rec.chaos.scenarios import SCENARIOS
from stream_rec.datasets import load_demo
from stream_rec.local.brokers import start_broker

if TYPE_CHECKING:
    from stream_rec.chaos.harness import ChaosResult

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_rec.chaos",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("hostile-table", help="Markdown table: every hostile case and its outcome")
    run = sub.add_parser("run", help="run one fault scenario and print its figures as JSON")
    run.add_argument("scenario", choices=["kill_loop", "two_workers_rebalance",
                                          "broker_restart", "slow_consumer",
                                          "kill_during_catch_up", "model_stall"])
    run.add_argument("--broker", default="tansu", help="tansu | kafka | kafka://host:port")
    run.add_argument("--events", type=int, default=3000, help="valid events to publish")
    run.add_argument("--rate", type=float, default=250.0,
                     help="events per second (0 = as fast as possible)")
    run.add_argument("--kills", type=int, default=2, help="kill_loop: SIGKILLs")
    run.add_argument("--delete-state", nargs="?", const="always", default="never",
                     choices=["never", "always", "alternate"],
                     help="kill_loop: delete the worker's RocksDB dir on restart")
    run.add_argument("--guarantee", default="at_least_once",
                     choices=["at_least_once", "exactly_once"])
    run.add_argument("--users", type=int, default=120)
    run.add_argument("--hostile-every", type=int, default=100,
                     help="a hostile record after every N valid events (0 = none)")
    run.add_argument("--reader-per-s", type=float, default=5.0,
                     help="slow_consumer: messages per second the reader takes (0 = never)")
    run.add_argument("--model", action="store_true",
                     help="run the workers with the default model (off otherwise)")
    run.add_argument("--rerank-top-n", type=int, default=0,
                     help="with --model: rerank this many candidates with the model")
    run.add_argument("--model-deadline-ms", type=float, default=50.0,
                     help="with --model: deadline per model call (model_stall: below one "
                     "call's time)")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--run-dir", type=Path, default=None)
    run.add_argument("--worker-pythonpath", default="",
                     help="prepend to the workers' PYTHONPATH (to try a patched stream_rec)")
    args = parser.parse_args(argv)
    if args.command == "hostile-table":

        sys.stdout.write(hostile_markdown())
        return 0
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # retries while a broker restarts
    result = _run(args)
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0 if result.ok else 1


def _run(args: argparse.Namespace) -> ChaosResult:

    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix=f"chaos-{args.scenario}-"))
    rng = random.Random(args.seed)
    demo = load_demo()
    records = workload(args.events, rng=rng, items=[i.item_id for i in demo.catalog[:600]],
                       users=args.users, hostile_every=args.hostile_every,
                       client_dup_every=97)
    with start_broker(args.broker, run_dir / "broker", timeout_s=120) as broker:
        model: dict[str, object] = {}
        if args.model or args.scenario == "model_stall":
            model = {"model_path": "", "rerank_top_n": args.rerank_top_n or 5,
                     "model_deadline_ms": args.model_deadline_ms}
        settings = chaos_settings(broker, run_dir, processing_guarantee=args.guarantee,
                                  **model)
        kwargs: dict[str, object] = {"run_dir": run_dir, "rng": rng, "seed": args.seed,
                                     "catalog": demo.catalog[:600], "rate": args.rate}
        if args.worker_pythonpath:
            kwargs["worker_env"] = {"PYTHONPATH": args.worker_pythonpath}
        if args.scenario == "kill_loop":
            kwargs.update(kills=args.kills, delete_state=args.delete_state)
        if args.scenario == "slow_consumer":
            kwargs["reader_per_s"] = args.reader_per_s
        result = SCENARIOS[args.scenario](broker, settings, records, **kwargs)
    result.notes.append(f"logs in {run_dir}")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
