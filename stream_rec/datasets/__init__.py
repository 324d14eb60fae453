"""Real datasets as event streams, and the protocols that evaluate a recommender on them.

    load_dataset(name, dir) → Dataset(catalog, events in replay order)
    make_split(dataset, protocol) → Split(train_events, cases, item_ids, metrics)
    load_demo() → the bundled Online Retail demo stream

Datasets: ``movielens``, ``online-retail``, ``amazon-minionerec``. Protocols:
``llamarec``, ``minionerec``, ``time-split``, ``sampled-100``.
"""

from __future__ import annotations

from stream_rec.datasets.dataset import Dataset
from stream_rec.datasets.demo import load_demo
from stream_rec.datasets.protocols import DEFAULT_PROTOCOLS, PROTOCOLS, Split, TestCase
from stream_rec.datasets.registry import LOADERS, load_dataset, make_split

__all__ = [
    "DEFAULT_PROTOCOLS",
    "LOADERS",
    "PROTOCOLS",
    "Dataset",
    "Split",
    "TestCase",
    "load_dataset",
    "load_demo",
    "make_split",
]
