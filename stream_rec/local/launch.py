"""One local serving stack: a broker, its topics and catalog, the embedder and one worker.

What the demo and the black-box check both start before they send events: the embedded
broker (or the one ``settings.broker`` names), the topics, the catalog published to its
topic, the ``--role embedder`` process when the model is on, and one serving worker with
the given settings, each ready before this returns. Everything started is stopped by the
caller's :class:`~contextlib.ExitStack`.

    with ExitStack() as stack:
        run = launch(settings, catalog, stack, run_dir=Path("var/demo"), console=console,
                     describe="3000 events")
        ...  # publish to run.settings.topics.events, read run.settings.topics.recs
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from stream_rec.broker.publisher import catalog_records, publish
from stream_rec.broker.security import client_security_kwargs
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.core.events import CatalogItem
from stream_rec.local.brokers import resolve_broker
from stream_rec.local.processes import WorkerProcess, needs_embedder

__all__ = ["LocalRun", "launch"]


@dataclass(frozen=True, slots=True)
class LocalRun:
    """A started stack: where its broker listens and the processes serving on it."""

    settings: Settings  # as a client sees them (the run's topics)
    bootstrap: str
    tansu: bool
    client: dict[str, Any]  # aiokafka security arguments
    worker: WorkerProcess
    embedder: WorkerProcess | None  # None when the worker needs no model process


def launch(settings: Settings, catalog: Sequence[CatalogItem], stack: ExitStack, *,
           run_dir: Path, console: Console, describe: str = "",
           topic_prefix: str | None = None, ready_timeout_s: float = 600.0) -> LocalRun:
    """Start the stack under ``run_dir`` and wait until the worker is ready.

    ``topic_prefix`` (also the consumer group) gives the run topics of its own, so a demo
    or a check never mixes its traffic into a deployment's topics; ``describe`` ends the
    line announcing the broker.
    """
    target = resolve_broker(settings.broker, stack, run_dir=run_dir / "broker")
    if topic_prefix is not None:
        settings = replace(settings, topic_prefix=topic_prefix, app_id=topic_prefix)
    scheme = "tansu" if target.tansu else "kafka"
    worker_settings = replace(settings, broker=f"{scheme}://{target.bootstrap}",
                              data_dir=run_dir / "state")
    client = client_security_kwargs(settings)
    console.print(f"[bold]broker[/] {settings.broker} at {target.bootstrap}; "
                  f"{len(catalog)} catalog items{', ' + describe if describe else ''}")
    asyncio.run(ensure_topics(target.bootstrap, settings, client))
    asyncio.run(publish(target.bootstrap, settings.topics.catalog, catalog_records(catalog),
                        client_kwargs=client, one_record_batches=target.tansu))
    embedder = None
    if needs_embedder(worker_settings):  # the model lives in its own process
        embedder = WorkerProcess.embedder(worker_settings, log_path=run_dir / "embedder.log")
        stack.callback(embedder.start().stop)
        took = embedder.wait_ready(timeout_s=ready_timeout_s)
        console.print(f"[bold]embedder[/] pid {embedder.pid}: the model embedded the catalog "
                      f"in {took:.1f} s (log: {embedder.log_path})")
    worker = WorkerProcess(worker_settings, log_path=run_dir / "worker.log")
    stack.callback(worker.start().stop)
    took = worker.wait_ready(timeout_s=ready_timeout_s)
    console.print(f"[bold]worker[/] pid {worker.pid} ready in {took:.1f} s "
                  f"(log: {worker.log_path})")
    return LocalRun(settings, target.bootstrap, target.tansu, client, worker, embedder)
