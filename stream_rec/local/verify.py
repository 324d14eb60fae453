"""The black-box check: a dataset slice through a running worker, as a client, against eval.

``stream-rec eval --protocol served --max-events N --recs-out recs.jsonl`` writes, for every
trigger of the slice's first N events, the list the worker's recommender gives in process.
Here the same slice goes through real processes over a real broker, as a shop's client
would send it: a broker (embedded, or the one given), the embedder and one serving worker
with default settings, the catalog published to its topic, then each event published to the
events topic keyed by user; the client reads the recommendations topic (and the dead-letter
topic) like any downstream service. Every list the worker sends must equal eval's for the
same trigger event.

Events go one trigger at a time: the next event is sent once the worker has answered the
previous one (its recommendation or its dead letter came back). A client that sends faster
gets the same lists from one worker only if it keeps the stream's order across partitions,
which Kafka does not promise; one at a time, the worker applies the events in the slice's
order whatever partition each user hashes to.

    report = run_verify(settings, dataset, expected, VerifyOptions(max_events=2000))
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import math
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stream_rec.broker.publisher import catalog_records, publish
from stream_rec.broker.security import client_security_kwargs
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.events import Event
from stream_rec.datasets import Dataset
from stream_rec.errors import StreamRecError
from stream_rec.evaluation.metrics import RankingAccumulator
from stream_rec.local.brokers import resolve_broker
from stream_rec.local.processes import WorkerProcess, needs_embedder

__all__ = ["ExpectedList", "VerifyOptions", "VerifyReport", "read_expected", "run_verify"]

_METRICS = ("hr@10", "ndcg@10", "recall@10")


@dataclass(frozen=True, slots=True)
class ExpectedList:
    """What ``stream-rec eval`` reported for one trigger: the list and the next items."""

    user_id: str
    trigger_event_id: str
    items: tuple[str, ...]
    relevant: frozenset[str]


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """The slice (the dataset's first ``max_events`` events) and how long to wait."""

    max_events: int = 2000
    answer_timeout_s: float = 60.0  # for one trigger's recommendation
    ready_timeout_s: float = 600.0  # for the embedder to embed the catalog
    show_mismatches: int = 5


@dataclass
class VerifyReport:
    """How the worker's lists compare with eval's, trigger by trigger."""

    events_sent: int = 0
    triggers: int = 0
    recs: int = 0
    dead_letters: int = 0
    compared: int = 0  # triggers eval reported a list for
    identical: int = 0
    missing: int = 0  # eval reported a list, the worker sent none
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    worker_metrics: dict[str, float] = field(default_factory=dict)
    eval_metrics: dict[str, float] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    answers: dict[str, list[str]] = field(default_factory=dict)  # the worker's lists

    @property
    def passed(self) -> bool:
        return self.compared > 0 and self.identical == self.compared

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "events_sent": self.events_sent,
                "triggers": self.triggers, "recs": self.recs,
                "dead_letters": self.dead_letters, "compared": self.compared,
                "identical": self.identical, "missing": self.missing,
                "different": self.compared - self.identical - self.missing,
                "worker_metrics": self.worker_metrics, "eval_metrics": self.eval_metrics,
                "models": self.models, "elapsed_s": round(self.elapsed_s, 1),
                "first_mismatches": self.mismatches}


def read_expected(path: Path, arm: str = "slm") -> dict[str, ExpectedList]:
    """The lists of ``arm`` in a ``stream-rec eval --recs-out`` file (or its gzip), by
    trigger event id."""
    found: dict[str, ExpectedList] = {}
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            row = codec.loads(line)
            if row.get("arm") != arm:
                continue
            trigger = row.get("trigger_event_id")
            if not trigger:
                raise StreamRecError(
                    f"{path}:{number}: no trigger_event_id: write the file with `stream-rec "
                    "eval --protocol served --recs-out` (other protocols ask at moments no "
                    "trigger makes)")
            found[trigger] = ExpectedList(row["user_id"], trigger, tuple(row["items"]),
                                          frozenset(row["relevant"]))
    if not found:
        raise StreamRecError(f"{path}: no lists of arm {arm!r} (run eval with --arms {arm})")
    return found


def run_verify(settings: Settings, dataset: Dataset, expected: Mapping[str, ExpectedList],
               options: VerifyOptions, console: Console) -> VerifyReport:
    """Start a broker (unless one is given), the embedder and one worker; send the slice one
    trigger at a time; compare every recommendation with ``expected``."""
    events = dataset.events[: options.max_events] if options.max_events else dataset.events
    run_dir = Path(settings.data_dir) / "verify"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    with ExitStack() as stack:
        target = resolve_broker(settings.broker, stack, run_dir=run_dir / "broker")
        tag = uuid.uuid4().hex[:8]  # fresh topics and ranker: nothing learned before
        settings = replace(settings, topic_prefix=f"stream-rec-verify-{tag}",
                           app_id=f"stream-rec-verify-{tag}")
        scheme = "tansu" if target.tansu else "kafka"
        worker_settings = replace(settings, broker=f"{scheme}://{target.bootstrap}",
                                  data_dir=run_dir / "state")
        client = client_security_kwargs(settings)
        console.print(f"broker {settings.broker} at {target.bootstrap}; "
                      f"{len(dataset.catalog)} catalog items, {len(events)} events")
        asyncio.run(ensure_topics(target.bootstrap, settings, client))
        asyncio.run(publish(target.bootstrap, settings.topics.catalog,
                            catalog_records(dataset.catalog), client_kwargs=client,
                            one_record_batches=target.tansu))
        if needs_embedder(worker_settings):
            embedder = WorkerProcess.embedder(worker_settings, log_path=run_dir / "embedder.log")
            stack.callback(embedder.start().stop)
            took = embedder.wait_ready(timeout_s=options.ready_timeout_s)
            console.print(f"embedder embedded the catalog in {took:.1f} s")
        worker = WorkerProcess(worker_settings, log_path=run_dir / "worker.log").start()
        stack.callback(worker.stop)
        took = worker.wait_ready(timeout_s=options.ready_timeout_s)
        console.print(f"worker pid {worker.pid} ready in {took:.1f} s (log: {worker.log_path})")
        report = VerifyReport()
        answers = asyncio.run(_send_one_at_a_time(target.bootstrap, settings, client, events,
                                                  options, console, report))
    report.answers = answers
    _compare(report, answers, expected, options)
    return report


async def _send_one_at_a_time(bootstrap: str, settings: Settings, client: dict[str, Any],
                              events: Sequence[Event], options: VerifyOptions,
                              console: Console, report: VerifyReport) -> dict[str, list[str]]:
    """Send ``events`` in order, waiting for each trigger's answer; the worker's lists by
    trigger event id (an empty list for a dead-lettered trigger)."""
    answers: dict[str, list[str]] = {}
    models: set[str] = set()
    consumer = AIOKafkaConsumer(settings.topics.recs, settings.topics.dlq,
                                bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20, **client)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, **client)
    await consumer.start()
    await producer.start()
    started = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("events, one trigger at a time", total=len(events))
            for event in events:
                await producer.send_and_wait(settings.topics.events,
                                             codec.dumps(event.to_dict()),
                                             key=event.user_id.encode())
                report.events_sent += 1
                if event.type in settings.trigger_types:
                    report.triggers += 1
                    await _await_answer(consumer, settings, event.event_id, answers, models,
                                        report, options.answer_timeout_s)
                progress.update(task, completed=report.events_sent)
    finally:
        await producer.stop()
        await consumer.stop()
    report.elapsed_s = time.monotonic() - started
    report.models = sorted(models)
    return answers


async def _await_answer(consumer: AIOKafkaConsumer, settings: Settings, event_id: str,
                        answers: dict[str, list[str]], models: set[str],
                        report: VerifyReport, timeout_s: float) -> None:
    """Read the recs and dead-letter topics until the answer to ``event_id`` is there."""
    deadline = time.monotonic() + timeout_s
    while event_id not in answers:
        if time.monotonic() > deadline:
            raise StreamRecError(f"no recommendation or dead letter for trigger {event_id!r} "
                                 f"within {timeout_s:g} s: see the worker's log")
        batches = await consumer.getmany(timeout_ms=100)
        for tp, messages in batches.items():
            for message in messages:
                if tp.topic == settings.topics.dlq:
                    report.dead_letters += 1
                    original = codec.loads(message.value).get("original_b64", "")
                    answers.setdefault(_dead_event_id(original), [])
                    continue
                rec = codec.loads(message.value)
                trigger = rec.get("trigger_event_id")
                if trigger in answers:
                    continue  # a redelivery's copy
                report.recs += 1
                models.add(f"{rec.get('arm')}/{rec.get('model')}")
                answers[trigger] = [item["item_id"] for item in rec["items"]]


def _dead_event_id(original_b64: str) -> str:
    """The event id inside a dead letter's original bytes ("" when unreadable)."""
    try:
        doc = codec.loads(base64.b64decode(original_b64))
        return str(doc.get("event_id", "")) if isinstance(doc, dict) else ""
    except (ValueError, codec.DecodeError):
        return ""


def _compare(report: VerifyReport, answers: Mapping[str, list[str]],
             expected: Mapping[str, ExpectedList], options: VerifyOptions) -> None:
    worker = RankingAccumulator(_METRICS)
    offline = RankingAccumulator(_METRICS)
    for trigger, want in expected.items():
        report.compared += 1
        got = answers.get(trigger)
        offline.add(list(want.items), want.relevant)
        if got is None:
            report.missing += 1
            worker.add([], want.relevant)
        else:
            worker.add(got, want.relevant)
            if tuple(got) == want.items:
                report.identical += 1
                continue
        if len(report.mismatches) < options.show_mismatches:
            report.mismatches.append({"trigger_event_id": trigger, "user_id": want.user_id,
                                      "eval": list(want.items), "worker": got})
    report.worker_metrics = _rounded(worker.result())
    report.eval_metrics = _rounded(offline.result())


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {k: (round(v, 6) if not math.isnan(v) else v) for k, v in values.items()}

