"""faust wiring only: topics, tables, agents, timers, tasks and web pages of one SLM worker.

    stream-rec.events ──▶ process-events ──▶ users table (RocksDB, changelogged)
           (by user)        │ ├──▶ stream-rec.recs             slm / holdout arms, at once
                            │ ├──▶ stream-rec.rerank-requests  LLM arms: to the LLM worker
                            │ ├──▶ stream-rec.dlq              bad input: reason + bytes
                            │ ├──▶ stream-rec.item-deltas ──▶ every replica's ItemStats
                            │ ├──▶ (its ranker learns; timer) stream-rec.ranker ──▶ every
                            │ │      replica's ranker: priors + Σ workers' contributions
                            │ ├──▶ ab-recs / ab-arms tables    served recs, clicks, purchases
                            │ └──▶ latest-recs table (pull API) each user's newest sent rec
    stream-rec.rerank-results ──▶ follow-rerank-results ─┐  the LLM order, or the fast list
    expire-llm-pending (timer, 50 ms) ───────────────────┴▶ stream-rec.llm-recs (by user)
    stream-rec.llm-recs ──▶ publish-llm-recs ──▶ ab-recs / ab-arms ──▶ stream-rec.recs
                                                 └▶ latest-recs table
    stream-rec.catalog ─────────────────────────────────────▶ every replica's Catalog

What each message does is decided in :mod:`stream_rec.serving.handlers` (no faust there);
this module only moves messages between faust and the handlers. Attribution tables can
only be written inside a stream (faust changelogs a write to the partition of the message
being processed), so an LLM-arm recommendation decided by a task is counted by the agent
of the internal ``llm-recs`` topic, co-partitioned with the events by user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import faust

from stream_rec.ab.online import AbParams
from stream_rec.ab.store import ARMS_TABLE, RECS_TABLE, AbStore
from stream_rec.broker import faust_transport
from stream_rec.broker.faust_transport import faust_credentials
from stream_rec.broker.output import OutputProducer
from stream_rec.broker.security import client_security_kwargs
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.events import Recommendation
from stream_rec.llm.follower import RerankResultsFollower
from stream_rec.llm.messages import RerankResult
from stream_rec.serving import web
from stream_rec.serving.console import LiveStats
from stream_rec.serving.handlers import EventHandler, LlmRecHandler, Outputs
from stream_rec.serving.heap import HeapFreezer
from stream_rec.serving.latest_recs import LATEST_RECS_TABLE, LatestRecs, SentRec
from stream_rec.serving.loop_watch import LoopWatch
from stream_rec.serving.runtime import WorkerRuntime, build_runtime
from stream_rec.serving.table_store import TableMemory, store_url

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_DELTA_FLUSH_COUNT = 256
_DELTA_FLUSH_INTERVAL_S = 0.1
_EXPIRE_INTERVAL_S = 0.05
_HEAP_CHECK_INTERVAL_S = 1.0
# the Kafka consumer's heartbeats run on the worker's loop: a longer block rebalances
_SESSION_TIMEOUT_S = 6.0


def create_app(settings: Settings, bootstrap: str, *, tansu: bool = False) -> faust.App:
    """Build the faust app for one worker process; ``tansu`` enables its workarounds."""
    app = _faust_app(settings, bootstrap, tansu)
    runtime = build_runtime(settings, bootstrap)
    app.stream_rec = runtime  # type: ignore[attr-defined]
    out = _Sender(app, runtime, bootstrap)
    metrics = runtime.metrics
    memory = TableMemory.of(cache_bytes=int(settings.table_cache_mb * 2**20),
                            write_buffer_bytes=int(settings.table_write_buffer_mb * 2**20))
    metrics.watch_table_memory(memory.usage)
    users = _table(app, "users", settings, memory)
    if settings.attribution_enabled:
        runtime.ab = AbStore(_table(app, RECS_TABLE, settings, memory),
                             _table(app, ARMS_TABLE, settings, memory),
                             AbParams(window_ms=int(settings.ab_window_s * 1000),
                                      max_recs=settings.ab_recs_per_user))
    latest = LatestRecs(_table(app, LATEST_RECS_TABLE, settings, memory)
                        if settings.latest_recs == "on" else None, LiveStats())
    handler = EventHandler(runtime, users)

    @app.agent(out.events, name="process-events")
    async def process_events(stream: faust.StreamT[bytes]) -> None:
        # a batch is acked (and so committable) only when the next one is asked for:
        # after its state writes and after the broker acknowledged its outputs
        async for batch in faust_transport.take_event_batches(
                stream, settings.batch_max_events, settings.batch_max_wait_ms / 1000.0):
            outputs = await handler.handle_batch([event.message for event in batch],
                                                 bind=_binder(batch))
            latest.remember(await out.send(outputs, flush_deltas=True),
                            bind=_user_binder(batch))
            metrics.batch_size.observe(len(batch))
            for stage, seconds in handler.stage_cpu_s.items():
                if seconds:
                    metrics.stage_cpu.labels(stage).inc(seconds)
                    handler.stage_cpu_s[stage] = 0.0

    async def stop_output_producer(sender: Any, /, *args: Any, signal: Any,
                                   **kwargs: Any) -> None:
        try:  # what the ranker learned since its last record, before the producer goes
            await out.producer.wait_sent(await out.publish_ranker())
        except Exception:  # a lost record costs only the steps learned since the last one
            log.exception("could not publish the ranker's contribution at shutdown")
        await out.producer.stop()  # the consumer has stopped: flushes what is queued

    app.on_before_shutdown.connect(stop_output_producer)

    follower = (_wire_llm_arm(app, runtime, out, latest, bootstrap, tansu)
                if runtime.has_llm_arm else None)

    @app.timer(_DELTA_FLUSH_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def flush_deltas_timer() -> None:
        await out.producer.wait_sent(await out.flush_deltas(force=True))

    @app.timer(settings.ranker_publish_s)  # type: ignore[untyped-decorator]
    async def publish_ranker_timer() -> None:
        await out.producer.wait_sent(await out.publish_ranker())

    @app.task  # type: ignore[untyped-decorator]
    async def follow_shared_state() -> None:
        assert runtime.replicated is not None
        await runtime.replicated.run()

    _wire_item_vectors(app, runtime)
    def ready() -> bool:
        return _ready(app, runtime, follower)

    web.add_pages(app, runtime, users, latest, ready)
    heap = HeapFreezer(ready)

    @app.timer(_HEAP_CHECK_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def freeze_long_lived_heap() -> None:
        heap.tick()

    watch = LoopWatch(session_timeout_s=_SESSION_TIMEOUT_S)

    @app.task  # type: ignore[untyped-decorator]
    async def watch_event_loop() -> None:
        await watch.run(runtime.metrics.loop_lag.observe)

    return app


def _wire_item_vectors(app: faust.App, runtime: WorkerRuntime) -> None:
    """The task keeping item vectors and the ranker's text space current."""

    @app.task  # type: ignore[untyped-decorator]
    async def index_item_vectors() -> None:
        # embedded here (a model-holding worker) or folded from the embedder's topic; the
        # text space is swapped in with no await after the vectors are indexed
        while (runtime.model is not None or runtime.vectors is not None) and not app.should_stop:
            if runtime.model is not None:
                caught_up = (runtime.replicated is not None
                             and runtime.replicated.caught_up.is_set())
                await runtime.model.embed_pending(runtime.metrics, caught_up=caught_up)
                runtime.recommender.text_space = runtime.model.space
            elif runtime.vectors is not None:
                await runtime.vectors.index_staged()
                runtime.recommender.text_space = runtime.vectors.space
            await asyncio.sleep(0.05)


class _Sender:
    """The worker's output topics, and sending a handler's :class:`Outputs` to them.

    Recs, dead letters, rerank requests, item deltas and ranker contributions go through the
    :class:`OutputProducer`; the LLM arm's own paths (llm-recs, recs sent at shutdown) go
    through faust's topics.
    """

    def __init__(self, app: faust.App, runtime: WorkerRuntime, bootstrap: str) -> None:
        settings = runtime.settings
        topics, partitions = settings.topics, settings.partitions
        self.runtime = runtime
        self.topics = topics
        self.producer = OutputProducer(bootstrap, client_security_kwargs(settings))
        self.events = _raw_topic(app, topics.events, partitions=partitions)
        self.recs = _raw_topic(app, topics.recs, partitions=partitions)
        self.llm_recs: Any = None  # declared only by workers with an LLM arm

    async def send(self, outputs: Outputs, *, flush_deltas: bool = False) -> list[SentRec]:
        """Queue every output, then wait until the broker has acknowledged them all; the
        recommendations as sent."""
        metrics, topics, producer = self.runtime.metrics, self.topics, self.producer
        started = time.thread_time()
        sent = []
        recs = [SentRec(fields, codec.dumps(fields))
                for fields in (rec.to_dict() for rec in outputs.recs)]
        for letter in outputs.dead_letters:
            sent.append(await producer.send(topics.dlq, letter.value, letter.key))
        for request in outputs.rerank_requests:
            sent.append(await producer.send(topics.rerank_requests,
                                            codec.dumps(request.to_dict()),
                                            request.user_id.encode()))
        for record in recs:
            sent.append(await producer.send(topics.recs, record.value,
                                            record.user_id.encode()))
        if flush_deltas:
            sent.extend(await self.flush_deltas(force=False))
        metrics.stage_cpu.labels("output").inc(time.thread_time() - started)
        await producer.wait_sent(sent)
        for rec in outputs.recs:
            metrics.recs.labels(rec.arm, rec.model, str(rec.degraded).lower()).inc()
            metrics.rec_latency.labels(rec.arm).observe(rec.latency_ms / 1000.0)
        return recs

    async def emit(self, rec: Recommendation) -> None:
        """One recommendation through faust's producer (the LLM arm's shutdown path)."""
        metrics = self.runtime.metrics
        await self.recs.send(key=rec.user_id.encode(), value=codec.dumps(rec.to_dict()))
        metrics.recs.labels(rec.arm, rec.model, str(rec.degraded).lower()).inc()
        metrics.rec_latency.labels(rec.arm).observe(rec.latency_ms / 1000.0)

    async def decided(self, rec: Recommendation) -> None:
        """An LLM-arm recommendation decided outside a stream: to the llm-recs topic."""
        await self.llm_recs.send(key=rec.user_id.encode(), value=codec.dumps(rec.to_dict()))

    async def flush_deltas(self, *, force: bool) -> list[asyncio.Future[Any]]:
        """Queue the pending item deltas as one record when due; the futures to wait on."""
        runtime = self.runtime
        due = (len(runtime.pending_deltas) >= _DELTA_FLUSH_COUNT
               or time.monotonic() - runtime.last_delta_flush > _DELTA_FLUSH_INTERVAL_S)
        if not (force or due):
            return []
        sent = []
        if runtime.pending_deltas:
            batch, runtime.pending_deltas = runtime.pending_deltas, []
            sent.append(await self.producer.send(self.topics.item_deltas, codec.dumps(batch),
                                                 runtime.deltas_key))
        runtime.last_delta_flush = time.monotonic()
        return sent

    async def publish_ranker(self) -> list[asyncio.Future[Any]]:
        """Queue this worker's ranker contribution when it has learned since its last one,
        once the ranker topic has been folded (so a restart continues its stored record)."""
        sharing, replicated = self.runtime.ranker_sharing, self.runtime.replicated
        if sharing is None or replicated is None or not replicated.caught_up.is_set():
            return []
        record = sharing.next_record()
        if record is None:
            return []
        key, value = record
        return [await self.producer.send(self.topics.ranker, value, key)]


def _binder(batch: Sequence[Any]) -> Callable[[int], None]:
    """``bind(i)``: make the batch's i-th event faust's current event (table writes)."""
    return lambda index: faust_transport.make_current(batch[index])


def _user_binder(batch: Sequence[Any]) -> Callable[[str], None]:
    """``bind(user_id)``: make one of the batch's events of that user faust's current event
    (a valid event's key is its user id, so any of them is in the user's partition)."""
    by_user = {event.message.key: event for event in batch}
    return lambda user_id: faust_transport.make_current(by_user[user_id.encode()])


def _wire_llm_arm(app: faust.App, runtime: WorkerRuntime, out: _Sender, latest: LatestRecs,
                  bootstrap: str, tansu: bool) -> RerankResultsFollower:
    """The LLM arm's plumbing, only for workers whose arms include one: the results
    follower, the deadline timer, the llm-recs agent and the drain at shutdown."""
    settings, metrics = runtime.settings, runtime.metrics
    out.llm_recs = _raw_topic(app, settings.topics.llm_recs, partitions=settings.partitions)
    llm_recs_handler = LlmRecHandler(runtime, lambda: int(time.time() * 1000))

    @app.agent(out.llm_recs, name="publish-llm-recs")
    async def publish_llm_recs(stream: faust.StreamT[bytes]) -> None:
        async for fevent in stream.events():  # the record's own event is current
            latest.remember(await out.send(await llm_recs_handler.handle(fevent.message)))

    async def on_result(result: RerankResult) -> None:
        rec = runtime.llm_arm.on_result(result, int(time.time() * 1000))
        if rec is None:
            metrics.llm_arm.labels("late").inc()
            return
        metrics.llm_arm.labels("reranked" if not rec.degraded else
                               f"result_{result.status}").inc()
        await out.decided(rec)

    follower = RerankResultsFollower(
        bootstrap=bootstrap, topic=settings.topics.rerank_results,
        worker_id=runtime.llm_arm.worker_id,
        on_result=on_result, client_kwargs=client_security_kwargs(settings),
        fetch_max_wait_ms=faust_transport.TANSU_FETCH_MAX_WAIT_MS if tansu else 100)

    @app.timer(_EXPIRE_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def expire_llm_pending() -> None:
        for rec in runtime.llm_arm.expire(int(time.time() * 1000)):
            metrics.llm_arm.labels("deadline").inc()
            await out.decided(rec)
        metrics.llm_pending.set(len(runtime.llm_arm))
        metrics.llm_pending_max.set(runtime.llm_arm.max_pending_seen)

    async def send_pending_as_fallbacks(sender: Any, /, *args: Any, signal: Any,
                                        **kwargs: Any) -> None:
        # the consumer has stopped: send to the users now, and to llm-recs to be counted by
        # whichever worker reads that partition next (it forwards a copy: same rec_id)
        for rec in runtime.llm_arm.drain(int(time.time() * 1000)):
            try:
                await out.emit(rec)
                await out.decided(rec)
            except Exception:  # the producer may be going away: nothing more to do
                log.exception("could not send fallback %s at shutdown", rec.rec_id)

    app.on_before_shutdown.connect(send_pending_as_fallbacks)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_rerank_results() -> None:
        await follower.run()

    return follower


def _faust_app(settings: Settings, bootstrap: str, tansu: bool) -> faust.App:
    faust_transport.register()
    scheme = faust_transport.TANSU_SCHEME if tansu else faust_transport.KAFKA_SCHEME
    return faust.App(
        settings.app_id,
        broker=f"{scheme}://{bootstrap}",
        broker_credentials=faust_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee=settings.processing_guarantee,
        table_standby_replicas=settings.standby_replicas,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=_SESSION_TIMEOUT_S,
        broker_rebalance_timeout=6.0,
        broker_heartbeat_interval=1.0,
        producer_max_batch_size=_batch_bytes(settings, tansu),
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        canonical_url=settings.advertised_url,  # peers reach this worker there (pull API)
        web_in_thread=False,
    )


def _raw_topic(app: faust.App, name: str, **kwargs: Any) -> Any:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", **kwargs)


def _table(app: faust.App, name: str, settings: Settings, memory: TableMemory) -> Any:
    # str keys (JSON-serialised) and raw orjson bytes values; see FACTS on key types.
    return app.Table(name, key_type=str, value_type=bytes, partitions=settings.partitions,
                     store=store_url(name), options=memory.table_options())


def _ready(app: faust.App, runtime: WorkerRuntime,
           follower: RerankResultsFollower | None) -> bool:
    recovered = app.tables.recovery.completed.is_set() if app.tables else True  # type: ignore[attr-defined]
    caught_up = runtime.replicated is not None and runtime.replicated.caught_up.is_set()
    embedded = runtime.model is None or runtime.model.warm
    indexed = runtime.vectors is None or runtime.vectors.warm(caught_up=caught_up)
    following = follower is None or follower.ready.is_set()
    return bool(recovered and caught_up and embedded and indexed and following
                and not app.rebalancing)


def _batch_bytes(settings: Settings, tansu: bool) -> int:
    if settings.producer_max_batch_bytes > 0:
        return settings.producer_max_batch_bytes
    return 16 if tansu else 16_384
