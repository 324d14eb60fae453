"""Names to loaders and protocols: ``make_split(load_dataset("movielens", d), "llamarec")``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from stream_rec.datasets.amazon_minionerec import load_amazon_minionerec
from stream_rec.datasets.dataset import Dataset
from stream_rec.datasets.movielens import load_movielens
from stream_rec.datasets.online_retail import load_online_retail
from stream_rec.datasets.protocols import PROTOCOLS, Split
from stream_rec.errors import ConfigError

__all__ = ["LOADERS", "load_dataset", "make_split"]

LOADERS: Mapping[str, Callable[..., Dataset]] = MappingProxyType({
    "movielens": load_movielens,
    "online-retail": load_online_retail,
    "amazon-minionerec": load_amazon_minionerec,
})


def load_dataset(name: str, data_dir: Path, **options: Any) -> Dataset:
    """Load dataset ``name`` from ``data_dir``; ``options`` go to its loader
    (``category=`` for amazon-minionerec)."""
    loader = LOADERS.get(name)
    if loader is None:
        raise ConfigError(f"dataset must be one of {sorted(LOADERS)}, got {name!r} "
                          "(the bundled demo is load_demo())")
    return loader(Path(data_dir), **options)


def make_split(dataset: Dataset, protocol: str, **options: Any) -> Split:
    """Apply evaluation protocol ``protocol`` to ``dataset``; ``options`` go to it."""
    build = PROTOCOLS.get(protocol)
    if build is None:
        raise ConfigError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    return build(dataset, **options)
