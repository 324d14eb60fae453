"""Run one worker process of the role its settings name, against a resolved broker.

``slm`` is the faust stream worker (``stream_rec.serving``); ``llm`` is the LLM arm's
reranker (``stream_rec.llm.worker``); ``embedder`` holds the small model and publishes
catalog vectors (``stream_rec.serving.embedder``). The CLI resolves the broker first (starting an
embedded one when no Kafka is configured) and passes the target here.
"""

from __future__ import annotations

import asyncio

import faust

from stream_rec.broker.security import client_security_kwargs
from stream_rec.broker.target import BrokerTarget
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.llm.worker import run_llm_worker
from stream_rec.serving.app import create_app
from stream_rec.serving.embedder import run_embedder

__all__ = ["run_worker"]


def run_worker(settings: Settings, target: BrokerTarget) -> None:
    """Block running one worker until SIGTERM/SIGINT; commits offsets on the way out."""
    asyncio.run(ensure_topics(target.bootstrap, settings, client_security_kwargs(settings)))
    if settings.role == "llm":
        run_llm_worker(settings, target.bootstrap, tansu=target.tansu)
        return
    if settings.role == "embedder":
        run_embedder(settings, target.bootstrap, tansu=target.tansu)
        return
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = create_app(settings, target.bootstrap, tansu=target.tansu)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True,
                          redirect_stdouts=False)
    worker.execute_from_commandline()
