"""What a worker answers to one trigger event, per arm (``serving.handlers`` calls it).

* a **holdout** arm (``STREAM_REC_HOLDOUT_ARMS``): the fast scorer without any model
  (no ``similar`` source, no rerank), model ``fast-scorer``;
* an **LLM** arm (``STREAM_REC_LLM_ARMS``): the fast scorer's top ``llm_rerank_top_n``
  become a rerank request for the LLM worker (``stream_rec.llm.arm``);
* any other arm (``slm``): the fast scorer with the model's ``similar`` source, and the
  optional in-process rerank (``STREAM_REC_RERANK_TOP_N``) under ``model_deadline_ms``.

Every recommendation records its arm.
"""

from __future__ import annotations

import time

from stream_rec.core.events import Event, RecItem, Recommendation
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import rec_id_for
from stream_rec.errors import ModelError, ModelTimeout
from stream_rec.llm.messages import RerankRequest
from stream_rec.model.pool import ModelBusy
from stream_rec.model.rerank import reordered, rerank_inputs
from stream_rec.serving.runtime import FAST_MODEL, WorkerRuntime

__all__ = ["llm_request", "recommendation"]


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
    head = items[: runtime.settings.rerank_top_n]
    prefix, texts = rerank_inputs(runtime.recommender.catalog, profile, head)
    started = time.time()
    try:
        scores = await runtime.model.pool.score(
            prefix, texts, deadline_s=runtime.settings.model_deadline_ms / 1000.0)
    except ModelError as exc:  # ModelTimeout, ModelBusy, or a failed call: fall back, tagged
        runtime.metrics.model_calls.labels("rerank", type(exc).__name__).inc()
        if isinstance(exc, ModelTimeout):
            return items, "model_timeout"
        return items, "model_busy" if isinstance(exc, ModelBusy) else "model_error"
    runtime.metrics.model_calls.labels("rerank", "ok").inc()
    runtime.metrics.stage_latency.labels("rerank").observe(time.time() - started)
    return reordered(items, len(head), scores), None
