"""The LLM worker (``stream-rec worker --role llm``): reranks the LLM arm's candidates.

    stream-rec.rerank-requests ──▶ RerankService ──────────▶ stream-rec.rerank-results
      key = user_id                  past deadline? skip        key = user_id, reply_to =
      group "{app_id}-llm"           queue full? answer "shed"  the SLM worker holding the
                                     else backend.rerank(…)     pending recommendation

It never writes recommendations itself: the SLM worker that asked decides between the
LLM's order and its own fast list (``stream_rec.llm.arm``), so each trigger gets exactly
one recommendation even when this worker is slow, saturated or stopped.

**Why a plain aiokafka consumer group, not a faust app.** This worker has no tables, no
per-user state and nothing to recover, so faust's machinery (changelogs, recovery,
co-partitioned assignment) buys nothing; as a member of the SLM workers' faust group it
would even be handed events partitions. Its own group (``{app_id}-llm``) scales by adding
processes (up to the requests topic's partitions), and plain aiokafka gives direct control
of what matters here: how many requests are in flight, and dropping what is late. Offsets
are auto-committed: a request lost in a crash is answered by the SLM worker's deadline, a
request redelivered after its deadline is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_rec.broker.security import client_security_kwargs
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.errors import InvalidEvent, ModelError, ModelTimeout
from stream_rec.llm.backends import RerankBackend, backend_from_settings
from stream_rec.llm.messages import RerankRequest, RerankResult, parse_rerank_request
from stream_rec.llm.metrics import LlmWorkerMetrics
from stream_rec.model.pool import ModelBusy

__all__ = ["LlmWorker", "RerankService"]

log = logging.getLogger(__name__)

Publish = Callable[[RerankResult], Awaitable[None]]


class RerankService:
    """Admission control around a backend: deadlines, a bounded in-flight set, shedding.

    :meth:`offer` never waits for the model: a request past its deadline is dropped
    (``expired``), one arriving while ``max_in_flight`` are running is answered ``shed`` at
    once, and the rest run as tasks whose results go to ``publish`` if still in time.
    """

    def __init__(self, backend: RerankBackend, *, max_in_flight: int, publish: Publish,
                 metrics: LlmWorkerMetrics | None = None,
                 clock_ms: Callable[[], float] = lambda: time.time() * 1000) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.backend = backend
        self.max_in_flight = max_in_flight
        self.publish = publish
        self.metrics = metrics
        self.clock_ms = clock_ms
        self.outcomes: Counter[str] = Counter()
        self.max_in_flight_seen = 0
        self._tasks: set[asyncio.Task[None]] = set()
        if metrics is not None:
            metrics.in_flight_limit.set(max_in_flight)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def offer(self, request: RerankRequest) -> str:
        """Admit, shed or drop one request; returns the outcome (accepted/shed/expired)."""
        if request.deadline_at_ms <= self.clock_ms():
            self._count("expired")
            return "expired"
        if len(self._tasks) >= self.max_in_flight:
            self._count("shed")
            await self.publish(self._result(request, "shed", (), 0.0,
                                            f"{self.max_in_flight} requests in flight"))
            return "shed"
        task = asyncio.create_task(self._run(request))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        self.max_in_flight_seen = max(self.max_in_flight_seen, len(self._tasks))
        if self.metrics is not None:
            self.metrics.in_flight.set(len(self._tasks))
            self.metrics.in_flight_max.set(self.max_in_flight_seen)
        return "accepted"

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the requests in flight (a graceful stop)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def _run(self, request: RerankRequest) -> None:
        started = time.perf_counter()
        budget_s = (request.deadline_at_ms - self.clock_ms()) / 1000.0
        status, detail = "ok", ""
        order: tuple[str, ...] = ()
        try:
            if budget_s <= 0:
                raise ModelTimeout("the deadline passed before the rerank started")
            order = tuple(await asyncio.wait_for(
                self.backend.rerank(request, timeout_s=budget_s), timeout=budget_s))
        except (ModelTimeout, TimeoutError):
            self._count("late")
            return
        except ModelBusy as exc:
            status, detail = "shed", str(exc)
        except ModelError as exc:
            status, detail = "error", str(exc)
        except Exception as exc:  # a backend bug costs one request, never the worker
            log.exception("rerank of %s failed", request.rec_id)
            status, detail = "error", repr(exc)
        elapsed = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.seconds.observe(elapsed)
        if self.clock_ms() > request.deadline_at_ms:
            self._count("late")  # the SLM worker has already sent its fast list
            return
        self._count({"ok": "ok", "shed": "shed"}.get(status, "error"))
        await self.publish(self._result(request, status, order, elapsed * 1000.0, detail))

    def _result(self, request: RerankRequest, status: str, order: tuple[str, ...],
                model_ms: float, detail: str) -> RerankResult:
        return RerankResult(rec_id=request.rec_id, user_id=request.user_id,
                            reply_to=request.reply_to, status=status, order=order,
                            model=self.backend.name, model_ms=model_ms,
                            produced_at_ms=int(self.clock_ms()), detail=detail)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self.metrics is not None:
            self.metrics.in_flight.set(len(self._tasks))
        if not task.cancelled() and task.exception() is not None:
            log.error("rerank task failed: %r", task.exception())

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1
        if self.metrics is not None:
            self.metrics.requests.labels(outcome).inc()


class LlmWorker:
    """One LLM worker process: consumer group, backend, producer and a small web server."""

    def __init__(self, settings: Settings, bootstrap: str, *, tansu: bool,
                 backend: RerankBackend | None = None) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.tansu = tansu
        self.backend = backend
        self.metrics = LlmWorkerMetrics()
        self.joined = asyncio.Event()
        self.backend_up = False
        self.service: RerankService | None = None

    @property
    def ready(self) -> bool:
        return self.backend_up and self.joined.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then finish what is in flight and leave the group."""


        settings = self.settings
        topics = settings.topics
        security = client_security_kwargs(settings)
        runner = await self._start_web()
        if self.backend is None:
            self.backend = await asyncio.to_thread(backend_from_settings, settings)
        await self.backend.start()
        self.backend_up = True
        log.info("LLM backend %s ready", self.backend.name)
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=1, **security)
        await producer.start()

        async def publish(result: RerankResult) -> None:
            await producer.send(topics.rerank_results, key=result.user_id.encode(),
                                value=codec.dumps(result.to_dict()))

        self.service = RerankService(self.backend, max_in_flight=settings.llm_max_in_flight,
                                     publish=publish, metrics=self.metrics)
        worker = self

        class _Joined(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                return None

            async def on_partitions_assigned(self, assigned: Any) -> None:
                log.info("LLM worker assigned %s", sorted(tp.partition for tp in assigned))
                worker.joined.set()

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=f"{settings.app_id}-llm",
            enable_auto_commit=True, auto_commit_interval_ms=1000,
            auto_offset_reset="earliest", session_timeout_ms=6000,
            heartbeat_interval_ms=1000, rebalance_timeout_ms=6000,
            fetch_max_wait_ms=20 if self.tansu else 100, max_poll_records=100, **security)
        consumer.subscribe([topics.rerank_requests], listener=_Joined())
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for messages in batches.values():
                    for message in messages:
                        await self._handle(message)
        finally:
            await self.service.drain(timeout_s=settings.llm_deadline_ms / 1000.0)
            await consumer.stop()
            await producer.stop()
            await self.backend.close()
            await runner.cleanup()

    async def _handle(self, message: Any) -> None:
        assert self.service is not None
        try:
            request = parse_rerank_request(message.value or b"")
        except InvalidEvent as exc:
            self.service._count("invalid")
            log.warning("skipping invalid rerank request %s[%s]@%s: %s", message.topic,
                        message.partition, message.offset, exc)
            return
        await self.service.offer(request)

    async def _start_web(self) -> Any:

        async def metrics(_: web.Request) -> web.Response:
            self.metrics.ready.set(1 if self.ready else 0)
            return web.Response(body=generate_latest(self.metrics.registry),
                                content_type=CONTENT_TYPE_LATEST.split(";")[0])

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def readyz(_: web.Request) -> web.Response:
            service = self.service
            body = {"ready": self.ready, "role": "llm",
                    "backend": self.backend.name if self.backend else None,
                    "joined": self.joined.is_set(),
                    "in_flight": service.in_flight if service else 0,
                    "outcomes": dict(service.outcomes) if service else {}}
            return web.json_response(body, status=200 if self.ready else 503)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.settings.web_host, self.settings.web_port).start()
        return runner
