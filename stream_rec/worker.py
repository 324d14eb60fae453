"""Run one worker process: resolve the broker, create topics, run the faust app."""

from __future__ import annotations

import asyncio
import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from stream_rec.config import Settings

__all__ = ["BrokerTarget", "resolve_broker", "run_worker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerTarget:
    """Where to connect, and whether the broker is Tansu (its workarounds apply)."""

    bootstrap: str
    tansu: bool


def resolve_broker(spec: str, stack: ExitStack, run_dir: Path | None = None) -> BrokerTarget:
    """Turn a ``--broker`` value into a bootstrap address, starting an embedded broker if asked.

    The embedded broker is stopped when ``stack`` closes.
    """
    if spec.startswith("kafka://"):
        return BrokerTarget(spec.removeprefix("kafka://"), tansu=False)
    if spec.startswith("tansu://"):
        return BrokerTarget(spec.removeprefix("tansu://"), tansu=True)
    from stream_rec.broker import start_broker

    running = stack.enter_context(start_broker(spec, run_dir))
    log.info("started embedded %s broker at %s", spec, running.info.bootstrap)
    return BrokerTarget(running.info.bootstrap, tansu=spec == "tansu")


def run_worker(settings: Settings) -> None:
    """Block running one worker until SIGTERM/SIGINT; commits offsets on the way out.

    ``settings.role`` picks the kind: ``slm`` (the faust stream worker) or ``llm`` (the LLM
    arm's reranker, ``stream_rec.llm_worker``).
    """
    from stream_rec.broker import client_security_kwargs
    from stream_rec.topics import ensure_topics

    with ExitStack() as stack:
        target = resolve_broker(settings.broker, stack, Path(settings.data_dir) / "broker")
        asyncio.run(ensure_topics(target.bootstrap, settings, client_security_kwargs(settings)))
        if settings.role == "llm":
            from stream_rec.llm_worker import run_llm_worker

            run_llm_worker(settings, target.bootstrap, tansu=target.tansu)
            return
        import faust

        from stream_rec.app import create_app

        asyncio.set_event_loop(asyncio.new_event_loop())
        app = create_app(settings, target.bootstrap, tansu=target.tansu)
        worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True,
                              redirect_stdouts=False)
        worker.execute_from_commandline()
