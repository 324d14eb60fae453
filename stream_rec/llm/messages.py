"""Wire types of the LLM arm: rerank requests (SLM → LLM worker) and results (back).

    stream-rec.rerank-requests  key = user_id   RerankRequest  (docs/schemas/rerank-request…)
    stream-rec.rerank-results   key = user_id   RerankResult   (docs/schemas/rerank-result…)

A request carries everything the LLM worker needs (candidate titles, the user's history
titles), so the LLM worker keeps no catalog and no user state. A result only *orders*
offered ids: :func:`apply_order` rejects any id that was not offered, or a repeated one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stream_rec.core.events import RecItem, decode_object
from stream_rec.errors import InvalidEvent, InvalidRerank

__all__ = [
    "RESULT_STATUSES",
    "RerankCandidate",
    "RerankRequest",
    "RerankResult",
    "apply_order",
    "parse_rerank_request",
    "parse_rerank_result",
]

# ok: reranked in time · shed: the LLM worker's queue was full · error: the backend failed
RESULT_STATUSES = ("ok", "shed", "error")
_MAX_CANDIDATES = 100
_MAX_HISTORY = 50
_MAX_TITLE = 512


@dataclass(frozen=True, slots=True)
class RerankCandidate:
    """One candidate from the fast scorer: id, title, fast score and its explanation."""

    item_id: str
    title: str
    score: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "title": self.title, "score": round(self.score, 6),
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class RerankRequest:
    """Work for the LLM worker: rerank ``candidates`` for a user whose history is ``history``.

    ``deadline_ms`` is the budget left, counted from ``produced_at_ms``; after
    :attr:`deadline_at_ms` the requesting SLM worker has already sent the fast order.
    ``reply_to`` names that worker: only it holds the pending recommendation.
    """

    rec_id: str
    user_id: str
    arm: str
    reply_to: str
    candidates: tuple[RerankCandidate, ...]
    history: tuple[str, ...]  # titles, oldest first
    top_k: int
    trigger_event_id: str
    trigger_ts_ms: int
    produced_at_ms: int
    deadline_ms: float

    @property
    def deadline_at_ms(self) -> float:
        """Wall-clock time (epoch ms) after which an answer is useless."""
        return self.produced_at_ms + self.deadline_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "rec_id": self.rec_id,
            "user_id": self.user_id,
            "arm": self.arm,
            "reply_to": self.reply_to,
            "candidates": [c.to_dict() for c in self.candidates],
            "history": list(self.history),
            "top_k": self.top_k,
            "trigger_event_id": self.trigger_event_id,
            "trigger_ts_ms": self.trigger_ts_ms,
            "produced_at_ms": self.produced_at_ms,
            "deadline_ms": round(self.deadline_ms, 3),
        }


@dataclass(frozen=True, slots=True)
class RerankResult:
    """The LLM worker's answer: the offered ids in its order (``status`` ``ok``), or why not."""

    rec_id: str
    user_id: str
    reply_to: str
    status: str
    order: tuple[str, ...]
    model: str
    model_ms: float
    produced_at_ms: int
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rec_id": self.rec_id,
            "user_id": self.user_id,
            "reply_to": self.reply_to,
            "status": self.status,
            "order": list(self.order),
            "model": self.model,
            "model_ms": round(self.model_ms, 3),
            "produced_at_ms": self.produced_at_ms,
            "detail": self.detail[:500],
        }


def parse_rerank_request(raw: bytes) -> RerankRequest:
    """Decode and check a request; raises :class:`InvalidEvent` naming the bad field."""
    data = decode_object(raw)
    candidates_raw = _list(data, "candidates", _MAX_CANDIDATES)
    candidates = []
    for entry in candidates_raw:
        if not isinstance(entry, dict):
            raise InvalidEvent("candidates", "must hold objects", entry)
        candidates.append(RerankCandidate(_str(entry, "item_id"),
                                          _str(entry, "title", allow_empty=True),
                                          _number(entry, "score"),
                                          _str(entry, "reason", allow_empty=True)))
    if len({c.item_id for c in candidates}) != len(candidates):
        raise InvalidEvent("candidates", "must not repeat an item_id",
                           [c.item_id for c in candidates])
    history = _list(data, "history", _MAX_HISTORY)
    if not all(isinstance(t, str) and len(t) <= _MAX_TITLE for t in history):
        raise InvalidEvent("history", f"must be titles (strings of at most {_MAX_TITLE} "
                           "characters)", history)
    top_k = _int(data, "top_k")
    if not 1 <= top_k <= 100:
        raise InvalidEvent("top_k", "must be between 1 and 100", top_k)
    deadline = _number(data, "deadline_ms")
    if deadline < 0:
        raise InvalidEvent("deadline_ms", "must be >= 0", deadline)
    return RerankRequest(
        rec_id=_str(data, "rec_id"), user_id=_str(data, "user_id"), arm=_str(data, "arm"),
        reply_to=_str(data, "reply_to"), candidates=tuple(candidates),
        history=tuple(history), top_k=top_k,
        trigger_event_id=_str(data, "trigger_event_id", allow_empty=True),
        trigger_ts_ms=_int(data, "trigger_ts_ms"), produced_at_ms=_int(data, "produced_at_ms"),
        deadline_ms=deadline)


def parse_rerank_result(raw: bytes) -> RerankResult:
    """Decode and check a result; raises :class:`InvalidEvent` naming the bad field."""
    data = decode_object(raw)
    status = _str(data, "status")
    if status not in RESULT_STATUSES:
        raise InvalidEvent("status", f"must be one of {list(RESULT_STATUSES)}", status)
    order = _list(data, "order", _MAX_CANDIDATES)
    if not all(isinstance(i, str) for i in order):
        raise InvalidEvent("order", "must be item ids (strings)", order)
    model_ms = _number(data, "model_ms")
    return RerankResult(
        rec_id=_str(data, "rec_id"), user_id=_str(data, "user_id"),
        reply_to=_str(data, "reply_to"), status=status, order=tuple(order),
        model=_str(data, "model", allow_empty=True), model_ms=model_ms,
        produced_at_ms=_int(data, "produced_at_ms"),
        detail=str(data.get("detail", ""))[:500])


def apply_order(candidates: Sequence[RerankCandidate], order: Sequence[str],
                top_k: int) -> list[RecItem]:
    """The top ``top_k`` of ``candidates`` in ``order``; unnamed ones follow in fast order.

    Strict: an id that was not offered, or an id named twice, raises :class:`InvalidRerank`
    (the caller sends the fast order, tagged). Items keep their fast score and reason.

    >>> cands = [RerankCandidate("a", "A", 0.9, "r"), RerankCandidate("b", "B", 0.5, "r")]
    >>> [item.item_id for item in apply_order(cands, ["b"], 2)]
    ['b', 'a']
    """
    by_id = {c.item_id: c for c in candidates}
    seen: set[str] = set()
    for item_id in order:
        if item_id not in by_id:
            raise InvalidRerank(f"reranker named item {item_id[:64]!r}, which was not offered")
        if item_id in seen:
            raise InvalidRerank(f"reranker named item {item_id[:64]!r} twice")
        seen.add(item_id)
    ranked = [by_id[i] for i in order] + [c for c in candidates if c.item_id not in seen]
    return [RecItem(c.item_id, c.score, c.reason) for c in ranked[:top_k]]


def _str(data: Mapping[str, Any], name: str, *, allow_empty: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str) or (not value and not allow_empty) or len(value) > _MAX_TITLE:
        raise InvalidEvent(name, f"must be a {'' if allow_empty else 'non-empty '}string of at "
                           f"most {_MAX_TITLE} characters", value)
    return value


def _int(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(name, "must be an integer", value)
    return value


def _number(data: Mapping[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidEvent(name, "must be a finite number", value)
    return float(value)


def _list(data: Mapping[str, Any], name: str, limit: int) -> list[Any]:
    value = data.get(name)
    if not isinstance(value, list):
        raise InvalidEvent(name, "must be a list", value)
    if len(value) > limit:
        raise InvalidEvent(name, f"must have at most {limit} entries", len(value))
    return value
