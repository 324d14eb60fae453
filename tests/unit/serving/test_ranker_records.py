"""A worker's side of the shared ranker: records on the wire, skipped junk, ids, metrics."""

from __future__ import annotations

import socket

import numpy as np

from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.features import FEATURES
from stream_rec.core.learned_ranker import LearnedRanker
from stream_rec.serving.metrics import WorkerMetrics
from stream_rec.serving.ranker_sharing import RankerSharing, contributor_id
from stream_rec.serving.runtime import build_runtime


def sharing(contributor: str) -> RankerSharing:
    return RankerSharing(LearnedRanker(), contributor, WorkerMetrics())


def learn(ranker: LearnedRanker, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(10):
        ranker.learn_one(rng.normal(size=(6, len(FEATURES))).astype(np.float32), 0)


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_published_record_folded_by_another_worker_gives_it_the_same_weights() -> None:
    a, b = sharing("host-a:6066"), sharing("host-b:6066")
    learn(a.shared.ranker, seed=1)
    record = a.next_record()
    assert record is not None
    key, value = record
    assert key == b"host-a:6066"
    b.fold(value)
    np.testing.assert_allclose(b.shared.ranker.w, a.shared.ranker.w, rtol=0, atol=1e-12)
    assert a.next_record() is None  # nothing learned since
    assert sample(a.metrics, "stream_rec_ranker_records_total", outcome="published") == 1
    assert sample(b.metrics, "stream_rec_ranker_records_total", outcome="applied") == 1


def test_undecodable_or_foreign_schema_records_are_skipped_and_counted() -> None:
    b = sharing("b")
    before = b.shared.ranker.state()
    for junk in (b"{not json", codec.dumps([1, 2]), codec.dumps({"schema": 99}),
                 codec.dumps({"schema": 1, "contributor": "x"})):
        b.fold(junk)
    assert b.shared.ranker.state() == before
    assert b.bad_records == 4
    assert sample(b.metrics, "stream_rec_ranker_records_total", outcome="rejected") == 4


def test_metrics_show_updates_contributors_and_weights() -> None:
    a, b = sharing("a"), sharing("b")
    learn(a.shared.ranker, seed=1)
    record = a.next_record()
    assert record is not None
    b.fold(record[1])
    learn(b.shared.ranker, seed=2)
    b.export()
    assert sample(b.metrics, "stream_rec_ranker_updates") == 20
    assert sample(b.metrics, "stream_rec_ranker_own_updates") == 10
    assert sample(b.metrics, "stream_rec_ranker_contributors") == 2
    assert sample(b.metrics, "stream_rec_ranker_weight", feature=FEATURES[0]) == float(
        b.shared.ranker.w[0])


def test_the_contributor_id_is_the_setting_or_host_and_web_port() -> None:
    assert contributor_id(Settings(ranker_contributor="worker-0")) == "worker-0"
    assert contributor_id(Settings(web_port=7001)) == f"{socket.gethostname()}:7001"


def test_a_learned_ranker_worker_folds_the_ranker_topic_and_a_blend_worker_does_not() -> None:
    settings = Settings(model_path="none", broker="kafka://127.0.0.1:1")
    runtime = build_runtime(settings, "127.0.0.1:1")  # no connection is made before run()
    assert runtime.ranker_sharing is not None and runtime.replicated is not None
    assert runtime.ranker_sharing.shared.ranker is runtime.recommender.ranker
    assert settings.topics.ranker in runtime.replicated.folds
    blend = build_runtime(Settings(model_path="none", broker="kafka://127.0.0.1:1",
                                   ranker="blend"), "127.0.0.1:1")
    assert blend.ranker_sharing is None and blend.replicated is not None
    assert settings.topics.ranker not in blend.replicated.folds
