"""Run model instances on worker threads, off the asyncio loop, bounded in queue and time.

Pure Python (no llama_cpp): it drives anything with the :class:`LanguageModel` methods, so
its load shedding and deadlines are tested with a fake as well as with the real model.
Build one around real models with :func:`stream_rec.model.loading.load_pool`.

- At most ``max_pending`` requests are queued or running; one more raises
  :class:`ModelBusy` at once (callers fall back to the non-LLM ranking).
- A caller gets :class:`~stream_rec.errors.ModelTimeout` at its deadline. Work not yet
  started is dropped; work already running finishes in the background (llama.cpp cannot
  be interrupted cheaply from Python) and still counts as pending until it does.
- With a :class:`~stream_rec.model.breaker.CircuitBreaker`, a run of misses opens the circuit:
  calls raise :class:`CircuitOpen` at once, without waiting, until a trial call succeeds.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from stream_rec.errors import ModelError, ModelTimeout
from stream_rec.model.breaker import CircuitBreaker

__all__ = ["CircuitOpen", "LanguageModel", "ModelBusy", "ModelPool", "PoolStats"]

T = TypeVar("T")


class ModelBusy(ModelError):
    """Too many model requests are pending: shed load now, fall back, try later."""


class CircuitOpen(ModelBusy):
    """The model missed its last calls: refused at once until the cool-down ends."""


class LanguageModel(Protocol):
    """What the pool needs of a model instance (:class:`stream_rec.model.llama.SlmModel` has it)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def score_candidates(self, prefix: str, candidates: Sequence[str]) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Counters since the pool started (a snapshot; the app exports them as metrics)."""

    size: int
    max_pending: int
    calls: int
    completed: int
    failed: int
    timeouts: int
    busy_rejections: int
    circuit_rejections: int
    expired_in_queue: int
    pending: int
    max_pending_seen: int
    items: int
    max_batch: int
    model_s: float

    @property
    def mean_batch(self) -> float:
        """Mean texts (or candidates) per model call."""
        return self.items / self.calls if self.calls else 0.0


class ModelPool:
    """N model instances, one worker thread each; async and sync entry points."""

    def __init__(self, models: Sequence[LanguageModel], *, max_pending: int | None = None,
                 breaker: CircuitBreaker | None = None) -> None:
        if not models:
            raise ModelError("a ModelPool needs at least one model instance")
        self._models = list(models)
        self._idle: queue.SimpleQueue[LanguageModel] = queue.SimpleQueue()
        for model in self._models:
            self._idle.put(model)
        self.size = len(self._models)
        self.max_pending = max_pending if max_pending is not None else 4 * self.size
        if self.max_pending < 1:
            raise ModelError(f"max_pending must be >= 1, got {self.max_pending}")
        self.breaker = breaker
        self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="slm")
        self._lock = threading.Lock()
        self._c = dict.fromkeys(
            (
                "calls",
                "completed",
                "failed",
                "timeouts",
                "busy_rejections",
                "circuit_rejections",
                "expired_in_queue",
                "pending",
                "max_pending_seen",
                "items",
                "max_batch",
            ),
            0,
        )
        self._model_s = 0.0
        self._closed = False

    # ----- async API (serving) ----------------------------------------------------------------
    async def embed(self, texts: Sequence[str], *, deadline_s: float | None = None) -> np.ndarray:
        """Embeddings of ``texts`` from one instance; see :meth:`score` for the limits."""
        return await self._await(_Embed(list(texts)), len(texts), deadline_s)

    async def score(
        self, prefix: str, candidates: Sequence[str], *, deadline_s: float
    ) -> np.ndarray:
        """Log-likelihood scores of ``candidates`` after ``prefix``.

        Raises :class:`ModelBusy` at once when ``max_pending`` requests are already pending,
        and :class:`ModelTimeout` after ``deadline_s`` seconds.
        """
        return await self._await(_Score(prefix, list(candidates)), len(candidates), deadline_s)

    async def _await(
        self, work: Callable[[LanguageModel], T], n_items: int, deadline_s: float | None
    ) -> T:
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            self._count("circuit_rejections")
            raise CircuitOpen(
                f"the model missed its last {breaker.failures} calls: skipping it for "
                f"{breaker.cooldown_s:g} s (STREAM_REC_MODEL_BREAKER_COOLDOWN_S)"
            )
        try:
            result = await self._await_unguarded(work, n_items, deadline_s)
        except Exception:
            if breaker is not None:
                breaker.record_failure()
            raise
        if breaker is not None:
            breaker.record_success()
        return result

    async def _await_unguarded(
        self, work: Callable[[LanguageModel], T], n_items: int, deadline_s: float | None
    ) -> T:
        deadline_at = None if deadline_s is None else time.monotonic() + deadline_s
        future = asyncio.wrap_future(self._submit(work, n_items, deadline_at))
        if deadline_s is None:
            return await future
        try:
            return await asyncio.wait_for(future, timeout=deadline_s)
        except TimeoutError:
            self._count("timeouts")
            raise ModelTimeout(
                f"model call missed its {deadline_s * 1000:.0f} ms deadline "
                f"({self.stats().pending} pending on {self.size} instance(s))"
            ) from None

    # ----- sync API (offline evaluation, catalogue embedding) -----------------------------------
    @property
    def models(self) -> tuple[LanguageModel, ...]:
        """The instances (for reading their properties; calls go through the pool)."""
        return tuple(self._models)

    def embed_sync(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Embeddings of many texts, batches spread over all instances; input order kept."""
        texts = list(texts)
        chunks = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        futures = [self._submit(_Embed(c), len(c), None, bound=False) for c in chunks]
        parts = [f.result() for f in futures]
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def score_sync(self, prefix: str, candidates: Sequence[str]) -> np.ndarray:
        """:meth:`score` without a deadline, from a plain thread."""
        return self.score_many([(prefix, candidates)])[0]

    def score_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[np.ndarray]:
        """Score many (prefix, candidates) requests in parallel over all instances."""
        futures = [self._submit(_Score(p, list(c)), len(c), None, bound=False) for p, c in requests]
        return [f.result() for f in futures]

    # ----- bookkeeping ------------------------------------------------------------------------
    def stats(self) -> PoolStats:
        """A snapshot of the counters."""
        with self._lock:
            return PoolStats(
                size=self.size, max_pending=self.max_pending, model_s=self._model_s, **self._c
            )

    def close(self) -> None:
        """Wait for running work, then free every instance."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        for model in self._models:
            model.close()

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(
        self,
        work: Callable[[LanguageModel], T],
        n_items: int,
        deadline_at: float | None,
        *,
        bound: bool = True,
    ) -> Future[T]:
        with self._lock:
            if self._closed:
                raise ModelError("this ModelPool is closed")
            if bound and self._c["pending"] >= self.max_pending:
                self._c["busy_rejections"] += 1
                raise ModelBusy(
                    f"{self._c['pending']} model requests pending (max_pending="
                    f"{self.max_pending}); falling back is expected under load, or raise "
                    "STREAM_REC_MODEL_POOL_SIZE"
                )
            c = self._c
            c["pending"] += 1
            c["calls"] += 1
            c["items"] += n_items
            c["max_batch"] = max(c["max_batch"], n_items)
            c["max_pending_seen"] = max(c["max_pending_seen"], c["pending"])
        future = self._executor.submit(self._run, work, deadline_at)
        future.add_done_callback(self._on_done)
        return future

    def _run(self, work: Callable[[LanguageModel], T], deadline_at: float | None) -> T:
        if deadline_at is not None and time.monotonic() >= deadline_at:
            self._count("expired_in_queue")
            raise ModelTimeout("model request expired in the queue before it started")
        model = self._idle.get()
        started = time.perf_counter()
        try:
            return work(model)
        finally:
            self._idle.put(model)
            with self._lock:
                self._model_s += time.perf_counter() - started

    def _on_done(self, future: Future[Any]) -> None:
        with self._lock:
            self._c["pending"] -= 1
            if future.cancelled():
                return
            if future.exception() is None:
                self._c["completed"] += 1
            else:
                self._c["failed"] += 1

    def _count(self, name: str) -> None:
        with self._lock:
            self._c[name] += 1


@dataclass(frozen=True, slots=True)
class _Embed:
    texts: list[str]

    def __call__(self, model: LanguageModel) -> np.ndarray:
        return model.embed(self.texts)


@dataclass(frozen=True, slots=True)
class _Score:
    prefix: str
    candidates: list[str]

    def __call__(self, model: LanguageModel) -> np.ndarray:
        return model.score_candidates(self.prefix, self.candidates)
