"""The worker's web pages: ``/metrics`` (Prometheus), ``/healthz``, ``/readyz``,
``/state/{user_id}``, served by faust's web server on ``STREAM_REC_WEB_PORT``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_rec.core import codec
from stream_rec.serving.runtime import WorkerRuntime

__all__ = ["add_pages"]


def add_pages(app: faust.App, runtime: WorkerRuntime, users: Mapping[str, bytes],
              ready: Callable[[], bool]) -> None:
    """Register the worker's pages on ``app``; ``ready()`` says whether it serves."""
    metrics = runtime.metrics

    @app.page("/metrics")
    async def metrics_view(self: Any, request: Any) -> Any:
        metrics.ready.set(1 if ready() else 0)
        metrics.catalog_items.set(len(runtime.recommender.catalog))
        metrics.llm_pending.set(len(runtime.llm_arm))
        metrics.llm_pending_max.set(runtime.llm_arm.max_pending_seen)
        if runtime.ab is not None:
            metrics.export_ab({arm: counters.summary()
                               for arm, counters in runtime.ab.totals().items()})
        return self.bytes(generate_latest(metrics.registry),
                          content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz_view(self: Any, request: Any) -> Any:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz_view(self: Any, request: Any) -> Any:
        is_ready = ready()
        model = runtime.model
        return self.json({"ready": is_ready, "role": "slm",
                          "catalog_items": len(runtime.recommender.catalog),
                          "item_deltas": runtime.recommender.stats.deltas,
                          "worker_id": runtime.llm_arm.worker_id,
                          "llm_pending": len(runtime.llm_arm),
                          "model": {"name": runtime.model_name,
                                    "sha256": model.sha256 if model else None,
                                    "items_embedded": (len(model.semantic) if model else
                                                       len(runtime.vectors or ()))}},
                         status=200 if is_ready else 503)

    @app.page("/state/{user_id}")
    async def state_view(self: Any, request: Any, user_id: str) -> Any:
        stored = users.get(user_id)
        if stored is None:
            return self.json({"error": f"no state for user {user_id!r} on this worker"},
                             status=404)
        return self.json(codec.loads(stored))
