"""The worker's web side, served by faust's web server on ``STREAM_REC_WEB_PORT``.

    /metrics /healthz /readyz                 operations (Prometheus, probes)
    /users/{user_id}/recommendations         the user's latest recommendation (pull API)
    /users/{user_id}/state                   the user's state (needs STREAM_REC_WEB_TOKEN)
    /state/{user_id}                         the same, from this worker's partitions only
    /console                                  the live console (one static page, no CDN)
    /api/console                              its data: every worker's numbers, summed
    /api/worker                               this worker's numbers (what /api/console sums)

User pages answer on any worker: the owner of the user's partition answers, the others
forward once to it (:mod:`stream_rec.serving.pull`). The latest recommendation of each
user is kept in the changelogged ``latest-recs`` table, written where it is sent
(:mod:`stream_rec.serving.latest_recs`), so it survives rebalances and restarts and is
exactly what the recs topic carried (same ``rec_id``: clicks on it are attributed).
See docs/operations.md ("Console and pull API").
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import aiohttp
import faust
import psutil
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_rec.core import codec
from stream_rec.core.router import parse_arms
from stream_rec.serving.console import Counters, LiveStats, cluster_view
from stream_rec.serving.dlq_tail import DlqTail
from stream_rec.serving.latest_recs import LatestRecs
from stream_rec.serving.pull import HOP_HEADER, authorized, forward, owner_url, user_partition
from stream_rec.serving.runtime import WorkerRuntime

__all__ = ["add_pages"]

log = logging.getLogger(__name__)

_JSON = "application/json"
_PEER_TIMEOUT_S = 2.0


def add_pages(app: faust.App, runtime: WorkerRuntime, users: Mapping[str, bytes],
              latest: LatestRecs, ready: Callable[[], bool]) -> None:
    """Register the worker's pages on ``app``; ``ready()`` says whether it serves."""
    _add_ops_pages(app, runtime, ready)
    _add_user_pages(app, runtime, users, latest.table)
    _add_console_pages(app, runtime, users, ready, latest.stats)


def _add_ops_pages(app: faust.App, runtime: WorkerRuntime, ready: Callable[[], bool]) -> None:
    metrics = runtime.metrics

    @app.page("/metrics")
    async def metrics_view(self: Any, request: Any) -> Any:
        metrics.ready.set(1 if ready() else 0)
        metrics.catalog_items.set(len(runtime.recommender.catalog))
        if runtime.ranker_sharing is not None:
            runtime.ranker_sharing.export()
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
                          "ranker": _ranker_summary(runtime),
                          "model": {"name": runtime.model_name,
                                    "sha256": model.sha256 if model else None,
                                    "items_embedded": (len(model.semantic) if model else
                                                       len(runtime.vectors or ()))}},
                         status=200 if is_ready else 503)


def _add_user_pages(app: faust.App, runtime: WorkerRuntime, users: Any, latest: Any) -> None:
    settings = runtime.settings
    own_url = settings.advertised_url
    changelog = users.changelog_topic.get_topic_name()

    async def routed(view: Any, request: Any, user_id: str,
                     local: Callable[[], tuple[int, bytes]]) -> Any:
        partition = user_partition(user_id, settings.partitions)
        owner = owner_url(app.router.tables_metadata(), changelog, partition)
        headers = {"X-Stream-Rec-Partition": str(partition)}
        if owner is None or app.rebalancing:
            return _error(view, 503, f"partition {partition} has no owner yet (rebalancing); "
                          "retry", headers)
        headers["X-Stream-Rec-Served-By"] = owner
        if owner == own_url:
            status, body = local()
            return view.bytes(body, content_type=_JSON, status=status, headers=headers)
        if request.headers.get(HOP_HEADER):
            return _error(view, 503, f"partition {partition} moved while forwarding; retry",
                          headers)
        answer = await forward(app.http_client, owner + request.path_qs,
                               headers=request.headers, via=own_url)
        return view.bytes(answer.body, content_type=answer.content_type or _JSON,
                          status=answer.status, headers=headers)

    @app.page("/users/{user_id}/recommendations")
    async def user_recs_view(self: Any, request: Any, user_id: str) -> Any:
        if latest is None:
            return _error(self, 404, "the pull API is off (STREAM_REC_LATEST_RECS=off)")

        def local() -> tuple[int, bytes]:
            held = latest.get(user_id)
            if held is None:
                return 404, _dumps_error(f"no recommendation for user {user_id!r} yet")
            return 200, bytes(held)

        return await routed(self, request, user_id, local)

    def local_state(user_id: str) -> tuple[int, bytes]:
        stored = users.get(user_id)
        if stored is None:
            return 404, _dumps_error(f"no state for user {user_id!r} on this worker")
        return 200, bytes(stored)

    def refused(view: Any, request: Any) -> Any:
        if authorized(settings.web_token, request.headers):
            return None
        if not settings.web_token:
            return _error(view, 404, "user state is off: set STREAM_REC_WEB_TOKEN to serve it")
        return _error(view, 403, "user state needs 'Authorization: Bearer <token>' "
                      "(STREAM_REC_WEB_TOKEN)")

    @app.page("/users/{user_id}/state")
    async def user_state_view(self: Any, request: Any, user_id: str) -> Any:
        """The user's state from whichever worker owns it."""
        return refused(self, request) or await routed(self, request, user_id,
                                                      lambda: local_state(user_id))

    @app.page("/state/{user_id}")
    async def state_view(self: Any, request: Any, user_id: str) -> Any:
        """The user's state in this worker's table only (404 elsewhere): for tests, chaos."""
        status, body = local_state(user_id)
        return refused(self, request) or self.bytes(body, content_type=_JSON, status=status)


def _add_console_pages(app: faust.App, runtime: WorkerRuntime, users: Any,
                       ready: Callable[[], bool], stats: LiveStats) -> None:
    settings, metrics = runtime.settings, runtime.metrics
    process = psutil.Process(os.getpid())
    started = time.time()
    replicated = runtime.replicated
    assert replicated is not None  # build_runtime makes it
    dlq = DlqTail(bootstrap=replicated.bootstrap, topic=settings.topics.dlq,
                  client_kwargs=replicated.client_kwargs)
    page = resources.files("stream_rec.serving").joinpath("static/console.html").read_bytes()
    arm_order = [arm.name for arm in parse_arms(settings.arms)]

    def counters() -> Counters:
        return Counters(events=_total(metrics.events), dlq=_total(metrics.dlq),
                        cpu_s=time.process_time(), recs_by_arm=_by_label(metrics.recs, "arm"))

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def sample_counters() -> None:
        stats.sample(counters())

    async def on_shutdown(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await dlq.stop()

    app.on_before_shutdown.connect(on_shutdown)

    async def snapshot() -> dict[str, Any]:
        worker = {"id": runtime.llm_arm.worker_id, "url": settings.advertised_url,
                  "pid": os.getpid(), "rss_bytes": process.memory_info().rss,
                  "uptime_s": round(time.time() - started, 1), "ready": ready(),
                  "model": runtime.model_name,
                  "partitions": sorted(tp.partition for tp in _assigned(app)
                                       if tp.topic == settings.topics.events)}
        lag = await _lag(app, settings.topics.events)
        return stats.snapshot(counters(), worker=worker, lag=lag,
                              ab=runtime.ab.totals() if runtime.ab is not None else None,
                              title=runtime.recommender.catalog.title)

    @app.page("/api/worker")
    async def worker_view(self: Any, request: Any) -> Any:
        return self.bytes(codec.dumps(await snapshot()), content_type=_JSON)

    @app.page("/api/console")
    async def console_data_view(self: Any, request: Any) -> Any:
        dlq.start()
        peers = {str(url).rstrip("/") for url in app.router.tables_metadata()}
        peers |= {url.rstrip("/") for url in settings.console_peers}
        peers.discard(settings.advertised_url)
        answers = await asyncio.gather(*(_peer(app, url) for url in sorted(peers)))
        snapshots = [await snapshot(), *(a for a in answers if isinstance(a, dict))]
        unreachable = [{"url": url, "error": a} for url, a in zip(sorted(peers), answers,
                                                                   strict=True)
                       if isinstance(a, str)]
        view = cluster_view(snapshots, price_per_vcpu_hour=settings.price_per_vcpu_hour,
                            watts_per_core=settings.watts_per_core,
                            dlq=dlq.latest(payload=authorized(settings.web_token,
                                                              request.headers)),
                            unreachable=unreachable, arm_order=arm_order)
        view["latest_recs"] = settings.latest_recs
        view["sensitive"] = bool(settings.web_token)
        return self.bytes(codec.dumps(view), content_type=_JSON)

    @app.page("/console")
    async def console_view(self: Any, request: Any) -> Any:
        return self.bytes(page, content_type="text/html")


async def _peer(app: faust.App, url: str) -> dict[str, Any] | str:
    """A peer's ``/api/worker`` snapshot, or why it could not be had."""
    try:
        async with app.http_client.get(f"{url}/api/worker", timeout=aiohttp.ClientTimeout(
                total=_PEER_TIMEOUT_S)) as response:
            if response.status != 200:
                return f"HTTP {response.status}"
            data: dict[str, Any] = codec.loads(await response.read())
            return data
    except Exception as exc:  # any failure of one peer must not cost the whole page
        return f"{type(exc).__name__}: {exc}"[:200]


def _assigned(app: faust.App) -> set[Any]:
    try:
        return set(app.consumer.assignment())
    except Exception:  # no consumer yet (starting) or between assignments
        return set()


async def _lag(app: faust.App, topic: str) -> int | None:
    """Events not yet read by this worker: high watermark - next offset, summed over its
    partitions of ``topic`` (None before it has any)."""
    consumer: Any = app.consumer
    total, known = 0, False
    for tp in _assigned(app):
        if tp.topic != topic:
            continue
        try:
            high = consumer.highwater(tp)
            read = consumer._read_offset.get(tp)  # faust's last offset read into the stream
            position = read + 1 if read is not None else await consumer.position(tp)
        except Exception:  # partition being revoked: count it next time
            continue
        if high is not None and position is not None:
            total += max(0, int(high) - int(position))
            known = True
    return total if known else None


def _ranker_summary(runtime: WorkerRuntime) -> dict[str, Any] | None:
    """The learned ranker's sharing state (None with the fixed blend)."""
    sharing = runtime.ranker_sharing
    if sharing is None:
        return None
    shared = sharing.shared
    return {"contributor": shared.contributor, "seq": shared.seq,
            "updates": shared.ranker.updates, "own_updates": shared.own_updates(),
            "contributors": shared.contributors, "published": shared.published}


def _total(metric: Any) -> float:
    return float(sum(sample.value for family in metric.collect() for sample in family.samples
                     if sample.name.endswith("_total")))


def _by_label(metric: Any, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = sample.labels.get(label, "")
                out[key] = out.get(key, 0.0) + sample.value
    return out


def _dumps_error(message: str) -> bytes:
    return codec.dumps({"error": message})


def _error(view: Any, status: int, message: str,
           headers: Mapping[str, str] | None = None) -> Any:
    return view.bytes(_dumps_error(message), content_type=_JSON, status=status,
                      headers=dict(headers or {}))
