"""Run one worker process of the role its settings name, against a resolved broker.

``slm`` is the faust stream worker (``stream_rec.serving``); ``llm`` is the LLM arm's
reranker (``stream_rec.llm.worker``); ``embedder`` holds the small model and publishes
catalog vectors (``stream_rec.serving.embedder``). The CLI resolves the broker first (starting an
embedded one when no Kafka is configured) and passes the target here.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

import faust
import uvloop

from stream_rec.broker.security import client_security_kwargs
from stream_rec.broker.target import BrokerTarget
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.llm.worker import LlmWorker
from stream_rec.serving.app import create_app
from stream_rec.serving.embedder import Embedder

__all__ = ["faust_worker", "install_event_loop", "new_event_loop", "run_worker"]


def run_worker(settings: Settings, target: BrokerTarget) -> None:
    """Block running one worker until SIGTERM/SIGINT; commits offsets on the way out."""
    asyncio.run(ensure_topics(target.bootstrap, settings, client_security_kwargs(settings)))
    if settings.role == "llm":
        _run_until_signalled(LlmWorker(settings, target.bootstrap, tansu=target.tansu).run,
                             settings.event_loop)
        return
    if settings.role == "embedder":
        _run_until_signalled(Embedder(settings, target.bootstrap, tansu=target.tansu).run,
                             settings.event_loop)
        return
    install_event_loop(settings.event_loop)
    app = create_app(settings, target.bootstrap, tansu=target.tansu)
    worker = faust_worker(app, settings.log_level)
    worker.execute_from_commandline()


def faust_worker(app: faust.App, log_level: str) -> faust.Worker:
    """The faust worker running ``app``, logging at ``log_level``.

    faust's terminal spinner (on at WARNING and above) lowers the root logger to DEBUG for
    its own handler: every debug call of aiokafka and faust on the hot path then builds a
    record for the handlers to drop. A worker logs to a file or a pod's output, where a
    spinner has no use: none, so the root logger stays at ``log_level``.
    """
    worker = faust.Worker(app, loglevel=log_level.upper(), quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh event loop of ``kind`` (``STREAM_REC_EVENT_LOOP``): "uvloop" or "asyncio"."""
    if kind == "uvloop":
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def install_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """Make a loop of ``kind`` this thread's loop, and the kind every other thread's
    ``asyncio.new_event_loop()`` makes: faust's consumer thread makes its own loop that way,
    and on uvloop its fetch cycles cost less (docs/benchmarks.md: worker CPU at 1,000/s on
    Kafka 0.855-0.866 -> 0.827-0.839 ms/rec)."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy() if kind == "uvloop" else None)
    loop = new_event_loop(kind)
    asyncio.set_event_loop(loop)
    return loop


def _run_until_signalled(run: Callable[[asyncio.Event], Awaitable[None]], loop_kind: str) -> None:
    """Run an aiokafka-based role (``run(stop)``) until SIGTERM/SIGINT sets ``stop``."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # add_signal_handler is not implemented on Windows event loops: Ctrl-C still
            # raises KeyboardInterrupt there
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await run(stop)

    with asyncio.Runner(loop_factory=lambda: new_event_loop(loop_kind)) as runner:
        runner.run(main())
