"""The learned ranker shared by replicas: priors plus every contributor's latest contribution.

Pure: numpy only. Each worker learns from its own partitions' events; what it learned since
it started from the shared state is its *contribution*: the sum of its AdaGrad weight steps
and of its squared-gradient increments, and its update count. Every replica's effective
parameters are

    weights      = priors + Σ over contributors of their weight steps
    grad_squares =     0  + Σ over contributors of their squared-gradient increments

and likewise the interaction vectors (``factors``: their common, name-seeded start plus every
contributor's factor steps) when the ranker has them.

with its own live contribution included. Contributions are published (a compacted topic,
keyed by contributor) as cumulative records with an increasing ``seq``, so folding a record
replaces that contributor's previous one: re-folding the same record changes nothing, and a
record older than the one held is skipped. A worker that comes back under the same id
adopts its stored contribution before publishing (no double counting); under a new id the
old contribution stays in the sum as any other contributor's.

    shared = SharedRanker(ranker, contributor="worker-0")
    shared.fold(Contribution.from_dict(record))   # every record of the topic, in order
    record = shared.publish()                     # None when nothing changed since last time
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_rec.core.features import FEATURES
from stream_rec.core.learned_ranker import LearnedRanker, float_rows

__all__ = ["CONTRIBUTION_SCHEMA", "Contribution", "FoldOutcome", "SharedRanker"]

CONTRIBUTION_SCHEMA = 1

#: what folding one record did: ``applied`` (another contributor's, newer), ``restored``
#: (this contributor's, from before a restart), ``stale`` (not newer than the one held),
#: ``echo`` (this worker's own, published earlier), ``conflict`` (this contributor id,
#: newer than anything this worker published: another live worker uses the same id)
FoldOutcome = str


@dataclass(frozen=True, slots=True)
class Contribution:
    """One contributor's cumulative learning since it started from the shared state."""

    contributor: str
    seq: int
    features: tuple[str, ...]
    weight_steps: tuple[float, ...]
    grad_squares: tuple[float, ...]
    updates: int
    schema: int = CONTRIBUTION_SCHEMA
    # per feature, the steps of its interaction vector and their squared-gradient sums
    # (empty from a linear ranker, or from a version before interactions existed)
    factor_steps: tuple[tuple[float, ...], ...] = ()
    factor_grad_squares: tuple[tuple[float, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {"schema": self.schema, "contributor": self.contributor, "seq": self.seq,
               "updates": self.updates, "features": list(self.features),
               "weight_steps": list(self.weight_steps),
               "grad_squares": list(self.grad_squares)}
        if self.factor_steps:
            out["factor_steps"] = [list(v) for v in self.factor_steps]
            out["factor_grad_squares"] = [list(v) for v in self.factor_grad_squares]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contribution:
        """Inverse of :meth:`to_dict`; raises ValueError naming what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"ranker contribution: must be an object, got {type(data).__name__}")
        schema = data.get("schema")
        if schema != CONTRIBUTION_SCHEMA:
            raise ValueError(f"ranker contribution: schema must be {CONTRIBUTION_SCHEMA}, got "
                             f"{schema!r} (written by another version of stream-rec)")
        try:
            features = tuple(str(f) for f in data["features"])
            steps = tuple(float(w) for w in data["weight_steps"])
            squares = tuple(float(g) for g in data["grad_squares"])
            factor_steps = float_rows(data.get("factor_steps", ()))
            factor_squares = float_rows(data.get("factor_grad_squares", ()))
            out = cls(contributor=str(data["contributor"]), seq=int(data["seq"]),
                      features=features, weight_steps=steps, grad_squares=squares,
                      updates=int(data["updates"]), factor_steps=factor_steps,
                      factor_grad_squares=factor_squares)
        except KeyError as exc:
            raise ValueError(f"ranker contribution: missing field {exc.args[0]!r}") from exc
        except (TypeError, OverflowError) as exc:
            raise ValueError(f"ranker contribution: bad field type ({exc})") from exc
        if not (len(features) == len(steps) == len(squares)):
            raise ValueError(f"ranker contribution: {len(features)} features but "
                             f"{len(steps)} weight steps and {len(squares)} grad squares")
        if not (np.all(np.isfinite(steps)) and np.all(np.isfinite(squares))):
            raise ValueError("ranker contribution: weight steps and grad squares must be finite")
        if factor_steps or factor_squares:
            _check_factors(features, factor_steps, factor_squares)
        if out.seq < 1 or out.updates < 0 or min(squares, default=0.0) < 0:
            raise ValueError(f"ranker contribution: seq must be >= 1, updates and grad squares "
                             f">= 0 (seq {out.seq}, updates {out.updates})")
        return out


def _check_factors(features: tuple[str, ...], steps: tuple[tuple[float, ...], ...],
                   squares: tuple[tuple[float, ...], ...]) -> None:
    shapes = {len(v) for v in (*steps, *squares)}
    if len(steps) != len(features) or len(squares) != len(features) or len(shapes) != 1:
        raise ValueError(f"ranker contribution: factor steps and factor grad squares must "
                         f"hold one vector per feature ({len(features)}), all of one length")
    if not (np.all(np.isfinite(steps)) and np.all(np.isfinite(squares))):
        raise ValueError("ranker contribution: factor steps and grad squares must be finite")
    if min(min(v, default=0.0) for v in squares) < 0:
        raise ValueError("ranker contribution: factor grad squares must be >= 0")


@dataclass(frozen=True, slots=True)
class _Held:
    """A contribution aligned to this process's feature order (factors: features x k, zero
    when the record has none or another k)."""

    seq: int
    w: np.ndarray
    g2: np.ndarray
    updates: int
    v: np.ndarray
    v_g2: np.ndarray


class SharedRanker:
    """Keeps ``ranker``'s parameters = priors + Σ contributions, this worker's included.

    ``ranker`` must hold the priors (or whatever this process starts from) when this is
    built; it keeps learning through its own ``learn_one`` (the :class:`StreamLearner`), and
    its weights are shifted in place as other contributors' records are folded.
    """

    def __init__(self, ranker: LearnedRanker, contributor: str,
                 features: Sequence[str] = FEATURES) -> None:
        if not contributor:
            raise ValueError("a ranker contributor id must not be empty")
        self.ranker = ranker
        self.contributor = contributor
        self.features = tuple(features)
        self._index = {f: k for k, f in enumerate(self.features)}
        self._held: dict[str, _Held] = {}  # latest per contributor (ours: restored)
        # the ranker's parameters without this process's own steps
        self._base_w = ranker.w.copy()
        self._base_g2 = ranker.g2.copy()
        self._base_v = ranker.v.copy()
        self._base_v_g2 = ranker.v_g2.copy()
        self._base_updates = ranker.updates
        self._seq = 0  # the last seq this contributor published (or restored)
        self._published_updates: int | None = None
        self.published = 0  # records this process has published

    @property
    def contributors(self) -> int:
        """Contributors in the sum: those folded, plus this one once it has learned."""
        ids = set(self._held)
        if self.own_updates() > 0:
            ids.add(self.contributor)
        return len(ids)

    @property
    def seq(self) -> int:
        return self._seq

    def own_updates(self) -> int:
        """This contributor's updates, restored ones included."""
        restored = self._held.get(self.contributor)
        return (restored.updates if restored else 0) + self.ranker.updates - self._base_updates

    def fold(self, record: Contribution) -> FoldOutcome:
        """Fold one record of the contributions topic; see :data:`FoldOutcome`.

        Raises ValueError when the record shares no feature with this process.
        """
        mine = record.contributor == self.contributor
        if mine and record.seq <= self._seq:
            return "echo"
        if mine and self._published_updates is not None:
            return "conflict"
        held = self._held.get(record.contributor)
        if held is not None and record.seq <= held.seq:
            return "stale"
        new = self._align(record)
        w, g2, updates, v, v_g2 = new.w, new.g2, new.updates, new.v, new.v_g2
        if held is not None:
            w, g2, updates = w - held.w, g2 - held.g2, updates - held.updates
            v, v_g2 = v - held.v, v_g2 - held.v_g2
        for params, step in ((self.ranker.w, w), (self._base_w, w), (self.ranker.g2, g2),
                             (self._base_g2, g2), (self.ranker.v, v), (self._base_v, v),
                             (self.ranker.v_g2, v_g2), (self._base_v_g2, v_g2)):
            params += step
        self.ranker.updates += updates
        self._base_updates += updates
        self._held[record.contributor] = new
        if mine:
            self._seq = record.seq
            return "restored"
        return "applied"

    def publish(self) -> Contribution | None:
        """This contributor's next record (seq + 1), or None when it has not learned since
        its last record (published, or restored from before a restart)."""
        updates = self.own_updates()
        restored = self._held.get(self.contributor)
        last = (self._published_updates if self._published_updates is not None
                else restored.updates if restored is not None else 0)
        if updates == last:
            return None
        w = self.ranker.w - self._base_w
        g2 = self.ranker.g2 - self._base_g2
        v = self.ranker.v - self._base_v
        v_g2 = self.ranker.v_g2 - self._base_v_g2
        if restored is not None:
            w, g2 = w + restored.w, g2 + restored.g2
            v, v_g2 = v + restored.v, v_g2 + restored.v_g2
        self._seq += 1
        self._published_updates = updates
        self.published += 1
        factors = v.shape[1] > 0
        return Contribution(
            self.contributor, self._seq, self.features, tuple(w.tolist()),
            tuple(np.maximum(g2, 0.0).tolist()), updates,
            factor_steps=float_rows(v.tolist()) if factors else (),
            factor_grad_squares=float_rows(np.maximum(v_g2, 0.0).tolist()) if factors else ())

    def _align(self, record: Contribution) -> _Held:
        """The record's vectors in this process's feature order: features this process no
        longer has are dropped, new ones get no contribution."""
        w = np.zeros(len(self.features), np.float64)
        g2 = np.zeros(len(self.features), np.float64)
        v = np.zeros_like(self.ranker.v)
        v_g2 = np.zeros_like(self.ranker.v_g2)
        # factors of another length (another ``factors`` setting) cannot be summed: only
        # the record's weights count then
        factors = bool(record.factor_steps) and len(record.factor_steps[0]) == v.shape[1]
        known = 0
        for row, (name, step, square) in enumerate(zip(record.features, record.weight_steps,
                                                       record.grad_squares, strict=True)):
            k = self._index.get(name)
            if k is not None:
                w[k], g2[k] = step, square
                if factors:
                    v[k], v_g2[k] = record.factor_steps[row], record.factor_grad_squares[row]
                known += 1
        if record.features and not known:
            raise ValueError(f"ranker contribution of {record.contributor!r}: none of its "
                             f"{len(record.features)} features is known here")
        return _Held(record.seq, w, g2, record.updates, v, v_g2)
