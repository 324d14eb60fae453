"""Prometheus metrics of a worker (one registry per process)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

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
        self.stage_cpu = Counter("stream_rec_stage_cpu_seconds",
                                 "CPU seconds of the event loop's thread per stage of event "
                                 "handling: state (decode, fold, state reads/writes), ranking "
                                 "(answering triggers), output (building and queueing sends); "
                                 "the rest of the process's CPU is broker I/O and faust",
                                 ["stage"], registry=r)
        self.loop_lag = Histogram("stream_rec_event_loop_lag_seconds",
                                  "How late a wake-up every 0.25 s ran: how long the event "
                                  "loop (and the Kafka consumer's heartbeats on it) was blocked",
                                  buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0,
                                           4.0, 6.0, 10.0), registry=r)
        self.batch_size = Histogram("stream_rec_batch_size", "Events per handled batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
                                    registry=r)
        self.deltas = Counter("stream_rec_item_deltas_folded",
                              "Item-statistics deltas folded by this replica", registry=r)
        # the learned ranker, shared by every replica through the ranker topic
        self.ranker_updates = Gauge("stream_rec_ranker_updates",
                                    "Learning steps in this replica's ranker: every "
                                    "contributor's, this worker's included", registry=r)
        self.ranker_own_updates = Gauge("stream_rec_ranker_own_updates",
                                        "Learning steps this worker contributed (restored "
                                        "ones included)", registry=r)
        self.ranker_contributors = Gauge("stream_rec_ranker_contributors",
                                         "Workers whose contributions this replica's ranker "
                                         "sums", registry=r)
        self.ranker_weight = Gauge("stream_rec_ranker_weight",
                                   "The ranker's effective weight per feature", ["feature"],
                                   registry=r)
        self.ranker_records = Counter("stream_rec_ranker_records",
                                      "Ranker-topic records by what folding them did: "
                                      "applied, restored, stale, echo, conflict, rejected; "
                                      "and published (sent by this worker)", ["outcome"],
                                      registry=r)
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
        # LLM arm, SLM side (stream_rec.llm.arm): what became of each LLM-arm trigger
        self.llm_arm = Counter("stream_rec_llm_arm_requests",
                               "LLM-arm triggers by outcome (sent, reranked, shed, deadline, "
                               "late, result_shed, result_error, invalid, no_budget, ...)",
                               ["outcome"], registry=r)
        self.llm_pending = Gauge("stream_rec_llm_arm_pending",
                                 "LLM-arm recommendations waiting for the LLM worker",
                                 registry=r)
        self.llm_pending_limit = Gauge("stream_rec_llm_arm_pending_limit",
                                       "Bound of the pending table (STREAM_REC_LLM_MAX_PENDING)",
                                       registry=r)
        self.llm_pending_max = Gauge("stream_rec_llm_arm_pending_max_seen",
                                     "Most LLM-arm recommendations ever pending at once",
                                     registry=r)
        # per-arm online A/B metrics, read from the ab-arms table (this worker's partitions;
        # sum over workers for totals: gauges, because partitions move between workers)
        self.ab = {name: Gauge(f"stream_rec_ab_{name}", help_text, ["arm"], registry=r)
                   for name, help_text in (
                       ("served", "Recommendations served (distinct rec ids)"),
                       ("clicks", "Recommendations clicked (rec_click with their rec_id)"),
                       ("conversions", "Purchases of recommended items within the window"),
                       ("converted_recs", "Recommendations with at least one conversion"),
                       ("revenue", "price x quantity of converting purchases"),
                       ("fallbacks", "Degraded recommendations (fast order sent instead)"),
                       ("ctr", "clicks / served on this worker's partitions"),
                       ("conversion_rate", "converted_recs / served on this worker's "
                                           "partitions"),
                       ("fallback_rate", "fallbacks / served on this worker's partitions"))}
        self.ab_latency = Gauge("stream_rec_ab_latency_ms",
                                "Recommendation latency percentiles per arm (from the table's "
                                "histogram)", ["arm", "quantile"], registry=r)
        self.ab_fallback_reasons = Gauge("stream_rec_ab_fallbacks_by_reason",
                                         "Degraded recommendations per arm and reason",
                                         ["arm", "reason"], registry=r)
        self.attribution = Counter("stream_rec_ab_messages",
                                   "Messages folded by attribution, by what happened: served, "
                                   "served_again, click, click_again, click_early (its rec not "
                                   "logged: in flight or evicted), conversion, purchase_again, "
                                   "purchase_early, redelivered", ["source", "outcome"],
                                   registry=r)
        self.table_memory = Gauge("stream_rec_table_memory_bytes",
                                  "Bytes the worker's RocksDB table stores use now, all "
                                  "partitions together: block_cache (shared read cache) and "
                                  "memtables (shared write-buffer budget)", ["kind"], registry=r)

    def watch_table_memory(self, usage: Callable[[], Mapping[str, int]]) -> None:
        """Read the table stores' memory from ``usage()`` (kind → bytes) at each scrape."""
        for kind in usage():
            self.table_memory.labels(kind).set_function(partial(_read, usage, kind))

    def export_ab(self, summaries: Mapping[str, Mapping[str, Any]]) -> None:
        """Set the per-arm gauges from per-arm summaries (``ArmCounters.summary()`` of the
        ab-arms table's totals on this worker's partitions)."""
        for arm, summary in summaries.items():
            for name in ("served", "clicks", "conversions", "converted_recs", "revenue",
                         "fallbacks"):
                self.ab[name].labels(arm).set(summary[name])
            self.ab["ctr"].labels(arm).set(summary["ctr"]["value"])
            self.ab["conversion_rate"].labels(arm).set(summary["conversion_rate"]["value"])
            self.ab["fallback_rate"].labels(arm).set(summary["fallback_rate"])
            self.ab_latency.labels(arm, "0.5").set(summary["latency_ms_p50"])
            self.ab_latency.labels(arm, "0.99").set(summary["latency_ms_p99"])
            for reason, n in summary["fallback_reasons"].items():
                self.ab_fallback_reasons.labels(arm, reason).set(n)


def _read(usage: Callable[[], Mapping[str, int]], kind: str) -> float:
    return float(usage()[kind])
