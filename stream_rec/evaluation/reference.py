"""External numbers printed beside ours: published results, reference values, the founding table.

None of these is an implementation we run: they are constants copied from elsewhere, and
every report labels them so (:data:`LABELS`). Keys are ``(dataset, protocol)``.

* :data:`PUBLISHED`: the papers' own results (their pipelines and training, our protocol).
* :data:`REFERENCE_BASELINES`: values for simple methods (popularity, co-occurrence,
  repeat-frequency) on the same protocols, given with the project's accuracy goals; the
  implementation that produced them is not in this repository. Our ``popular``,
  ``item-knn`` and ``repeat`` arms are the methods we *do* run (:data:`REFERENCE_ARM`).
* :data:`FOUNDING`: the founding document's targets for an SLM and an LLM recommender.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "FOUNDING",
    "HEADLINE",
    "LABELS",
    "PUBLISHED",
    "REFERENCE_ARM",
    "REFERENCE_BASELINES",
    "headline_metric",
]

# How reports name each kind of external number, and where it comes from.
LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "published": {"label": "published (external)",
                  "source": "the paper's own result, copied from it; not run here"},
    "reference": {"label": "reference value (external)",
                  "source": "given with the project's accuracy goals; the implementation "
                            "that produced it is not in this repository and was not run here"},
    "founding": {"label": "founding doc (external target)",
                 "source": "the founding document's targets; not measured"},
})

# The metric each protocol is judged by.
HEADLINE: Mapping[str, str] = MappingProxyType({
    "llamarec": "recall@10",
    "minionerec": "hr@10",
    "time-split": "ndcg@10",
    "sampled-100": "hr@10",
})

PUBLISHED: Mapping[tuple[str, str], Mapping[str, Any]] = MappingProxyType({
    ("movielens", "llamarec"): {
        "note": "LlamaRec paper (Yue et al. 2023), leave-one-out on ML, full ranking",
        "systems": {
            "LlamaRec": {"recall@10": 0.1524, "ndcg@10": 0.0759},
            "LRURec": {"recall@10": 0.1426, "ndcg@10": 0.0705},
            "SASRec": {"recall@10": 0.0993, "ndcg@10": 0.0522},
        },
    },
    ("amazon-minionerec", "minionerec"): {
        "note": ("MiniOneRec paper, Industrial_and_Scientific test split. They train on a "
                 "train split (first 80% of time) that we do not have: we stream only the "
                 "valid+test rows' histories, so our state is built from less data."),
        "systems": {
            "MiniOneRec": {"hr@10": 0.1586, "ndcg@10": 0.1167},
            "SASRec": {"hr@10": 0.1088, "ndcg@10": 0.0806},
        },
    },
})

REFERENCE_BASELINES: Mapping[tuple[str, str], Mapping[str, Mapping[str, float]]] = (
    MappingProxyType({
        ("amazon-minionerec", "minionerec"): {
            "popularity": {"hr@10": 0.070, "ndcg@10": 0.048},
            "co-occurrence": {"hr@10": 0.124, "ndcg@10": 0.081},
        },
        ("movielens", "llamarec"): {
            "popularity": {"recall@10": 0.044, "ndcg@10": 0.021},
            "co-occurrence": {"recall@10": 0.111, "ndcg@10": 0.066},
        },
        ("online-retail", "time-split"): {
            "popularity": {"hr@10": 0.388, "ndcg@10": 0.071},
            "co-occurrence": {"hr@10": 0.501, "ndcg@10": 0.127},
            "repeat-frequency": {"hr@10": 0.718, "ndcg@10": 0.247, "recall@10": 0.157},
        },
    }))

# Which of our arms implements each reference baseline.
REFERENCE_ARM: Mapping[str, str] = MappingProxyType({
    "popularity": "popular",
    "co-occurrence": "item-knn",
    "repeat-frequency": "repeat",
})

FOUNDING: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "SLM (founding doc)": {"latency_ms": 100.0, "rss_mb": 500.0, "accuracy_pct": 85.0,
                           "recs_per_s": 500.0},
    "LLM (founding doc)": {"latency_ms": 1500.0, "rss_mb": 10_240.0, "accuracy_pct": 93.0,
                           "recs_per_s": 100.0},
})


def headline_metric(protocol: str, metrics: tuple[str, ...]) -> str:
    """The protocol's headline metric, or its first metric when it has none on record."""
    for prefix, key in HEADLINE.items():
        if protocol.startswith(prefix) and key in metrics:
            return key
    return metrics[0]
