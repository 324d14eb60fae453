"""Prometheus metrics of a worker (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WorkerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    """Counters, gauges and histograms the worker updates; exported on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("stream_rec_events", "Valid events applied to user state",
                              ["type"], registry=r)
        self.duplicates = Counter("stream_rec_events_duplicate",
                                  "Redelivered or repeated events skipped by user state",
                                  registry=r)
        self.dlq = Counter("stream_rec_dlq", "Events sent to the dead-letter topic",
                           ["field"], registry=r)
        self.recs = Counter("stream_rec_recs", "Recommendation messages written",
                            ["arm", "model", "degraded"], registry=r)
        self.rec_latency = Histogram("stream_rec_rec_latency_seconds",
                                     "From the event's produce time to its recommendation",
                                     ["arm"], buckets=_LATENCY_BUCKETS, registry=r)
        self.stage_latency = Histogram("stream_rec_stage_seconds", "Time per processing stage",
                                       ["stage"], buckets=_LATENCY_BUCKETS, registry=r)
        self.deltas = Counter("stream_rec_item_deltas_folded",
                              "Item-statistics deltas folded by this replica", registry=r)
        self.catalog_items = Gauge("stream_rec_catalog_items", "Items in the catalog",
                                   registry=r)
        self.ready = Gauge("stream_rec_ready", "1 when tables are recovered and shared state "
                           "has caught up", registry=r)
        self.model_calls = Counter("stream_rec_model_calls", "Model calls", ["kind", "outcome"],
                                   registry=r)
        self.items_embedded = Counter("stream_rec_items_embedded",
                                      "Catalog items embedded and indexed", registry=r)
        self.model_queue = Gauge("stream_rec_model_queue_depth", "Pending model requests",
                                 registry=r)
        self.model_batch = Histogram("stream_rec_model_batch_size", "Items per model call",
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
