"""Rerank backends of the LLM worker: one small Protocol, a local GGUF and an HTTP server.

    RerankBackend.rerank(request, timeout_s=…) → the offered ids, best first

* :class:`LocalBackend` — a GGUF through llama-cpp-python (``stream_rec.model.llama``): each
  candidate's log-likelihood after the user's history, all candidates sharing one decoded
  prefix, sorted by :func:`stream_rec.model.prompts.rerank`.
* :class:`~stream_rec.llm.http_backend.OpenAIBackend` — any OpenAI-compatible server
  (llama-cpp-python's ``llama_cpp.server``, llama.cpp, vLLM, Ollama).

Both return only offered ids; the SLM worker checks that again (``apply_order``).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from stream_rec.config import Settings
from stream_rec.llm.http_backend import OpenAIBackend
from stream_rec.llm.messages import RerankRequest
from stream_rec.llm.prompt import rerank_prompt
from stream_rec.model import prompts
from stream_rec.model.files import resolve_model_path
from stream_rec.model.loading import load_pool
from stream_rec.model.pool import ModelPool

__all__ = ["LocalBackend", "RerankBackend", "backend_from_settings"]


class RerankBackend(Protocol):
    """What the LLM worker needs of a model: a name, a rerank call, a lifecycle."""

    name: str

    async def start(self) -> None:
        """Load or reach the model; raise :class:`~stream_rec.errors.ModelError` if not."""

    async def rerank(self, request: RerankRequest, *, timeout_s: float) -> list[str]:
        """Offered ids, best first (all of them, or a best-first head of them)."""

    async def close(self) -> None:
        """Free the model or the connections."""


class LocalBackend:
    """A GGUF model in this process (a :class:`ModelPool` of llama.cpp instances)."""

    def __init__(self, pool: ModelPool, name: str) -> None:
        self.pool = pool
        self.name = name

    @classmethod
    def load(cls, settings: Settings) -> LocalBackend:
        """The pool for ``llm_model_path`` (default model when empty), ``llm_pool_size``."""
        path = resolve_model_path(settings.llm_model_path)
        pool = load_pool(path, size=settings.llm_pool_size,
                         max_pending=settings.llm_max_in_flight, embeddings=False)
        return cls(pool, f"llm:{path.stem.lower()}")

    async def start(self) -> None:
        return None

    async def rerank(self, request: RerankRequest, *, timeout_s: float) -> list[str]:
        prefix, texts = rerank_prompt(request)
        scores = await self.pool.score(prefix, texts, deadline_s=timeout_s)
        ids = [c.item_id for c in request.candidates]
        return [item_id for item_id, _ in prompts.rerank(ids, [float(s) for s in scores])]

    async def close(self) -> None:
        await asyncio.to_thread(self.pool.close)


def backend_from_settings(settings: Settings) -> RerankBackend:
    """The backend ``llm_backend`` names, configured from the ``llm_*`` settings."""
    if settings.llm_backend == "openai":
        return OpenAIBackend(settings.llm_url, model=settings.llm_model,
                             api_key=settings.llm_api_key, method=settings.llm_method,
                             picks=settings.llm_picks)
    return LocalBackend.load(settings)
