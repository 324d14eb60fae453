"""The ``slm`` arm's model side, built exactly as the worker builds it.

The evaluator loads the small language model (:class:`stream_rec.model.llama.SlmModel`) once,
embeds the catalog with :func:`stream_rec.model.semantic.embed_catalog`, and gives
``Recommender(vector_search=SemanticIndex.search)`` — the worker's own ``similar`` source
(``stream_rec.serving.model_runtime``): a user's taste vector is computed from their recent items
when asked, so nothing extra is stored per user and no replay hook is needed per event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stream_rec.config import Settings
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import RecItem
from stream_rec.core.profile import UserProfile
from stream_rec.core.text_space import TextSpace
from stream_rec.datasets import Split
from stream_rec.errors import ConfigError, ModelError
from stream_rec.evaluation.arms import MODEL_ARMS
from stream_rec.evaluation.replay import ModelHooks, rss_mb
from stream_rec.model.files import resolve_model_path
from stream_rec.model.rerank import reordered, rerank_inputs
from stream_rec.model.semantic import SemanticIndex, embed_catalog

__all__ = ["build_model_hooks", "model_hooks_factory"]

HooksFactory = Callable[[Split, Sequence[Any]], ModelHooks]


def model_hooks_factory(names: Sequence[str] | None, *, model_path: str = "",
                        n_threads: int = 1, text_neighbours: int | None = None
                        ) -> HooksFactory | None:
    """A factory for model hooks when a model arm is wanted and the model can be found.

    ``names=None`` (every arm that can run) quietly returns None without a model; naming a
    model arm without one raises ConfigError with the reason. ``text_neighbours``: each
    item's precomputed text neighbours (default: the worker's ``Settings().text_neighbours``).
    """
    wanted = names is None or any(n in MODEL_ARMS or n.startswith("slm") for n in names)
    if not wanted:
        return None
    try:

        path = resolve_model_path(model_path)
    except (ImportError, ModelError) as exc:
        if names is None:
            return None
        raise ConfigError(f"arms: the model arms need the language model: {exc}") from exc

    rerank = names is not None and any(n.endswith("-rerank") for n in names)

    def factory(split: Split, catalog_items: Sequence[Any]) -> ModelHooks:
        return build_model_hooks(path, catalog_items, n_threads=n_threads, rerank=rerank,
                                 text_neighbours=text_neighbours)

    return factory


def build_model_hooks(path: Path, catalog_items: Sequence[Any], *, n_threads: int = 1,
                      progress: bool = False, rerank: bool = False,
                      text_neighbours: int | None = None) -> ModelHooks:
    """Load the model, embed the catalog into a SemanticIndex, return its search; with
    ``rerank``, keep the model loaded for the in-process rerank, as a reranking worker does.
    """
    # lazy: llama_cpp loads a native library: only model arms need it
    from stream_rec.model.llama import SlmModel

    before = rss_mb()
    model = SlmModel(path, n_threads=n_threads)
    try:
        vectors = embed_catalog(model, list(catalog_items), progress=progress)
        index = SemanticIndex(model.dim)
        index.add(vectors)
        neighbours = Settings().text_neighbours if text_neighbours is None else text_neighbours
        space = TextSpace.build(vectors, neighbours=neighbours)
    except BaseException:
        model.close()
        raise
    # what a worker keeps resident: the model (it embeds new catalog items) + vectors
    resident_mb = rss_mb() - before
    hooks = ModelHooks(vector_search=index.search, enrich=None,
                       rss_mb=max(0.0, resident_mb), text_space=space)
    if not rerank:
        model.close()
        return hooks
    catalog = Catalog(catalog_items)

    def rerank_list(profile: UserProfile, items: list[RecItem], top_n: int) -> list[RecItem]:
        head = items[:top_n]
        prefix, texts = rerank_inputs(catalog, profile, head)
        return reordered(items, len(head), model.score_candidates(prefix, texts))

    hooks.rerank = rerank_list
    return hooks
