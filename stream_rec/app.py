"""faust wiring only: topics, tables, agents, timers, tasks and web endpoints.

    stream-rec.events ──▶ process-events ──▶ users table (RocksDB, changelogged)
           (by user)        │ ├──▶ stream-rec.recs             slm / holdout arms, at once
                            │ ├──▶ stream-rec.rerank-requests  LLM arms: to the LLM worker
                            │ ├──▶ stream-rec.dlq              bad input: reason + bytes
                            │ ├──▶ stream-rec.item-deltas ──▶ every replica's ItemStats
                            │ └──▶ ab-recs / ab-arms tables    served recs, clicks, purchases
    stream-rec.rerank-results ──▶ follow-rerank-results ─┐  the LLM order, or the fast list
    expire-llm-pending (timer, 50 ms) ───────────────────┴▶ stream-rec.llm-recs (by user)
    stream-rec.llm-recs ──▶ publish-llm-recs ──▶ ab-recs / ab-arms ──▶ stream-rec.recs
    stream-rec.catalog ─────────────────────────────────────▶ every replica's Catalog

The agents never die on input: anything that fails decoding or validation goes to the
dead-letter topic with the field, rule, value, source offset and the original bytes.
Attribution tables can only be written inside a stream (faust changelogs a write to the
partition of the message being processed), so a recommendation is counted by the agent
that sends it: the events agent for the slm and holdout arms, and, for an LLM arm whose
answer is decided by a task, the agent of the internal ``llm-recs`` topic, co-partitioned
with the events by user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_rec import codec, faust_transport
from stream_rec.ab.online import (
    SERVED_FROM_EVENTS,
    SERVED_FROM_LLM,
    AbParams,
)
from stream_rec.ab.report import ARMS_TABLE, RECS_TABLE
from stream_rec.ab.store import AbStore
from stream_rec.config import Settings
from stream_rec.dlq import dlq_label, dlq_record
from stream_rec.errors import InvalidEvent
from stream_rec.events import Event, EventLimits, Recommendation, parse_event, parse_recommendation
from stream_rec.profile import UserProfile
from stream_rec.rerank_follower import RerankResultsFollower
from stream_rec.rerank_messages import RerankRequest, RerankResult
from stream_rec.serving import WorkerRuntime, build_runtime, llm_request, recommendation

__all__ = ["WorkerRuntime", "create_app", "dlq_record"]

log = logging.getLogger(__name__)

_DELTA_FLUSH_COUNT = 256
_DELTA_FLUSH_INTERVAL_S = 0.1
_EXPIRE_INTERVAL_S = 0.05
# Small RocksDB footprint per table partition (faust's defaults are a 2 GiB block cache).
ROCKSDB_OPTIONS = {"block_cache_size": 8 * 1024 * 1024, "write_buffer_size": 4 * 1024 * 1024,
                   "max_write_buffer_number": 2, "block_cache_compressed_size": 0}


def create_app(settings: Settings, bootstrap: str, *, tansu: bool = False) -> faust.App:
    """Build the faust app for one worker process; ``tansu`` enables its workarounds."""
    topics = settings.topics
    faust_transport.register()
    scheme = faust_transport.TANSU_SCHEME if tansu else faust_transport.KAFKA_SCHEME
    app = faust.App(
        settings.app_id,
        broker=f"{scheme}://{bootstrap}",
        broker_credentials=_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee=settings.processing_guarantee,
        table_standby_replicas=settings.standby_replicas,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=6.0,
        broker_rebalance_timeout=6.0,
        broker_heartbeat_interval=1.0,
        producer_max_batch_size=_batch_bytes(settings, tansu),
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_in_thread=False,
    )
    runtime = build_runtime(settings, bootstrap)
    app.stream_rec = runtime  # type: ignore[attr-defined]

    def raw_topic(name: str, **kwargs: Any) -> Any:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", **kwargs)

    events_topic = raw_topic(topics.events, partitions=settings.partitions)
    recs_topic = raw_topic(topics.recs, partitions=settings.partitions)
    dlq_topic = raw_topic(topics.dlq)
    deltas_topic = raw_topic(topics.item_deltas)
    requests_topic = raw_topic(topics.rerank_requests)
    # str keys (JSON-serialised) and raw orjson bytes values; see FACTS on key types.
    users = app.Table("users", key_type=str, value_type=bytes, partitions=settings.partitions,
                      options=dict(ROCKSDB_OPTIONS))
    if settings.attribution_enabled:
        ab_recs = app.Table(RECS_TABLE, key_type=str, value_type=bytes,
                            partitions=settings.partitions, options=dict(ROCKSDB_OPTIONS))
        ab_arms = app.Table(ARMS_TABLE, key_type=str, value_type=bytes,
                            partitions=settings.partitions, options=dict(ROCKSDB_OPTIONS))
        runtime.ab = AbStore(ab_recs, ab_arms, AbParams(
            window_ms=int(settings.ab_window_s * 1000), max_recs=settings.ab_recs_per_user))
    ab = runtime.ab
    metrics = runtime.metrics

    async def flush_deltas() -> None:
        if runtime.pending_deltas:
            batch, runtime.pending_deltas = runtime.pending_deltas, []
            await deltas_topic.send(value=codec.dumps(batch))
        runtime.last_delta_flush = time.monotonic()

    async def emit(rec: Recommendation) -> None:
        await recs_topic.send(key=rec.user_id.encode(), value=codec.dumps(rec.to_dict()))
        metrics.recs.labels(rec.arm, rec.model, str(rec.degraded).lower()).inc()
        metrics.rec_latency.labels(rec.arm).observe(rec.latency_ms / 1000.0)

    @app.agent(events_topic, name="process-events")
    async def process_events(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await handle_one(event)
            if (len(runtime.pending_deltas) >= _DELTA_FLUSH_COUNT
                    or time.monotonic() - runtime.last_delta_flush > _DELTA_FLUSH_INTERVAL_S):
                await flush_deltas()

    async def handle_one(fevent: faust.EventT[bytes]) -> None:
        message = fevent.message
        try:
            event = _decode(message.key, message.value, runtime.limits)
        except InvalidEvent as exc:
            await _send_dlq(dlq_topic, runtime, message, exc.field, exc.rule, exc.value, str(exc))
            return
        except Exception as exc:  # a decoder bug must cost one message, never the agent
            log.exception("decoding %s[%s]@%s failed", message.topic, message.partition,
                          message.offset)
            await _send_dlq(dlq_topic, runtime, message, "<message>", "could not be decoded",
                            type(exc).__name__, repr(exc)[:200])
            return
        try:
            await apply_and_recommend(event, message)
        except Exception as exc:  # the agent must survive anything a single event triggers
            log.exception("event %s[%s]@%s failed", message.topic, message.partition,
                          message.offset)
            await _send_dlq(dlq_topic, runtime, message, "<processing>",
                            "raised an unexpected error", type(exc).__name__, repr(exc))

    async def apply_and_recommend(event: Event, message: Any) -> None:
        stored = users.get(event.user_id)
        before = (UserProfile.from_dict(codec.loads(stored)) if stored
                  else UserProfile.new(event.user_id))
        obs = runtime.recommender.observe(before, event, partition=message.partition,
                                          offset=message.offset)
        if obs.applied:
            users[event.user_id] = codec.dumps(obs.profile.to_dict())
            metrics.events.labels(event.type).inc()
            if obs.delta is not None:
                runtime.pending_deltas.append(obs.delta.to_list())
        else:
            # A redelivery. RocksDB is written before the changelog send completes, so the
            # crash that caused it may have left this update on the local disk only: write
            # it again so the changelog (what another worker or an empty disk recovers)
            # catches up.
            if stored is not None:
                users[event.user_id] = stored
            metrics.duplicates.inc()
        if ab is not None and event.type in ("rec_click", "purchase"):
            note = ab.on_event(event, partition=message.partition, offset=message.offset)
            metrics.attribution.labels("events", note).inc()
        if event.type in runtime.settings.trigger_types:
            await serve(event, obs.profile, message)

    async def serve(event: Event, profile: UserProfile, message: Any) -> None:
        arm = runtime.router.assign(event.user_id)
        if runtime.arm_kind(arm) == "llm":
            outcome = llm_request(runtime, profile, event, arm, message.timestamp)
            if isinstance(outcome, RerankRequest):
                await requests_topic.send(key=event.user_id.encode(),
                                          value=codec.dumps(outcome.to_dict()))
                metrics.llm_arm.labels("sent").inc()
                return
            if outcome is None:
                return
            metrics.llm_arm.labels(outcome.fallback_reason or "nothing_to_rerank").inc()
            rec = outcome
        else:
            rec = await recommendation(runtime, profile, event, message.timestamp, arm)
        if ab is not None:
            note = ab.on_recommendation(rec, partition=message.partition,
                                        offset=message.offset, source=SERVED_FROM_EVENTS)
            metrics.attribution.labels("recs", note).inc()
        await emit(rec)

    follower = (_wire_llm_arm(app, runtime, raw_topic, emit, dlq_topic, bootstrap=bootstrap,
                              tansu=tansu)
                if runtime.has_llm_arm else None)

    @app.timer(_DELTA_FLUSH_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def flush_deltas_timer() -> None:
        await flush_deltas()

    @app.task  # type: ignore[untyped-decorator]
    async def follow_shared_state() -> None:
        assert runtime.replicated is not None
        await runtime.replicated.run()

    @app.task  # type: ignore[untyped-decorator]
    async def embed_new_items() -> None:
        while runtime.model is not None and not app.should_stop:
            caught_up = runtime.replicated is not None and runtime.replicated.caught_up.is_set()
            await runtime.model.embed_pending(runtime.metrics, caught_up=caught_up)
            await asyncio.sleep(0.05)

    @app.page("/metrics")
    async def metrics_view(self: Any, request: Any) -> Any:
        metrics.ready.set(1 if _ready(app, runtime, follower) else 0)
        metrics.catalog_items.set(len(runtime.recommender.catalog))
        metrics.llm_pending.set(len(runtime.llm_arm))
        metrics.llm_pending_max.set(runtime.llm_arm.max_pending_seen)
        if runtime.ab is not None:
            metrics.export_ab(runtime.ab.totals())
        return self.bytes(generate_latest(metrics.registry),
                          content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz_view(self: Any, request: Any) -> Any:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz_view(self: Any, request: Any) -> Any:
        ready = _ready(app, runtime, follower)
        model = runtime.model
        return self.json({"ready": ready, "role": "slm",
                          "catalog_items": len(runtime.recommender.catalog),
                          "item_deltas": runtime.recommender.stats.deltas,
                          "worker_id": runtime.llm_arm.worker_id,
                          "llm_pending": len(runtime.llm_arm),
                          "model": {"name": runtime.model_name,
                                    "sha256": model.sha256 if model else None,
                                    "items_embedded": len(model.semantic) if model else 0}},
                         status=200 if ready else 503)

    @app.page("/state/{user_id}")
    async def state_view(self: Any, request: Any, user_id: str) -> Any:
        stored = users.get(user_id)
        if stored is None:
            return self.json({"error": f"no state for user {user_id!r} on this worker"},
                             status=404)
        return self.json(codec.loads(stored))

    return app


def _wire_llm_arm(app: faust.App, runtime: WorkerRuntime, raw_topic: Any, emit: Any,
                  dlq_topic: Any, *, bootstrap: str, tansu: bool) -> RerankResultsFollower:
    """The LLM arm's plumbing, only for workers whose arms include one: the results
    follower, the deadline timer, the llm-recs agent and the drain at shutdown."""
    settings = runtime.settings
    metrics = runtime.metrics
    ab = runtime.ab
    llm_recs_topic = raw_topic(settings.topics.llm_recs, partitions=settings.partitions)

    async def decided(rec: Recommendation) -> None:
        """An LLM-arm recommendation decided outside a stream: to the llm-recs topic."""
        await llm_recs_topic.send(key=rec.user_id.encode(), value=codec.dumps(rec.to_dict()))

    @app.agent(llm_recs_topic, name="publish-llm-recs")
    async def publish_llm_recs(stream: faust.StreamT[bytes]) -> None:
        async for fevent in stream.events():
            message = fevent.message
            try:
                rec = parse_recommendation(message.value or b"")
            except InvalidEvent as exc:
                await _send_dlq(dlq_topic, runtime, message, exc.field, exc.rule, exc.value,
                                str(exc))
                continue
            now_ms = int(time.time() * 1000)  # latency counts the hop through llm-recs too
            rec = replace(rec, generated_at_ms=now_ms, latency_ms=rec.latency_ms + max(
                0, now_ms - rec.generated_at_ms))
            try:
                if ab is not None:
                    note = ab.on_recommendation(rec, partition=message.partition,
                                                offset=message.offset, source=SERVED_FROM_LLM)
                    metrics.attribution.labels("llm-recs", note).inc()
            except Exception:  # attribution must never cost the recommendation
                log.exception("attributing %s[%s]@%s failed", message.topic,
                              message.partition, message.offset)
            await emit(rec)  # a redelivery sends it again: consumers deduplicate on rec_id

    async def on_result(result: RerankResult) -> None:
        rec = runtime.llm_arm.on_result(result, int(time.time() * 1000))
        if rec is None:
            metrics.llm_arm.labels("late").inc()
            return
        metrics.llm_arm.labels("reranked" if not rec.degraded else
                               f"result_{result.status}").inc()
        await decided(rec)

    follower = RerankResultsFollower(
        bootstrap=bootstrap, topic=settings.topics.rerank_results,
        worker_id=runtime.llm_arm.worker_id,
        on_result=on_result, client_kwargs=_client_kwargs(settings),
        fetch_max_wait_ms=faust_transport.TANSU_FETCH_MAX_WAIT_MS if tansu else 100)

    @app.timer(_EXPIRE_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def expire_llm_pending() -> None:
        for rec in runtime.llm_arm.expire(int(time.time() * 1000)):
            metrics.llm_arm.labels("deadline").inc()
            await decided(rec)
        metrics.llm_pending.set(len(runtime.llm_arm))
        metrics.llm_pending_max.set(runtime.llm_arm.max_pending_seen)

    async def send_pending_as_fallbacks(sender: Any, /, *args: Any, signal: Any,
                                        **kwargs: Any) -> None:
        # the consumer has stopped: send to the users now, and to llm-recs to be counted by
        # whichever worker reads that partition next (it forwards a copy: same rec_id)
        for rec in runtime.llm_arm.drain(int(time.time() * 1000)):
            try:
                await emit(rec)
                await decided(rec)
            except Exception:  # the producer may be going away: nothing more to do
                log.exception("could not send fallback %s at shutdown", rec.rec_id)

    app.on_before_shutdown.connect(send_pending_as_fallbacks)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_rerank_results() -> None:
        await follower.run()

    return follower


def _decode(key: bytes | None, value: bytes | None, limits: EventLimits) -> Event:
    event = parse_event(value or b"", int(time.time() * 1000), limits)
    if key is None or key != event.user_id.encode():
        shown = None if key is None else key[:64].decode("utf-8", "replace")
        raise InvalidEvent("<key>", "must equal user_id (events are partitioned by user)",
                           shown)
    return event


async def _send_dlq(dlq_topic: Any, runtime: WorkerRuntime, message: Any, field_name: str,
                    rule: str, shown: str, reason: str) -> None:
    record = dlq_record(topic=message.topic, partition=message.partition, offset=message.offset,
                        key=message.key, value=message.value, field_name=field_name, rule=rule,
                        shown=shown, reason=reason, now_ms=int(time.time() * 1000))
    log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset,
                reason)
    runtime.metrics.dlq.labels(dlq_label(field_name)).inc()
    await dlq_topic.send(key=message.key, value=codec.dumps(record))


def _client_kwargs(settings: Settings) -> dict[str, Any]:
    from stream_rec.broker import client_security_kwargs

    return client_security_kwargs(settings)


def _ready(app: faust.App, runtime: WorkerRuntime,
           follower: RerankResultsFollower | None) -> bool:
    recovered = app.tables.recovery.completed.is_set() if app.tables else True  # type: ignore[attr-defined]
    caught_up = runtime.replicated is not None and runtime.replicated.caught_up.is_set()
    embedded = runtime.model is None or runtime.model.warm
    following = follower is None or follower.ready.is_set()
    return bool(recovered and caught_up and embedded and following and not app.rebalancing)


def _batch_bytes(settings: Settings, tansu: bool) -> int:
    if settings.producer_max_batch_bytes > 0:
        return settings.producer_max_batch_bytes
    return 16 if tansu else 16_384


def _credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context(cafile=settings.ssl_cafile or None,
                                         certfile=settings.ssl_certfile or None,
                                         keyfile=settings.ssl_keyfile or None)
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(ssl_context)
    return faust.SASLCredentials(username=settings.sasl_username,
                                 password=settings.sasl_password,
                                 mechanism=settings.sasl_mechanism,
                                 ssl_context=ssl_context)

