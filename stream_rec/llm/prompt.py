"""The LLM arm's prompt: a rerank request's history and candidates as scoring texts."""

from __future__ import annotations

from stream_rec.llm.messages import RerankRequest
from stream_rec.model import prompts

__all__ = ["rerank_prompt"]


def rerank_prompt(request: RerankRequest) -> tuple[str, list[str]]:
    """The scoring prefix from the user's history titles, and each candidate's text."""
    prefix = prompts.history_prefix(list(request.history),
                                    max_items=max(1, len(request.history)))
    return prefix, [prompts.candidate_text(c.title) for c in request.candidates]
