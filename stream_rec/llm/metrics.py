"""Prometheus metrics of an LLM worker (``--role llm``; one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LlmWorkerMetrics"]

_LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)


class LlmWorkerMetrics:
    """What an LLM worker (``--role llm``) exports on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("stream_rec_llm_requests",
                                "Rerank requests by outcome: ok, expired (past deadline on "
                                "arrival), shed (queue full), late (done after the deadline), "
                                "error, invalid (undecodable)", ["outcome"], registry=r)
        self.in_flight = Gauge("stream_rec_llm_in_flight", "Requests accepted and not finished",
                               registry=r)
        self.in_flight_limit = Gauge("stream_rec_llm_in_flight_limit",
                                     "Bound of the in-flight queue (STREAM_REC_LLM_MAX_IN_FLIGHT)",
                                     registry=r)
        self.in_flight_max = Gauge("stream_rec_llm_in_flight_max_seen",
                                   "Most requests ever in flight at once", registry=r)
        self.seconds = Histogram("stream_rec_llm_rerank_seconds", "Backend time per rerank",
                                 buckets=_LLM_BUCKETS, registry=r)
        self.ready = Gauge("stream_rec_ready", "1 when the backend is up and partitions are "
                           "assigned", registry=r)
