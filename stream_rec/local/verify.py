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
import gzip
import math
import shutil
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stream_rec.broker.in_order import InOrderResult, send_in_order
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.events import Event
from stream_rec.datasets import Dataset
from stream_rec.errors import StreamRecError
from stream_rec.evaluation.metrics import RankingAccumulator
from stream_rec.local.launch import launch

__all__ = ["ExpectedList", "VerifyOptions", "VerifyReport", "compare_lists", "read_expected",
           "read_worker_lists", "run_verify"]

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
        run = launch(settings, dataset.catalog, stack, run_dir=run_dir, console=console,
                     describe=f"{len(events)} events",
                     # fresh topics and ranker: nothing learned before
                     topic_prefix=f"stream-rec-verify-{uuid.uuid4().hex[:8]}",
                     ready_timeout_s=options.ready_timeout_s)
        sent = asyncio.run(_send_one_at_a_time(run.bootstrap, run.settings, run.client,
                                               events, options, console))
    report = VerifyReport(events_sent=sent.events_sent, triggers=sent.triggers,
                          recs=sent.recs, dead_letters=sent.dead_letters,
                          models=sorted(sent.models), elapsed_s=sent.elapsed_s,
                          answers=sent.answers)
    _compare(report, expected, options)
    return report


async def _send_one_at_a_time(bootstrap: str, settings: Settings, client: dict[str, Any],
                              events: Sequence[Event], options: VerifyOptions,
                              console: Console) -> InOrderResult:
    """Send ``events`` in order, waiting for each trigger's answer, with a progress bar."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("events, one trigger at a time", total=len(events))
        return await send_in_order(bootstrap, settings.topics, events, settings.trigger_types,
                                   client_kwargs=client,
                                   answer_timeout_s=options.answer_timeout_s,
                                   on_sent=lambda n: progress.update(task, completed=n))


def read_worker_lists(path: Path) -> dict[str, list[str]]:
    """A worker's lists by trigger event id, as ``stream-rec replay --in-order --recs-out``
    (or ``verify --out``'s ``worker-recs.jsonl``) writes them (or their gzip)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        rows = [codec.loads(line) for line in lines if line.strip()]
    return {row["trigger_event_id"]: list(row["items"]) for row in rows}


def compare_lists(answers: Mapping[str, list[str]], expected: Mapping[str, ExpectedList],
                  options: VerifyOptions = VerifyOptions()) -> VerifyReport:
    """Compare a worker's lists, collected elsewhere, with eval's (no processes started)."""
    report = VerifyReport(answers=dict(answers), recs=len(answers))
    _compare(report, expected, options)
    return report


def _compare(report: VerifyReport, expected: Mapping[str, ExpectedList],
             options: VerifyOptions) -> None:
    answers = report.answers
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

