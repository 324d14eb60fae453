"""A ranker that learns from the stream: linear listwise (softmax) model, online AdaGrad.

Pure: numpy only, no Kafka, faust or model. The user's next item event labels the list
that user would have been served just before it (:class:`StreamLearner`): every item the
user touches at that next instant is a positive among that list's candidates, and one
SGD step raises its softmax probability. Before any label the weights are the priors
(:data:`stream_rec.core.features.PRIOR_WEIGHTS`: the fixed blend), so it ranks well from the
first event; the learning rate and the pull toward the priors are the only
hyper-parameters, one choice for every shop.

The parameters are a plain, versioned record (:class:`RankerState`: ``to_dict`` /
``from_dict``), so a worker can publish, replicate and restore them.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_rec.core.events import Event
from stream_rec.core.features import FEATURES, PRIOR_WEIGHTS, CandidateSet
from stream_rec.core.profile import UserProfile

__all__ = ["LearnedRanker", "LearnerParams", "RankerState", "StreamLearner", "float_rows",
           "rank_candidates"]

SCHEMA = 1


@dataclass(frozen=True, slots=True)
class LearnerParams:
    """Learning rate (AdaGrad), the L2 pull toward the priors, and a step cap."""

    learning_rate: float = 0.1
    prior_l2: float = 1e-4
    max_step: float = 0.5
    # learn from one in this many (user, instant) lists, chosen by a hash: the per-event
    # cost of building a training list is paid only for those
    sample_every: int = 1
    # pairwise feature interactions (a factorization machine): each feature gets a
    # ``factors``-dimensional vector v_f and the score adds sum over pairs f < g of
    # <v_f, v_g> x_f x_g; 0 = linear only. Own AdaGrad rate and L2 pull toward 0.
    factors: int = 0
    factor_learning_rate: float = 0.05
    factor_l2: float = 1e-4


def float_rows(rows: Iterable[Iterable[Any]]) -> tuple[tuple[float, ...], ...]:
    """Per-feature vectors (JSON lists, or an array's ``tolist()``) as tuples of floats."""
    return tuple(tuple(float(x) for x in row) for row in rows)


@dataclass(frozen=True, slots=True)
class RankerState:
    """The learned ranker's parameters: feature names, weights, AdaGrad sums, updates."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    grad_squares: tuple[float, ...]
    updates: int = 0
    schema: int = SCHEMA
    # per feature, its interaction vector and their AdaGrad sums (empty: linear only, or a
    # state saved before interactions existed)
    factors: tuple[tuple[float, ...], ...] = ()
    factor_grad_squares: tuple[tuple[float, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {"schema": self.schema, "updates": self.updates,
               "features": list(self.features), "weights": list(self.weights),
               "grad_squares": list(self.grad_squares)}
        if self.factors:
            out["factors"] = [list(v) for v in self.factors]
            out["factor_grad_squares"] = [list(v) for v in self.factor_grad_squares]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RankerState:
        """Inverse of :meth:`to_dict`; raises ValueError for another schema."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"ranker state: schema must be {SCHEMA}, got {data.get('schema')!r}")
        return cls(features=tuple(data["features"]),
                   weights=tuple(float(w) for w in data["weights"]),
                   grad_squares=tuple(float(g) for g in data["grad_squares"]),
                   updates=int(data["updates"]),
                   factors=float_rows(data.get("factors", ())),
                   factor_grad_squares=float_rows(data.get("factor_grad_squares", ())))

    @classmethod
    def prior(cls, features: Sequence[str] = FEATURES,
              weights: Mapping[str, float] = PRIOR_WEIGHTS) -> RankerState:
        return cls(tuple(features), tuple(float(weights.get(f, 0.0)) for f in features),
                   tuple(0.0 for _ in features))


def _initial_factors(features: Sequence[str], k: int) -> np.ndarray:
    """Each feature's starting interaction vector: small, and drawn from a generator seeded
    by the feature's name, so every replica and every restart starts from the same ones
    whatever the feature order."""
    out = np.zeros((len(features), k), np.float64)
    for row, name in enumerate(features):
        out[row] = np.random.default_rng(zlib.crc32(name.encode())).normal(0.0, 0.01, k)
    return out


class LearnedRanker:
    """``score(x)`` = x @ w + the pairwise interactions; ``learn_one(x, positive, mask)`` =
    one softmax SGD step."""

    def __init__(self, params: LearnerParams = LearnerParams(),
                 state: RankerState | None = None, *,
                 disabled: frozenset[str] = frozenset()) -> None:
        state = state or RankerState.prior()
        k = params.factors
        factors = _initial_factors(FEATURES, k)
        factor_g2 = np.zeros_like(factors)
        saved = {name: row for row, name in enumerate(state.features)}
        if state.factors and len(state.factors[0]) == k:
            # keep the saved vectors of the features we still have (by name)
            for row, name in enumerate(FEATURES):
                if name in saved:
                    factors[row] = state.factors[saved[name]]
                    factor_g2[row] = state.factor_grad_squares[saved[name]]
        if tuple(state.features) != FEATURES:
            # a state from another feature set: keep the weights of the names we still have
            old = dict(zip(state.features, state.weights, strict=True))
            state = RankerState.prior(FEATURES, {**PRIOR_WEIGHTS, **old})
        self.params = params
        self.w = np.asarray(state.weights, np.float64)
        self.g2 = np.asarray(state.grad_squares, np.float64)
        self.prior_w = np.asarray([PRIOR_WEIGHTS.get(f, 0.0) for f in FEATURES], np.float64)
        self.updates = state.updates
        self.active = np.asarray([f not in disabled for f in FEATURES], np.float64)
        # (features, k): a disabled feature has no interactions either
        self.v = factors * self.active[:, None]
        self.v_g2 = factor_g2

    def state(self) -> RankerState:
        factors = self.params.factors > 0
        return RankerState(FEATURES, tuple(self.w.tolist()), tuple(self.g2.tolist()),
                           self.updates,
                           factors=float_rows(self.v.tolist()) if factors else (),
                           factor_grad_squares=float_rows(self.v_g2.tolist()) if factors else ())

    def score(self, x: np.ndarray) -> np.ndarray:
        return self._score(x)[0]

    def _score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The scores, and x @ v (None without interactions), which a learning step reuses."""
        scores = np.asarray(x @ self.w, np.float64)
        if not self.params.factors:
            return scores, None
        # sum over pairs f < g of <v_f, v_g> x_f x_g = 0.5 x (|x @ v|^2 - sum_f x_f^2 |v_f|^2)
        xv = x @ self.v
        lengths = np.einsum("ij,ij->i", self.v, self.v)
        scores += 0.5 * (np.einsum("ij,ij->i", xv, xv) - np.square(x, dtype=np.float64) @ lengths)
        return scores, xv

    def learn_one(self, x: np.ndarray, positive: int,
                  ignore: Sequence[int] = ()) -> float:
        """Raise candidate ``positive``'s softmax probability among the rows of ``x``
        (rows in ``ignore``, e.g. other positives of the same instant, left out).
        Returns the loss before the step."""
        scores, xv = self._score(x)
        if ignore:
            scores[list(ignore)] = -np.inf
        top = scores.max()
        p = np.exp(scores - top)
        p /= p.sum()
        loss = -float(np.log(max(p[positive], 1e-300)))
        if xv is not None:
            self._learn_factors(x, xv, p, positive)
        grad = x.T.astype(np.float64) @ p - x[positive]  # d loss / d w
        grad += self.params.prior_l2 * (self.w - self.prior_w)
        grad *= self.active
        self.g2 += grad * grad
        step = self.params.learning_rate * grad / (np.sqrt(self.g2) + 1e-8)
        np.clip(step, -self.params.max_step, self.params.max_step, out=step)
        self.w -= step
        self.updates += 1
        return loss

    def _learn_factors(self, x: np.ndarray, xv: np.ndarray, p: np.ndarray,
                       positive: int) -> None:
        """One AdaGrad step of the interaction vectors on the same softmax loss (``xv`` =
        x @ v, as scored)."""
        g = p.copy()  # d loss / d score of each row (0 for the ignored rows)
        g[positive] -= 1.0
        x64 = x.astype(np.float64)
        grad = x64.T @ (g[:, None] * xv) - self.v * ((x64 * x64).T @ g)[:, None]
        grad += self.params.factor_l2 * self.v
        grad *= self.active[:, None]
        self.v_g2 += grad * grad
        step = self.params.factor_learning_rate * grad / (np.sqrt(self.v_g2) + 1e-8)
        np.clip(step, -self.params.max_step, self.params.max_step, out=step)
        self.v -= step


@dataclass(slots=True)
class _Pending:
    """A user's would-be list at instant ``ts_ms``: only what labelling it reads (its feature
    rows and where each item sits), not the whole candidate set."""

    ts_ms: int
    x: np.ndarray
    index: dict[str, int]
    labelled: list[int] = field(default_factory=list)


class StreamLearner:
    """Labels each user's would-be list with their next instant's items and learns.

    ``build(profile, now_ms)`` must return the candidates the recommender would rank for
    ``profile`` (built from the state *before* the labelling event is folded). A user's list
    is labelled by every item of that instant, so it is kept until the user's next instant,
    for at most the ``max_users`` users touched last (an LRU: a list of ~10 KB per user; the
    events of one instant come together, so evicting a list loses at most a training
    example, never a whole basket's worth in practice).
    """

    def __init__(self, ranker: LearnedRanker,
                 build: Callable[[UserProfile, int], CandidateSet], *,
                 max_users: int = 1_024) -> None:
        self.ranker = ranker
        self.build = build
        self.max_users = max_users
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self.lists = 0
        self.labels = 0
        self.misses = 0  # labels whose item was not among the candidates
        self.loss_sum = 0.0

    def on_event(self, before: UserProfile, event: Event) -> None:
        """Call with the user's profile before ``event`` and before its delta is folded."""
        item = event.item_id
        if item is None or event.type not in ("view", "rec_click", "add_to_cart",
                                              "purchase") or not before.recent:
            return
        every = self.ranker.params.sample_every
        if every > 1 and zlib.crc32(f"{event.user_id}|{event.ts_ms}".encode()) % every:
            return
        pending = self._pending.get(event.user_id)
        if pending is None or pending.ts_ms != event.ts_ms:
            built = self.build(before, event.ts_ms)
            pending = _Pending(event.ts_ms, built.x, dict(zip(built.items, range(len(built)),
                                                              strict=True)))
            self._pending[event.user_id] = pending
            self.lists += 1
            if len(self._pending) > self.max_users:
                self._pending.popitem(last=False)
        self._pending.move_to_end(event.user_id)
        k = pending.index.get(item)
        if k is None:
            self.misses += 1
            return
        if k in pending.labelled:
            return
        self.loss_sum += self.ranker.learn_one(pending.x, k, pending.labelled)
        pending.labelled.append(k)
        self.labels += 1


def rank_candidates(candidates: CandidateSet, ranker: LearnedRanker, *, top_k: int,
                    keep: Callable[[str], bool]) -> list[tuple[str, float, str, str]]:
    """The ``top_k`` candidates by learned score that ``keep`` accepts:
    (item, score, source, anchor), best first, ties by item id."""
    if not candidates.items:
        return []
    scores = ranker.score(candidates.x)
    items = candidates.items
    values = scores.tolist()
    out: list[tuple[str, float, str, str]] = []
    cut = None
    why = candidates.reasons()
    for k in np.argsort(-scores, kind="stable").tolist():
        if cut is not None and values[k] < cut:
            break  # everything tied with the last kept item is in: ties are broken by id
        if keep(items[k]):
            source, anchor = why(k)
            out.append((items[k], values[k], source, anchor))
            if len(out) == top_k:
                cut = values[k]
    out.sort(key=lambda r: (-r[1], r[0]))
    return out[:top_k]
