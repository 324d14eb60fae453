"""The embedder process (``stream-rec worker --role embedder``): the model pool that turns
catalog items into vectors for every serving worker.

    stream-rec.catalog ──▶ embedder (model pool, RocksDB embedding cache)
                              └──▶ stream-rec.item-vectors (compacted, key = item id)
                                        └──▶ every serving worker's SemanticIndex

Serving workers then hold no model (unless they rerank): the model's 235 MB mapped file and
llama.cpp's buffers live in this one process. A new catalog item is embedded here within
~0.1 s and becomes recommendable by similarity on every worker once they fold its record.
``/readyz`` answers 200 once the catalog present at start is embedded and published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_rec.broker.security import client_security_kwargs
from stream_rec.config import Settings
from stream_rec.core.catalog import Catalog
from stream_rec.core.item_stats import ItemStats
from stream_rec.model.published import vector_record
from stream_rec.serving.metrics import WorkerMetrics
from stream_rec.serving.model_runtime import ModelRuntime
from stream_rec.serving.replicated import ReplicatedState

__all__ = ["Embedder"]

log = logging.getLogger(__name__)

_IDLE_S = 0.05


class Embedder:
    """Catalog topic in, item-vectors topic out, through one model pool."""

    def __init__(self, settings: Settings, bootstrap: str, *, tansu: bool) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.tansu = tansu
        self.metrics = WorkerMetrics()
        self.model: ModelRuntime | None = None
        self.published = 0
        self.catalog = Catalog()
        self.replicated: ReplicatedState | None = None

    @property
    def ready(self) -> bool:
        return self.model is not None and self.model.warm and not self.model.pending

    async def run(self, stop: asyncio.Event) -> None:
        """Embed and publish until ``stop`` is set."""
        settings = self.settings
        security = client_security_kwargs(settings)
        runner = await self._start_web()
        self.model = model = await asyncio.to_thread(ModelRuntime.load, settings,
                                                     text_space=False, scoring=False)
        self.replicated = replicated = ReplicatedState(
            bootstrap=self.bootstrap, catalog_topic=settings.topics.catalog,
            deltas_topic=None, catalog=self.catalog, stats=ItemStats(),
            client_kwargs=security, on_item=model.on_item)
        # one record per batch on Tansu: workers read the topic's end (ListOffsets) to know
        # when they have caught up, and Tansu under-reports it after multi-record batches
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5,
                                    max_batch_size=16 if self.tansu else 262_144,
                                    **security)
        await producer.start()
        follow = asyncio.create_task(replicated.run())
        try:
            while not stop.is_set():
                if follow.done():
                    follow.result()  # the catalog reader failed: raise it
                vectors = await model.embed_pending(
                    self.metrics, caught_up=replicated.caught_up.is_set())
                if not vectors:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), _IDLE_S)
                    continue
                sent = [await producer.send(settings.topics.item_vectors, value=value,
                                            key=key)
                        for key, value in (vector_record(item_id, model.name, vector)
                                           for item_id, vector in vectors.items())]
                await asyncio.gather(*sent)
                self.published += len(sent)
        finally:
            replicated.stop()
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)
            await producer.stop()
            model.close()
            await runner.cleanup()

    async def _start_web(self) -> Any:

        async def metrics(_: web.Request) -> web.Response:
            self.metrics.ready.set(1 if self.ready else 0)
            return web.Response(body=generate_latest(self.metrics.registry),
                                content_type=CONTENT_TYPE_LATEST.split(";")[0])

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def readyz(_: web.Request) -> web.Response:
            model = self.model
            body = {"ready": self.ready, "role": "embedder",
                    "catalog_items": len(self.catalog), "vectors_published": self.published,
                    "model": {"name": model.name if model else None,
                              "sha256": model.sha256 if model else None,
                              "items_embedded": len(model.semantic) if model else 0,
                              "pending": len(model.pending) if model else None}}
            return web.json_response(body, status=200 if self.ready else 503)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.settings.web_host, self.settings.web_port).start()
        return runner
