"""Per-user state, folded one event at a time: ``learn_one(profile, event) -> profile``.

Pure: no Kafka, RocksDB or model here. A profile is a small, bounded, JSON-friendly
record (it is the value of the changelogged ``users`` table). Updates are idempotent: an
event whose source offset is at or below the last applied one for its partition, or whose
``event_id`` was applied recently, is skipped, because the stream is at-least-once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stream_rec.core.events import Event

__all__ = ["ProfileParams", "Touch", "UserProfile", "apply_event", "learn_one"]

_TYPE_WEIGHT = {"view": 1.0, "rec_click": 1.5, "add_to_cart": 3.0, "purchase": 5.0,
                "remove_from_cart": 0.0, "search": 0.0, "rec_request": 0.0}
_MAX_PURCHASED = 200
_MAX_CATEGORIES = 24


@dataclass(frozen=True, slots=True)
class ProfileParams:
    """Bounds and decay for user state (built from Settings)."""

    recent_items: int = 20
    half_life_s: float = 7 * 86_400.0
    # client duplicates (same event_id at a new offset) are caught within this many of the
    # user's latest events; broker redeliveries are caught exactly, by source offset
    dedupe_window: int = 64


@dataclass(frozen=True, slots=True)
class Touch:
    """One item interaction kept in the user's recent history."""

    item_id: str
    type: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class UserProfile:
    """Everything stream-rec remembers about one user."""

    user_id: str
    recent: tuple[Touch, ...] = ()
    purchased: tuple[tuple[str, int, int], ...] = ()  # (item_id, times, last_ts_ms), newest last
    cart: tuple[str, ...] = ()
    categories: tuple[tuple[str, float], ...] = ()  # decayed affinity as of last_ts_ms
    counts: tuple[tuple[str, int], ...] = ()
    first_ts_ms: int = 0
    last_ts_ms: int = 0
    offsets: tuple[tuple[int, int], ...] = ()  # (partition, last applied offset)
    recent_event_ids: tuple[str, ...] = ()

    @classmethod
    def new(cls, user_id: str) -> UserProfile:
        return cls(user_id=user_id)

    def purchase_counts(self) -> dict[str, int]:
        return {item: times for item, times, _ in self.purchased}

    def times_bought(self, item_id: str) -> int:
        """How many times this user bought ``item_id`` (``purchase_counts().get(item_id, 0)``
        without building the dict: read once per recommended item)."""
        for item, times, _ in reversed(self.purchased):
            if item == item_id:
                return times
        return 0

    def count(self, event_type: str) -> int:
        return dict(self.counts).get(event_type, 0)

    def recent_item_ids(self, n: int | None = None) -> list[str]:
        """Distinct recently touched items, newest first."""
        seen: list[str] = []
        for touch in reversed(self.recent):
            if touch.item_id not in seen:
                seen.append(touch.item_id)
                if n is not None and len(seen) >= n:
                    break
        return seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "recent": [[t.item_id, t.type, t.ts_ms] for t in self.recent],
            "purchased": [list(p) for p in self.purchased],
            "cart": list(self.cart),
            "categories": [list(c) for c in self.categories],
            "counts": dict(self.counts),
            "first_ts_ms": self.first_ts_ms,
            "last_ts_ms": self.last_ts_ms,
            "offsets": [list(o) for o in self.offsets],
            "recent_event_ids": list(self.recent_event_ids),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserProfile:
        return cls(
            user_id=data["user_id"],
            recent=tuple(Touch(i, t, ts) for i, t, ts in data.get("recent", ())),
            purchased=tuple((i, n, ts) for i, n, ts in data.get("purchased", ())),
            cart=tuple(data.get("cart", ())),
            categories=tuple((c, w) for c, w in data.get("categories", ())),
            counts=tuple(sorted(data.get("counts", {}).items())),
            first_ts_ms=data.get("first_ts_ms", 0),
            last_ts_ms=data.get("last_ts_ms", 0),
            offsets=tuple((p, o) for p, o in data.get("offsets", ())),
            recent_event_ids=tuple(data.get("recent_event_ids", ())),
        )


def learn_one(
    profile: UserProfile,
    event: Event,
    *,
    category: str = "",
    params: ProfileParams = ProfileParams(),
) -> UserProfile:
    """Fold one event into the profile and return the new profile (no idempotency check)."""
    return _folded(profile, event, category, params, profile.offsets)


def apply_event(
    profile: UserProfile,
    event: Event,
    *,
    partition: int,
    offset: int,
    category: str = "",
    params: ProfileParams = ProfileParams(),
) -> tuple[UserProfile, bool]:
    """Idempotent :func:`learn_one`: skip redelivered offsets and repeated event ids.

    Returns ``(profile, applied)``; ``applied`` is False for a duplicate.
    """
    offsets = dict(profile.offsets)
    if offset <= offsets.get(partition, -1) or event.event_id in profile.recent_event_ids:
        return profile, False
    offsets[partition] = offset
    return _folded(profile, event, category, params, tuple(sorted(offsets.items()))), True


def _folded(profile: UserProfile, event: Event, category: str, params: ProfileParams,
            offsets: tuple[tuple[int, int], ...]) -> UserProfile:
    """The profile after ``event``, with ``offsets``: one new record (built directly, not by
    ``dataclasses.replace``, which looks every field up again on each event)."""
    ts = max(event.ts_ms, profile.last_ts_ms)
    recent = profile.recent
    if event.item_id is not None and _TYPE_WEIGHT.get(event.type, 0.0) > 0:
        recent = (*recent, Touch(event.item_id, event.type, event.ts_ms))[-params.recent_items:]
    return UserProfile(
        user_id=profile.user_id,
        recent=recent,
        purchased=_purchased(profile.purchased, event),
        cart=_cart(profile.cart, event),
        categories=_categories(profile, event, category, ts, params.half_life_s),
        counts=_bump(profile.counts, event.type),
        first_ts_ms=profile.first_ts_ms or event.ts_ms,
        last_ts_ms=ts,
        offsets=offsets,
        recent_event_ids=(*profile.recent_event_ids, event.event_id)[-params.dedupe_window:],
    )


def _purchased(purchased: tuple[tuple[str, int, int], ...],
               event: Event) -> tuple[tuple[str, int, int], ...]:
    if event.type != "purchase" or event.item_id is None:
        return purchased
    times = 0
    kept = []
    for item, n, ts in purchased:
        if item == event.item_id:
            times = n
        else:
            kept.append((item, n, ts))
    kept.append((event.item_id, times + 1, event.ts_ms))
    return tuple(kept[-_MAX_PURCHASED:])


def _cart(cart: tuple[str, ...], event: Event) -> tuple[str, ...]:
    if event.item_id is None:
        return cart
    if event.type == "add_to_cart" and event.item_id not in cart:
        return (*cart, event.item_id)[-50:]
    if event.type in ("remove_from_cart", "purchase"):
        return tuple(item for item in cart if item != event.item_id)
    return cart


def _categories(profile: UserProfile, event: Event, category: str, ts: int,
                half_life_s: float) -> tuple[tuple[str, float], ...]:
    weight = _TYPE_WEIGHT.get(event.type, 0.0)
    if not category or weight <= 0:
        return profile.categories
    decay = _decay(profile.last_ts_ms, ts, half_life_s)
    scores = {name: value * decay for name, value in profile.categories}
    scores[category] = scores.get(category, 0.0) + weight
    top = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:_MAX_CATEGORIES]
    return tuple((name, round(value, 6)) for name, value in top)


def _bump(counts: tuple[tuple[str, int], ...], key: str) -> tuple[tuple[str, int], ...]:
    as_dict = dict(counts)
    as_dict[key] = as_dict.get(key, 0) + 1
    return tuple(sorted(as_dict.items()))


def _decay(from_ms: int, to_ms: int, half_life_s: float) -> float:
    if from_ms <= 0 or to_ms <= from_ms:
        return 1.0
    return math.exp(-math.log(2) * (to_ms - from_ms) / 1000.0 / half_life_s)

