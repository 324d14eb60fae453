"""What a worker answers to one trigger event, per arm (the agent in ``app.py`` sends it).

* a **holdout** arm (``STREAM_REC_HOLDOUT_ARMS``): the fast scorer without any model
  (no ``similar`` source, no rerank), model ``fast-scorer``;
* an **LLM** arm (``STREAM_REC_LLM_ARMS``): the fast scorer's top ``llm_rerank_top_n``
  become a rerank request for the LLM worker (``stream_rec.llm_arm``);
* any other arm (``slm``): the fast scorer with the model's ``similar`` source, and the
  optional in-process rerank (``STREAM_REC_RERANK_TOP_N``) under ``model_deadline_ms``.

Every recommendation records its arm.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from stream_rec import prompts
from stream_rec.ab.store import AbStore
from stream_rec.catalog import Catalog
from stream_rec.config import Settings
from stream_rec.errors import ModelError, ModelTimeout
from stream_rec.events import Event, EventLimits, RecItem, Recommendation
from stream_rec.item_stats import ItemStats, StatsParams
from stream_rec.llm_arm import LlmArm
from stream_rec.metrics import WorkerMetrics
from stream_rec.model_pool import ModelBusy
from stream_rec.model_runtime import ModelRuntime
from stream_rec.profile import ProfileParams, UserProfile
from stream_rec.ranking import RankParams
from stream_rec.recommender import Recommender, rec_id_for
from stream_rec.replicated import ReplicatedState
from stream_rec.rerank_messages import RerankRequest
from stream_rec.router import Router

__all__ = ["FAST_MODEL", "WorkerRuntime", "build_runtime", "llm_request", "recommendation",
           "worker_id"]

FAST_MODEL = "fast-scorer"


def worker_id() -> str:
    """A new id for this worker process (results of its rerank requests name it)."""
    import os
    import socket

    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class WorkerRuntime:
    """What the agents need besides faust: recommender, router, limits, metrics, arms."""

    settings: Settings
    recommender: Recommender
    router: Router
    metrics: WorkerMetrics
    limits: EventLimits
    llm_arm: LlmArm
    model: ModelRuntime | None = None
    replicated: ReplicatedState | None = None
    ab: AbStore | None = None
    pending_deltas: list[list[Any]] = field(default_factory=list)
    last_delta_flush: float = field(default_factory=time.monotonic)

    @property
    def model_name(self) -> str:
        return self.model.name if self.model is not None else FAST_MODEL

    @property
    def has_llm_arm(self) -> bool:
        """Whether any configured arm is served by the LLM worker."""
        return any(self.arm_kind(arm.name) == "llm" for arm in self.router.arms)

    def arm_kind(self, arm: str) -> str:
        """``llm``, ``holdout`` or ``slm``."""
        if arm in self.settings.llm_arms:
            return "llm"
        if arm in self.settings.holdout_arms:
            return "holdout"
        return "slm"


async def recommendation(runtime: WorkerRuntime, profile: UserProfile, event: Event,
                         produced_at_s: float | None, arm: str) -> Recommendation:
    """The recommendation of a ``slm`` or ``holdout`` arm for one trigger event."""
    started = time.time()
    holdout = runtime.arm_kind(arm) == "holdout"
    items = runtime.recommender.recommend(profile, now_ms=event.ts_ms, trigger=event,
                                          semantic=not holdout)
    runtime.metrics.stage_latency.labels("rank").observe(time.time() - started)
    model = FAST_MODEL if holdout else runtime.model_name
    reason: str | None = None
    if (not holdout and runtime.model is not None and runtime.settings.rerank_top_n > 1
            and len(items) > 1):
        items, reason = await _rerank(runtime, profile, items)
        if reason is None:
            model = f"{model}+rerank"
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
        degraded=reason is not None,
        fallback_reason=reason,
        trigger_ts_ms=event.ts_ms,
    )


def llm_request(runtime: WorkerRuntime, profile: UserProfile, event: Event, arm: str,
                produced_at_s: float | None) -> RerankRequest | Recommendation | None:
    """For an LLM arm: the rerank request to send (the fast answer is kept pending), or the
    fast answer right away (shed, no budget left, nothing to rerank), or None (pending)."""
    settings = runtime.settings
    now = time.time()
    catalog = runtime.recommender.catalog
    top_n = max(settings.top_k, settings.llm_rerank_top_n)
    candidates = runtime.recommender.recommend(profile, now_ms=event.ts_ms, trigger=event,
                                               top_k=top_n)
    history = [catalog.title(item)
               for item in reversed(profile.recent_item_ids(settings.llm_history_items))]
    titles = {c.item_id: catalog.title(c.item_id) for c in candidates}
    origin_ms = (produced_at_s if produced_at_s else now) * 1000.0
    return runtime.llm_arm.prepare(arm=arm, event=event, candidates=candidates, titles=titles,
                                   history=history, origin_ms=origin_ms,
                                   now_ms=int(now * 1000), fast_model=runtime.model_name)


async def _rerank(runtime: WorkerRuntime, profile: UserProfile,
                  items: list[RecItem]) -> tuple[list[RecItem], str | None]:
    """Reorder the top candidates by the in-process model's likelihood; on any miss keep the
    fast order and say why (a ``fallback_reason``).

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
        runtime.metrics.model_calls.labels("rerank", type(exc).__name__).inc()
        if isinstance(exc, ModelTimeout):
            return items, "model_timeout"
        return items, "model_busy" if isinstance(exc, ModelBusy) else "model_error"
    runtime.metrics.model_calls.labels("rerank", "ok").inc()
    runtime.metrics.stage_latency.labels("rerank").observe(time.time() - started)
    by_id = {item.item_id: item for item in head}
    order = prompts.rerank([item.item_id for item in head], [float(x) for x in scores])
    return [RecItem(i, score, by_id[i].reason) for i, score in order] + items[len(head):], None


def build_runtime(settings: Settings, bootstrap: str) -> WorkerRuntime:
    """The recommender, router, metrics, model and replicated state of one SLM worker."""
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
    metrics.llm_pending_limit.set(settings.llm_max_pending)
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
        llm_arm=LlmArm(worker_id=worker_id(), max_pending=settings.llm_max_pending,
                       deadline_ms=settings.llm_deadline_ms, top_k=settings.top_k),
    )
    runtime.replicated = ReplicatedState(
        bootstrap=bootstrap, catalog_topic=settings.topics.catalog,
        deltas_topic=settings.topics.item_deltas, catalog=catalog, stats=stats,
        client_kwargs=client_security_kwargs(settings),
        on_delta=metrics.deltas.inc,
        on_item=model.on_item if model is not None else None,
    )
    return runtime
