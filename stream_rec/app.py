"""faust wiring only: topics, the users table, the event agent, the DLQ and web endpoints.

    stream-rec.events ──▶ agent ──▶ users table (RocksDB, changelogged)
           (by user)        │ ├──▶ stream-rec.recs      (one message per trigger)
                            │ ├──▶ stream-rec.dlq       (bad input: reason + original bytes)
                            │ └──▶ stream-rec.item-deltas ──▶ every replica's ItemStats
    stream-rec.catalog ─────┴──────────────────────────────▶ every replica's Catalog

The agent never dies on input: anything that fails decoding or validation goes to the
dead-letter topic with the field, rule, value, source offset and the original bytes.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_rec import codec, faust_transport, prompts
from stream_rec.catalog import Catalog
from stream_rec.config import Settings
from stream_rec.errors import InvalidEvent, ModelError
from stream_rec.events import Event, EventLimits, RecItem, Recommendation, parse_event
from stream_rec.item_stats import ItemStats, StatsParams
from stream_rec.metrics import WorkerMetrics
from stream_rec.model_runtime import ModelRuntime
from stream_rec.profile import ProfileParams, UserProfile
from stream_rec.ranking import RankParams
from stream_rec.recommender import Recommender, rec_id_for
from stream_rec.replicated import ReplicatedState
from stream_rec.router import Router

__all__ = ["WorkerRuntime", "create_app", "dlq_record"]

log = logging.getLogger(__name__)

_DLQ_LABELS = frozenset({"<message>", "<key>", "<processing>", "event_id", "type", "user_id",
                         "item_id", "ts_ms", "quantity", "price", "rec_id", "context",
                         "query"})
_DELTA_FLUSH_COUNT = 256
_DELTA_FLUSH_INTERVAL_S = 0.1
# Small RocksDB footprint per table partition (faust's defaults are a 2 GiB block cache).
ROCKSDB_OPTIONS = {"block_cache_size": 8 * 1024 * 1024, "write_buffer_size": 4 * 1024 * 1024,
                   "max_write_buffer_number": 2, "block_cache_compressed_size": 0}


@dataclass
class WorkerRuntime:
    """What the agent needs besides faust: the shared recommender, limits, metrics."""

    settings: Settings
    recommender: Recommender
    router: Router
    metrics: WorkerMetrics
    limits: EventLimits
    model: ModelRuntime | None = None
    replicated: ReplicatedState | None = None
    pending_deltas: list[list[Any]] = field(default_factory=list)
    last_delta_flush: float = field(default_factory=time.monotonic)

    @property
    def model_name(self) -> str:
        return self.model.name if self.model is not None else "fast-scorer"


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
    runtime = _build_runtime(settings, bootstrap)
    app.stream_rec = runtime  # type: ignore[attr-defined]

    events_topic = app.topic(topics.events, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw",
                             partitions=settings.partitions)
    recs_topic = app.topic(topics.recs, key_type=bytes, value_type=bytes,
                           key_serializer="raw", value_serializer="raw")
    dlq_topic = app.topic(topics.dlq, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")
    deltas_topic = app.topic(topics.item_deltas, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw")
    # str keys (JSON-serialised) and raw orjson bytes values; see FACTS on key types.
    users = app.Table("users", key_type=str, value_type=bytes, partitions=settings.partitions,
                      options=dict(ROCKSDB_OPTIONS))

    async def flush_deltas() -> None:
        if runtime.pending_deltas:
            batch, runtime.pending_deltas = runtime.pending_deltas, []
            await deltas_topic.send(value=codec.dumps(batch))
        runtime.last_delta_flush = time.monotonic()

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
            runtime.metrics.events.labels(event.type).inc()
            if obs.delta is not None:
                runtime.pending_deltas.append(obs.delta.to_list())
        else:
            # A redelivery. RocksDB is written before the changelog send completes, so the
            # crash that caused it may have left this update on the local disk only: write
            # it again so the changelog (what another worker or an empty disk recovers)
            # catches up.
            if stored is not None:
                users[event.user_id] = stored
            runtime.metrics.duplicates.inc()
        if event.type in runtime.settings.trigger_types:
            rec = await _recommendation(runtime, obs.profile, event, message.timestamp)
            await recs_topic.send(key=event.user_id.encode(), value=codec.dumps(rec.to_dict()))
            runtime.metrics.recs.labels(rec.arm, rec.model, str(rec.degraded).lower()).inc()
            runtime.metrics.rec_latency.labels(rec.arm).observe(rec.latency_ms / 1000.0)

    @app.timer(_DELTA_FLUSH_INTERVAL_S)
    async def flush_deltas_timer() -> None:
        await flush_deltas()

    @app.task
    async def follow_shared_state() -> None:
        assert runtime.replicated is not None
        await runtime.replicated.run()

    @app.task
    async def embed_new_items() -> None:
        while runtime.model is not None and not app.should_stop:
            caught_up = runtime.replicated is not None and runtime.replicated.caught_up.is_set()
            await runtime.model.embed_pending(runtime.metrics, caught_up=caught_up)
            await asyncio.sleep(0.05)

    @app.page("/metrics")
    async def metrics_view(self: Any, request: Any) -> Any:
        runtime.metrics.ready.set(1 if _ready(app, runtime) else 0)
        runtime.metrics.catalog_items.set(len(runtime.recommender.catalog))
        return self.bytes(generate_latest(runtime.metrics.registry),
                          content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz_view(self: Any, request: Any) -> Any:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz_view(self: Any, request: Any) -> Any:
        ready = _ready(app, runtime)
        model = runtime.model
        return self.json({"ready": ready, "catalog_items": len(runtime.recommender.catalog),
                          "item_deltas": runtime.recommender.stats.deltas,
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


def dlq_record(*, topic: str, partition: int, offset: int, key: bytes | None,
               value: bytes | None, field_name: str, rule: str, shown: str, reason: str,
               now_ms: int) -> dict[str, Any]:
    """The dead-letter message: why, where from, and the original bytes (base64)."""
    return {
        "error": "InvalidEvent",
        "reason": reason,
        "field": field_name,
        "rule": rule,
        "value": shown,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "key_b64": base64.b64encode(key).decode() if key is not None else None,
        "original_b64": base64.b64encode(value or b"").decode(),
        "received_at_ms": now_ms,
    }


def _dlq_label(field_name: str) -> str:
    """A metric label from a bounded set: hostile field names must not create series."""
    if field_name in _DLQ_LABELS:
        return field_name
    return "context.*" if field_name.startswith("context.") else "<unknown-field>"


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
    runtime.metrics.dlq.labels(_dlq_label(field_name)).inc()
    await dlq_topic.send(key=message.key, value=codec.dumps(record))


async def _recommendation(runtime: WorkerRuntime, profile: UserProfile, event: Event,
                          produced_at_s: float | None) -> Recommendation:
    started = time.time()
    arm = runtime.router.assign(event.user_id)
    items = runtime.recommender.recommend(profile, now_ms=event.ts_ms, trigger=event)
    runtime.metrics.stage_latency.labels("rank").observe(time.time() - started)
    model, degraded = runtime.model_name, False
    if runtime.model is not None and runtime.settings.rerank_top_n > 1 and len(items) > 1:
        items, reranked = await _rerank(runtime, profile, items)
        model, degraded = (f"{model}+rerank", False) if reranked else (model, True)
    now = time.time()
    origin = produced_at_s if produced_at_s else started
    return Recommendation(
        rec_id=rec_id_for(event.user_id, event.event_id),
        user_id=event.user_id,
        items=tuple(items),
        arm=arm,
        model=model,
        trigger_event_id=event.event_id,
        generated_at_ms=int(now * 1000),
        latency_ms=max(0.0, (now - origin) * 1000.0),
        degraded=degraded,
    )


async def _rerank(runtime: WorkerRuntime, profile: UserProfile,
                  items: list[RecItem]) -> tuple[list[RecItem], bool]:
    """Reorder the top candidates by the model's likelihood; on any miss keep the fast order.

    The model only scores the offered titles: :func:`prompts.rerank` returns a permutation
    of the offered ids, so nothing but an offered item can come out.
    """
    assert runtime.model is not None
    catalog = runtime.recommender.catalog
    head = items[: runtime.settings.rerank_top_n]
    history = [catalog.title(item) for item in reversed(profile.recent_item_ids(10))]
    texts = [prompts.candidate_text(catalog.title(item.item_id)) for item in head]
    started = time.time()
    try:
        scores = await runtime.model.pool.score(
            prompts.history_prefix(history), texts,
            deadline_s=runtime.settings.model_deadline_ms / 1000.0)
    except ModelError as exc:  # ModelTimeout, ModelBusy, or a failed call: fall back, tagged
        outcome = type(exc).__name__
        runtime.metrics.model_calls.labels("rerank", outcome).inc()
        return items, False
    runtime.metrics.model_calls.labels("rerank", "ok").inc()
    runtime.metrics.stage_latency.labels("rerank").observe(time.time() - started)
    by_id = {item.item_id: item for item in head}
    order = prompts.rerank([item.item_id for item in head], [float(x) for x in scores])
    return [RecItem(i, score, by_id[i].reason) for i, score in order] + items[len(head):], True


def _build_runtime(settings: Settings, bootstrap: str) -> WorkerRuntime:
    from stream_rec.broker import client_security_kwargs

    catalog = Catalog()
    stats = ItemStats(StatsParams(popularity_half_life_s=settings.popularity_half_life_s,
                                  covisit_window=settings.covisit_window,
                                  max_neighbours=settings.covisit_max_neighbours))
    recommender = Recommender(
        catalog, stats,
        rank_params=RankParams(top_k=settings.top_k, per_source=settings.candidates_per_source),
        profile_params=ProfileParams(recent_items=settings.recent_items,
                                     half_life_s=settings.half_life_s,
                                     dedupe_window=settings.dedupe_window),
    )
    metrics = WorkerMetrics()
    model = ModelRuntime.load(settings) if settings.model_path != "none" else None
    if model is not None:
        recommender.vector_search = model.semantic.search
    runtime = WorkerRuntime(
        settings=settings,
        recommender=recommender,
        router=Router.from_spec(settings.arms, settings.experiment_salt),
        metrics=metrics,
        model=model,
        limits=EventLimits(max_bytes=settings.max_event_bytes,
                           max_context_keys=settings.max_context_keys,
                           max_future_skew_ms=int(settings.max_future_skew_s * 1000)),
    )
    runtime.replicated = ReplicatedState(
        bootstrap=bootstrap, catalog_topic=settings.topics.catalog,
        deltas_topic=settings.topics.item_deltas, catalog=catalog, stats=stats,
        client_kwargs=client_security_kwargs(settings),
        on_delta=metrics.deltas.inc,
        on_item=model.on_item if model is not None else None,
    )
    return runtime


def _ready(app: faust.App, runtime: WorkerRuntime) -> bool:
    recovered = app.tables.recovery.completed.is_set() if app.tables else True
    caught_up = runtime.replicated is not None and runtime.replicated.caught_up.is_set()
    embedded = runtime.model is None or runtime.model.warm
    return bool(recovered and caught_up and embedded and not app.rebalancing)


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

