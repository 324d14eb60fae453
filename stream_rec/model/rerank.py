"""The in-process rerank's prompt and result, shared by the worker and the evaluation.

    prefix, texts = rerank_inputs(catalog, profile, head)   # what the model scores
    items = reordered(items, len(head), scores)              # the head, best score first

The model only scores the offered titles: :func:`prompts.rerank` returns a permutation of
the offered ids, so nothing but an offered item can come out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from stream_rec.core.catalog import Catalog
from stream_rec.core.events import RecItem
from stream_rec.core.profile import UserProfile
from stream_rec.model import prompts

__all__ = ["reordered", "rerank_inputs"]


def rerank_inputs(catalog: Catalog, profile: UserProfile,
                  head: Sequence[RecItem]) -> tuple[str, list[str]]:
    """The scoring prefix from the user's recent titles (oldest first) and each offered
    item's continuation text."""
    history = [catalog.title(item)
               for item in reversed(profile.recent_item_ids(prompts.MAX_HISTORY_ITEMS))]
    texts = [prompts.candidate_text(catalog.title(item.item_id)) for item in head]
    return prompts.history_prefix(history), texts


def reordered(items: Sequence[RecItem], head_size: int,
              scores: Iterable[float]) -> list[RecItem]:
    """``items`` with its first ``head_size`` sorted by ``scores`` (one per head item,
    NaN last, ties in offered order); each keeps its reason, its score becomes the model's."""
    head = items[:head_size]
    by_id = {item.item_id: item for item in head}
    order = prompts.rerank([item.item_id for item in head], [float(x) for x in scores])
    return [RecItem(i, score, by_id[i].reason) for i, score in order] + list(items[len(head):])
