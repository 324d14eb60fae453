"""One SLM worker's runtime: recommender, router, metrics, model side, replicated state
(catalog, item deltas, item vectors and the learned ranker's shared parameters).

The worker holds the model only when it makes per-event model calls (rerank) or embeds the
catalog itself (``item_vectors=worker``); otherwise it folds the vectors the embedder
process publishes (:class:`FoldedVectors`).

Built once per process by :func:`build_runtime`; the handlers and faust wiring read it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stream_rec import assembly
from stream_rec.ab.store import AbStore
from stream_rec.broker.security import client_security_kwargs
from stream_rec.config import Settings
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import EventLimits
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.learned_ranker import LearnedRanker, StreamLearner
from stream_rec.core.recommender import Recommender
from stream_rec.core.router import Router
from stream_rec.llm.arm import LlmArm
from stream_rec.serving.metrics import WorkerMetrics
from stream_rec.serving.model_runtime import FoldedVectors, ModelRuntime
from stream_rec.serving.ranker_sharing import RankerSharing, contributor_id
from stream_rec.serving.replicated import ReplicatedState

__all__ = ["FAST_MODEL", "WorkerRuntime", "build_runtime", "worker_id"]

#: the model name of recommendations made without the language model
FAST_MODEL = "fast-scorer"


def worker_id() -> str:
    """A new id for this worker process (results of its rerank requests name it)."""
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
    vectors: FoldedVectors | None = None  # the embedder's vectors, when no model is held
    replicated: ReplicatedState | None = None
    ab: AbStore | None = None
    pending_deltas: list[list[Any]] = field(default_factory=list)
    learner: StreamLearner | None = None  # learns the ranker from this worker's events
    # the ranker's parameters shared with every replica (the ranker topic)
    ranker_sharing: RankerSharing | None = None
    last_delta_flush: float = field(default_factory=time.monotonic)
    #: the key of this process's item-delta records: it folds its own deltas as it makes
    #: them and skips these records when it reads the topic back (a restart gets a new key,
    #: so it folds what its previous run published)
    deltas_key: bytes = field(default_factory=lambda: uuid.uuid4().hex.encode())

    @property
    def model_name(self) -> str:
        if self.model is not None:
            return self.model.name
        if self.vectors is not None and self.vectors.name is not None:
            return self.vectors.name
        return FAST_MODEL

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


def build_runtime(settings: Settings, bootstrap: str) -> WorkerRuntime:
    """The recommender, router, metrics, model and replicated state of one SLM worker."""
    catalog = Catalog()
    stats = ItemStats(assembly.stats_params(settings))
    learner_params = assembly.learner_params(settings)
    recommender = Recommender(
        catalog, stats,
        rank_params=assembly.rank_params(settings),
        profile_params=assembly.profile_params(settings),
        ranker=LearnedRanker(learner_params) if learner_params is not None else None,
    )
    metrics = WorkerMetrics()
    metrics.llm_pending_limit.set(settings.llm_max_pending)
    model = (ModelRuntime.load(settings, scoring=settings.rerank_top_n > 1)
             if settings.worker_loads_model else None)
    vectors = None
    if model is not None:
        recommender.vector_search = model.semantic.search
    elif settings.model_path != "none":
        # only the fixed blend searches the index; the learned ranker reads the text space
        vectors = FoldedVectors(metrics, text_neighbours=settings.text_neighbours,
                                search_index=recommender.ranker is None)
        recommender.vector_search = vectors.search
    runtime = WorkerRuntime(
        settings=settings,
        recommender=recommender,
        router=Router.from_spec(settings.arms, settings.experiment_salt),
        metrics=metrics,
        model=model,
        vectors=vectors,
        limits=EventLimits(max_bytes=settings.max_event_bytes,
                           max_context_keys=settings.max_context_keys,
                           max_future_skew_ms=int(settings.max_future_skew_s * 1000)),
        llm_arm=LlmArm(worker_id=worker_id(), max_pending=settings.llm_max_pending,
                       deadline_ms=settings.llm_deadline_ms, top_k=settings.top_k),
    )
    folds: dict[str, Callable[[bytes], None]] = {}
    if vectors is not None:
        folds[settings.topics.item_vectors] = vectors.fold
    if recommender.ranker is not None:
        runtime.learner = recommender.learner()
        runtime.ranker_sharing = RankerSharing(recommender.ranker, contributor_id(settings),
                                               metrics)
        folds[settings.topics.ranker] = runtime.ranker_sharing.fold
    runtime.replicated = ReplicatedState(
        bootstrap=bootstrap, catalog_topic=settings.topics.catalog,
        deltas_topic=settings.topics.item_deltas, catalog=catalog, stats=stats,
        client_kwargs=client_security_kwargs(settings),
        on_delta=metrics.deltas.inc,
        own_deltas_key=runtime.deltas_key,
        on_item=model.on_item if model is not None else None,
        folds=folds,
    )
    return runtime
