"""A/B arm assignment: sticky, deterministic, weighted by configuration.

A user's arm is a pure function of (experiment salt, arm weights, user id): it changes
only when the configuration changes. ``"slm:0.45,llm:0.45,holdout:0.1"`` → three arms.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from stream_rec.errors import ConfigError

__all__ = ["Arm", "Router", "parse_arms"]


@dataclass(frozen=True, slots=True)
class Arm:
    """One experiment arm and its share of users."""

    name: str
    weight: float


def parse_arms(spec: str) -> tuple[Arm, ...]:
    """Parse ``name:weight[,name:weight…]``; weights are normalised to sum to 1."""
    arms = []
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError as exc:
            raise ConfigError(f"STREAM_REC_ARMS={spec!r}: weight of {name!r} is not a number") \
                from exc
        if not name or value < 0:
            raise ConfigError(f"STREAM_REC_ARMS={spec!r}: each arm needs a name and a weight >= 0")
        arms.append(Arm(name, value))
    total = sum(arm.weight for arm in arms)
    if total <= 0 or len({arm.name for arm in arms}) != len(arms):
        raise ConfigError(f"STREAM_REC_ARMS={spec!r}: arm names must be unique and weights "
                          "must not all be 0")
    return tuple(Arm(arm.name, arm.weight / total) for arm in arms)


class Router:
    """Maps a user id to an arm by hashing it with the experiment salt."""

    def __init__(self, arms: tuple[Arm, ...], salt: str) -> None:
        self.arms = arms
        self.salt = salt
        bounds = []
        cumulative = 0.0
        for arm in arms:
            cumulative += arm.weight
            bounds.append((cumulative, arm.name))
        self._bounds = tuple(bounds)

    @classmethod
    def from_spec(cls, spec: str, salt: str) -> Router:
        return cls(parse_arms(spec), salt)

    def bucket(self, user_id: str) -> float:
        """A uniform number in [0, 1) fixed for (salt, user)."""
        digest = hashlib.sha256(f"{self.salt}\x00{user_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def assign(self, user_id: str) -> str:
        point = self.bucket(user_id)
        for bound, name in self._bounds:
            if point < bound:
                return name
        return self._bounds[-1][1]
