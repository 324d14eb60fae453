"""The learned ranker's parameters shared by every replica through a compacted topic.

    each worker ──(every ranker_publish_s, and at a clean shutdown)──▶ <prefix>.ranker
       key = contributor id, value = its cumulative contribution (seq, steps, grad squares)
    <prefix>.ranker ──▶ every replica (ReplicatedState folds) ──▶ priors + Σ contributions

The maths is :class:`stream_rec.core.ranker_contributions.SharedRanker`; this module adds
the contributor id, the record codec, logging of skipped records, and metrics. A worker
folds the whole topic before it is ready, so a restarted or new worker resumes from
everything learned; it publishes only once that start-up fold is done.
"""

from __future__ import annotations

import logging
import socket

from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.learned_ranker import LearnedRanker
from stream_rec.core.ranker_contributions import Contribution, SharedRanker
from stream_rec.serving.metrics import WorkerMetrics

__all__ = ["RankerSharing", "contributor_id"]

log = logging.getLogger(__name__)


def contributor_id(settings: Settings) -> str:
    """``ranker_contributor`` when set, else ``HOST:WEB_PORT``: stable across restarts of
    the same worker (a StatefulSet pod, a process on one host) and unique among live ones
    (two workers on one host cannot share a web port)."""
    if settings.ranker_contributor:
        return settings.ranker_contributor
    return f"{socket.gethostname()}:{settings.web_port}"


class RankerSharing:
    """Folds the ranker topic into this worker's ranker and makes its own records."""

    def __init__(self, ranker: LearnedRanker, contributor: str, metrics: WorkerMetrics) -> None:
        self.shared = SharedRanker(ranker, contributor)
        self.metrics = metrics
        self.bad_records = 0

    @property
    def contributor(self) -> str:
        return self.shared.contributor

    def fold(self, value: bytes) -> None:
        """One record of the ranker topic (a replicated-state callback); never raises on
        bad input: the record is skipped with its reason logged."""
        try:
            record = Contribution.from_dict(codec.loads(value))
            outcome = self.shared.fold(record)
        except (codec.DecodeError, ValueError, TypeError, RecursionError) as exc:
            self.bad_records += 1
            self.metrics.ranker_records.labels("rejected").inc()
            log.warning("skipping ranker-topic record: %s", exc)
            return
        self.metrics.ranker_records.labels(outcome).inc()
        if outcome == "conflict":
            log.error("another live worker publishes ranker contributions as %r (seq %d): "
                      "give each worker its own STREAM_REC_RANKER_CONTRIBUTOR or data dir; "
                      "its records are ignored here", record.contributor, record.seq)
        elif outcome == "restored":
            log.info("restored this worker's ranker contribution %r (seq %d, %d updates)",
                     record.contributor, record.seq, record.updates)

    def next_record(self) -> tuple[bytes, bytes] | None:
        """(key, value) of this worker's next contribution, or None when it has not learned
        since its last one."""
        record = self.shared.publish()
        if record is None:
            return None
        self.metrics.ranker_records.labels("published").inc()
        return record.contributor.encode(), codec.dumps(record.to_dict())

    def export(self) -> None:
        """Set the ranker gauges (called when ``/metrics`` is scraped)."""
        ranker, metrics = self.shared.ranker, self.metrics
        metrics.ranker_updates.set(ranker.updates)
        metrics.ranker_own_updates.set(self.shared.own_updates())
        metrics.ranker_contributors.set(self.shared.contributors)
        for name, weight in zip(self.shared.features, ranker.w.tolist(), strict=True):
            metrics.ranker_weight.labels(name).set(weight)
