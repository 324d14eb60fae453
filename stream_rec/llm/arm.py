"""The SLM worker's side of the LLM arm: pending reranks, deadlines, fallbacks. Pure.

For a user routed to an LLM arm the SLM worker computes its own fast candidate list, sends
a :class:`RerankRequest` to the LLM worker, and keeps the fast answer here. Exactly one
recommendation leaves per trigger, decided in one place (this table, on the one worker
that holds the entry):

* the LLM's result arrives before the deadline → the reranked list (``degraded`` false);
* a ``shed``/``error`` result arrives → the fast list now, tagged ``llm_busy``/``llm_error``;
* the deadline passes → :meth:`LlmArm.expire` returns the fast list, tagged ``deadline``;
  a result arriving after that is dropped and counted as ``late``;
* the table is full when a request would be added → the fast list at once, tagged ``shed``.

Time is injected (``now_ms``) so every rule is tested exactly; ``stream_rec.serving.app`` sends
what these methods return.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from stream_rec.core.events import Event, RecItem, Recommendation
from stream_rec.core.recommender import rec_id_for
from stream_rec.errors import InvalidRerank
from stream_rec.llm.messages import RerankCandidate, RerankRequest, RerankResult, apply_order

__all__ = ["MIN_BUDGET_MS", "LlmArm", "Pending"]

# Below this much budget left, asking the LLM worker is pointless: answer with the fast list.
MIN_BUDGET_MS = 20.0
_RESULT_FALLBACKS = {"shed": "llm_busy", "error": "llm_error"}


@dataclass(frozen=True, slots=True)
class Pending:
    """A recommendation waiting for the LLM: its request, and when its trigger was produced."""

    request: RerankRequest
    origin_ms: float  # the trigger's produce time: latency is measured from here
    fast_model: str  # what produced the fast list (named in a fallback)


class LlmArm:
    """Pending LLM-arm recommendations of one SLM worker, bounded by ``max_pending``."""

    def __init__(self, *, worker_id: str, max_pending: int, deadline_ms: float,
                 top_k: int) -> None:
        if max_pending < 1 or deadline_ms <= 0:
            raise ValueError(f"LlmArm needs max_pending >= 1 and deadline_ms > 0, got "
                             f"{max_pending} and {deadline_ms}")
        self.worker_id = worker_id
        self.max_pending = max_pending
        self.deadline_ms = deadline_ms
        self.top_k = top_k
        self.outcomes: Counter[str] = Counter()
        self.max_pending_seen = 0
        self._pending: dict[str, Pending] = {}  # insertion order = deadline order

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, rec_id: object) -> bool:
        return rec_id in self._pending

    def prepare(self, *, arm: str, event: Event, candidates: Sequence[RecItem],
                titles: dict[str, str], history: Sequence[str], origin_ms: float,
                now_ms: int, fast_model: str) -> RerankRequest | Recommendation | None:
        """Register a pending rerank and return the request to send, or the fast answer now.

        Returns None when this trigger is already pending (a redelivered event).
        """
        rec_id = rec_id_for(event.user_id, event.event_id)
        if rec_id in self._pending:
            self.outcomes["duplicate"] += 1
            return None
        offered = tuple(RerankCandidate(c.item_id, titles.get(c.item_id, c.item_id), c.score,
                                        c.reason) for c in candidates)
        budget = origin_ms + self.deadline_ms - now_ms
        request = RerankRequest(
            rec_id=rec_id, user_id=event.user_id, arm=arm, reply_to=self.worker_id,
            candidates=offered, history=tuple(history), top_k=self.top_k,
            trigger_event_id=event.event_id, trigger_ts_ms=event.ts_ms,
            produced_at_ms=now_ms, deadline_ms=max(0.0, budget))
        pending = Pending(request, origin_ms, fast_model)
        if len(offered) < 2:
            self.outcomes["nothing_to_rerank"] += 1
            return self._fast(pending, None, now_ms)
        if budget < MIN_BUDGET_MS:
            self.outcomes["no_budget"] += 1
            return self._fast(pending, "deadline", now_ms)
        if len(self._pending) >= self.max_pending:
            self.outcomes["shed"] += 1
            return self._fast(pending, "shed", now_ms)
        self._pending[rec_id] = pending
        self.max_pending_seen = max(self.max_pending_seen, len(self._pending))
        self.outcomes["sent"] += 1
        return request

    def on_result(self, result: RerankResult, now_ms: int) -> Recommendation | None:
        """The recommendation a result decides, or None (not ours, unknown or late)."""
        if result.reply_to != self.worker_id:
            return None
        pending = self._pending.pop(result.rec_id, None)
        if pending is None:
            self.outcomes["late"] += 1  # already answered at the deadline (or unknown)
            return None
        if result.status != "ok":
            self.outcomes[f"result_{result.status}"] += 1
            return self._fast(pending, _RESULT_FALLBACKS.get(result.status, "llm_error"),
                              now_ms)
        request = pending.request
        try:
            items = apply_order(request.candidates, result.order, request.top_k)
        except InvalidRerank:
            self.outcomes["invalid"] += 1
            return self._fast(pending, "llm_error", now_ms)
        self.outcomes["reranked"] += 1
        return self._rec(pending, items, result.model or "llm", now_ms, None)

    def expire(self, now_ms: int) -> list[Recommendation]:
        """Fast answers, tagged ``deadline``, for every entry whose deadline has passed."""
        out = []
        while self._pending:
            rec_id, pending = next(iter(self._pending.items()))
            if pending.request.deadline_at_ms > now_ms:
                break
            del self._pending[rec_id]
            self.outcomes["deadline"] += 1
            out.append(self._fast(pending, "deadline", now_ms))
        return out

    def drain(self, now_ms: int) -> list[Recommendation]:
        """Fast answers for everything pending (a worker stopping), tagged ``deadline``."""
        out = [self._fast(p, "deadline", now_ms) for p in self._pending.values()]
        self.outcomes["drained"] += len(out)
        self._pending.clear()
        return out

    def _fast(self, pending: Pending, reason: str | None, now_ms: int) -> Recommendation:
        items = [RecItem(c.item_id, c.score, c.reason)
                 for c in pending.request.candidates[: self.top_k]]
        return self._rec(pending, items, pending.fast_model, now_ms, reason)

    def _rec(self, pending: Pending, items: list[RecItem], model: str, now_ms: int,
             reason: str | None) -> Recommendation:
        request = pending.request
        return Recommendation(
            rec_id=request.rec_id, user_id=request.user_id, items=tuple(items),
            arm=request.arm, model=model, trigger_event_id=request.trigger_event_id,
            generated_at_ms=now_ms, latency_ms=max(0.0, now_ms - pending.origin_ms),
            degraded=reason is not None, fallback_reason=reason,
            trigger_ts_ms=request.trigger_ts_ms)
