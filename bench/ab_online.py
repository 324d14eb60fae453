"""An online A/B run on the embedded broker: SLM and LLM workers, real events, the report.

    python bench/ab_online.py --events 400 --rate 2 --arms slm:0.7,llm:0.2,holdout:0.1 \
        --out docs/ab/online

Starts embedded Tansu, an SLM worker (``--role slm``, the default model) and an LLM worker
(``--role llm``: ``--llm-backend local`` = the default GGUF in deep mode, or ``openai`` =
llama-cpp-python's server on loopback), replays the first ``--events`` real Online Retail
purchases of the bundled demo stream (each one a trigger), then sends feedback: a
``rec_click`` for every recommendation holding the item the user really bought next (the
rule of ``ab simulate``); the real purchases convert on their own. Finally it runs the real
``stream-rec ab report`` and prints what each process cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from stream_rec.ab.report import read_arm_counters
from stream_rec.broker.publisher import catalog_records, event_records, publish
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.events import Event
from stream_rec.datasets import load_demo
from stream_rec.local.brokers import start_broker
from stream_rec.local.processes import WorkerProcess


async def _read_recs(bootstrap: str, topic: str, until: int, timeout_s: float
                     ) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < until and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for m in messages:
                    rec = codec.loads(m.value)
                    seen.setdefault(rec["rec_id"], rec)
    finally:
        await consumer.stop()
    return list(seen.values())


def _clicks(events: list[Event], recs: list[dict[str, Any]]) -> list[Event]:
    """A click for each rec holding the item its user really touched next (ab simulate's rule)."""
    next_item: dict[str, str] = {}
    by_id = {e.event_id: e for e in events}
    following: dict[str, str] = {}
    for event in reversed(events):
        if event.user_id in next_item:
            following[event.event_id] = next_item[event.user_id]
        next_item[event.user_id] = event.item_id or ""
    out = []
    for rec in recs:
        trigger = by_id.get(rec["trigger_event_id"])
        nxt = following.get(rec["trigger_event_id"])
        if trigger is None or nxt is None:
            continue
        if nxt in {i["item_id"] for i in rec["items"]}:
            out.append(Event(f"click-{rec['rec_id']}", "rec_click", trigger.user_id,
                             trigger.ts_ms + 1, item_id=nxt, rec_id=rec["rec_id"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--arms", default="slm:0.7,llm:0.2,holdout:0.1")
    parser.add_argument("--llm-backend", default="local", choices=["local", "openai"])
    parser.add_argument("--llm-deadline-ms", type=float, default=3000.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    demo = load_demo()
    events = list(demo.events[: args.events])
    run_dir = Path(tempfile.mkdtemp(prefix="ab-online-"))
    started = time.monotonic()
    with start_broker("tansu", run_dir / "broker") as broker:
        bootstrap = broker.info.bootstrap
        settings = Settings(broker=f"tansu://{bootstrap}", data_dir=run_dir / "state",
                            arms=args.arms, experiment_salt="online-1",
                            llm_deadline_ms=args.llm_deadline_ms, llm_rerank_top_n=20,
                            llm_history_items=10, commit_interval_s=0.5)
        asyncio.run(ensure_topics(bootstrap, settings))
        asyncio.run(publish(bootstrap, settings.topics.catalog,
                            list(catalog_records(demo.catalog)), one_record_batches=True))
        server = None
        llm_overrides: dict[str, Any] = {"role": "llm", "llm_backend": args.llm_backend,
                                         "data_dir": run_dir / "llm"}
        if args.llm_backend == "openai":
            from stream_rec.local.llama_server import LlmServer
            from stream_rec.model.files import resolve_model_path

            server = LlmServer.start(resolve_model_path(""), log_path=run_dir / "server.log")
            llm_overrides.update(llm_url=server.url, llm_picks=1)
        from dataclasses import replace

        slm = WorkerProcess(settings, log_path=run_dir / "slm.log").start()
        llm = WorkerProcess(replace(settings, **llm_overrides),
                            log_path=run_dir / "llm.log").start()
        try:
            ready = {"slm": slm.wait_ready(180), "llm_after_slm": llm.wait_ready(180)}
            t0 = time.monotonic()
            asyncio.run(publish(bootstrap, settings.topics.events,
                                list(event_records(events)), rate=args.rate,
                                one_record_batches=True))
            recs = asyncio.run(_read_recs(bootstrap, settings.topics.recs, len(events), 300))
            serve_s = time.monotonic() - t0
            clicks = _clicks(events, recs)
            asyncio.run(publish(bootstrap, settings.topics.events,
                                list(event_records(clicks)), one_record_batches=True))
            by_arm = Counter(r["arm"] for r in recs)
            deadline = time.monotonic() + 120
            last: tuple[int, ...] = ()
            while time.monotonic() < deadline:  # until everything served is counted and the
                totals = asyncio.run(read_arm_counters(bootstrap, settings))  # clicks settle
                now = tuple(c.clicks for _, c in sorted(totals.items()))
                if {a: c.served for a, c in totals.items()} == dict(by_arm) and now == last:
                    break
                last = now
                time.sleep(2)
            command = [sys.executable, "-m", "stream_rec", "ab", "report", "--json",
                       "--broker", f"tansu://{bootstrap}"]
            if args.out is not None:
                command += ["--out", str(args.out)]
            env = {**os.environ, **settings.to_env()}
            report = codec.loads(subprocess.run(command, env=env, capture_output=True,
                                                check=True, timeout=120).stdout)
            metrics = {"slm": slm.metrics(), "llm": llm.metrics()}
            rss = {name: round(psutil.Process(w.pid).memory_info().rss / 1e6, 1)
                   for name, w in (("slm", slm), ("llm", llm))}
            if server is not None:
                rss["llm_server"] = round(psutil.Process(server.proc.pid).memory_info().rss
                                          / 1e6, 1)
        finally:
            slm.stop()
            llm.stop()
            if server is not None:
                server.stop()
    reasons = Counter((r["arm"], r["fallback_reason"]) for r in recs)
    models = Counter((r["arm"], r["model"]) for r in recs)
    summary = {
        "events": len(events), "rate": args.rate, "arms": args.arms,
        "llm_backend": args.llm_backend, "llm_deadline_ms": args.llm_deadline_ms,
        "recs": len(recs), "clicks_sent": len(clicks), "serve_s": round(serve_s, 1),
        "ready_s": {k: round(v, 1) for k, v in ready.items()},
        "by_arm_and_model": {f"{a}/{m}": n for (a, m), n in sorted(models.items())},
        "fallback_reasons": {f"{a}/{r}": n for (a, r), n in sorted(reasons.items(),
                                                                   key=str)},
        "slm_llm_arm_outcomes": {k.split("=")[1].rstrip("}"): v
                                 for k, v in metrics["slm"].items()
                                 if k.startswith("stream_rec_llm_arm_requests_total{")},
        "llm_worker_outcomes": {k.split("=")[1].rstrip("}"): v
                                for k, v in metrics["llm"].items()
                                if k.startswith("stream_rec_llm_requests_total{")},
        "llm_in_flight_max_seen": metrics["llm"].get("stream_rec_llm_in_flight_max_seen"),
        "slm_pending_max_seen": metrics["slm"].get("stream_rec_llm_arm_pending_max_seen"),
        "rss_mb": rss,
        "wall_s": round(time.monotonic() - started, 1),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
        "report": report,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "run.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
