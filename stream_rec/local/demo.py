"""The newcomer's demo: a broker, a worker, real shop events in, recommendations on screen.

Starts the embedded broker (unless one is given), loads the bundled Online Retail catalog,
starts a worker process, replays real purchase events (optionally with hostile ones mixed
in), and shows recommendations as they arrive, with a progress bar and a summary.
"""

from __future__ import annotations

import asyncio
import math
import random
import shutil
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stream_rec.broker.publisher import event_records, publish
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.events import Event
from stream_rec.core.percentiles import percentile
from stream_rec.datasets import load_demo
from stream_rec.local.hostile import bad_events
from stream_rec.local.launch import launch
from stream_rec.local.processes import WorkerProcess

__all__ = ["DemoOptions", "run_demo"]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo replays and how fast."""

    events: int = 3000
    rate: float = 300.0
    inject_bad: int = 0
    show_every: int = 250
    seed: int = 7
    timeout_s: float = 300.0


def run_demo(settings: Settings, options: DemoOptions, console: Console) -> dict[str, Any]:
    """Run the demo end to end and return its summary (see README for the keys)."""
    dataset = load_demo()
    events = dataset.events[: options.events]
    titles = {item.item_id: item.title for item in dataset.catalog}
    rng = random.Random(options.seed)
    hostile = bad_events(options.inject_bad, ts_ms=events[0].ts_ms if events else 0, rng=rng)
    records = list(event_records(events))
    for bad in hostile:
        records.insert(rng.randrange(len(records) + 1), (bad.key, bad.value))
    triggers = sum(1 for e in events if e.type in settings.trigger_types)

    run_dir = Path(settings.data_dir) / "demo"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    with ExitStack() as stack:
        # never mix demo traffic into a real deployment's topics
        prefix = None if settings.is_embedded else f"stream-rec-demo-{uuid.uuid4().hex[:8]}"
        run = launch(settings, dataset.catalog, stack, run_dir=run_dir, console=console,
                     topic_prefix=prefix,
                     describe=f"{len(events)} events + {len(hostile)} hostile, "
                              f"at {options.rate:g}/s")
        worker, model_holder = run.worker, run.embedder
        watch = asyncio.run(_stream_and_watch(
            run.bootstrap, run.settings, run.client, records, options, console, titles,
            {e.event_id: e for e in events}, triggers, len(hostile)))
        events_in = int(worker.metric_total("stream_rec_events_total"))
        model = _model_summary(worker, model_holder)
    latencies = watch.pop("latencies")
    summary = {
        "events_in": events_in,
        "events_sent": len(events),
        "dlq": watch["dlq"],
        "recs_out": watch["recs"],
        "users": len({e.user_id for e in events}),
        "latency_ms_p50": _ms(percentile(latencies, 0.50)),
        "latency_ms_p99": _ms(percentile(latencies, 0.99)),
        "broker": settings.broker if settings.is_embedded else "external",
        "duration_s": round(watch["elapsed_s"], 2),
        "recs_per_s": round(watch["recs"] / watch["elapsed_s"], 1) if watch["elapsed_s"] else 0,
        "models": sorted(watch["models"]),
        "dlq_fields": watch["dlq_fields"],
        **model,
        "fallbacks": watch["fallbacks"],
    }
    return summary


def _model_summary(worker: WorkerProcess,
                   embedder: WorkerProcess | None = None) -> dict[str, Any]:
    """What the model did: which model, how many items embedded, how many calls (in the
    embedder process when there is one, plus the worker's own rerank calls)."""
    holder = embedder or worker
    ready = holder.readyz()
    model = ready.get("model") or {}
    calls = holder.metric_total("stream_rec_model_calls_total")
    if embedder is not None:
        calls += worker.metric_total("stream_rec_model_calls_total")
    return {
        "model": {"name": model.get("name"), "sha256": model.get("sha256")},
        "items_embedded": int(holder.metric_total("stream_rec_items_embedded_total")),
        "model_calls": int(calls),
    }


async def _stream_and_watch(bootstrap: str, settings: Settings, client: dict[str, Any],
                            records: list[tuple[bytes | None, bytes]], options: DemoOptions,
                            console: Console, titles: dict[str, str],
                            by_id: dict[str, Event], triggers: int,
                            hostile: int) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(settings.topics.recs, settings.topics.dlq,
                                bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50, **client)
    await consumer.start()
    seen: set[str] = set()
    state: dict[str, Any] = {"recs": 0, "dlq": 0, "latencies": [], "models": set(),
                             "dlq_fields": {}, "fallbacks": 0}
    started = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        sent_task = progress.add_task("events sent   ", total=len(records))
        recs_task = progress.add_task("recs received ", total=triggers)
        publisher = asyncio.create_task(publish(
            bootstrap, settings.topics.events, records, rate=options.rate, client_kwargs=client,
            on_sent=lambda n: progress.update(sent_task, completed=n)))
        deadline = started + options.timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=250)
            for tp, messages in batches.items():
                for message in messages:
                    if tp.topic == settings.topics.dlq:
                        state["dlq"] += 1
                        field = codec.loads(message.value).get("field", "?")
                        state["dlq_fields"][field] = state["dlq_fields"].get(field, 0) + 1
                        continue
                    rec = codec.loads(message.value)
                    if rec["rec_id"] in seen:
                        continue
                    seen.add(rec["rec_id"])
                    state["recs"] += 1
                    state["latencies"].append(rec["latency_ms"])
                    state["models"].add(rec["model"])
                    state["fallbacks"] += 1 if rec.get("degraded") else 0
                    if state["recs"] % options.show_every == 1:
                        _show(progress.console, rec, by_id.get(rec["trigger_event_id"]), titles)
            progress.update(recs_task, completed=state["recs"])
            if publisher.done() and state["recs"] >= triggers and state["dlq"] >= hostile:
                break
        await publisher
    await consumer.stop()
    state["elapsed_s"] = time.monotonic() - started
    return state


def _show(console: Console, rec: dict[str, Any], trigger: Event | None,
          titles: dict[str, str]) -> None:
    did = "?"
    if trigger is not None:
        verb = {"purchase": "bought", "view": "viewed", "add_to_cart": "added to cart"}.get(
            trigger.type, trigger.type)
        did = f"{verb} {titles.get(trigger.item_id or '', trigger.item_id)}"
    console.print(f"[bold cyan]user {rec['user_id']}[/] {did}  "
                  f"[dim]({rec['arm']}/{rec['model']}, {rec['latency_ms']:.1f} ms)[/]")
    for rank, item in enumerate(rec["items"][:3], start=1):
        console.print(f"   {rank}. {titles.get(item['item_id'], item['item_id'])}"
                      f"  [green]— {item['reason']}[/]")


def _ms(value: float) -> float:
    return 0.0 if math.isnan(value) else round(value, 3)
