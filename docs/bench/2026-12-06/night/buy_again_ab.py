"""buy_again for a user with 200 purchases, all excluded (as the llamarec protocol masks a
user's history) and none excluded: µs per call, best of 5 x 2,000 calls.

    PYTHONPATH=/tmp/oldmain python -P docs/bench/2026-12-06/night/buy_again_ab.py   # before
    PYTHONPATH=.            python -P docs/bench/2026-12-06/night/buy_again_ab.py   # after
"""

from __future__ import annotations

import dataclasses
import timeit

from stream_rec.core.candidates import buy_again
from stream_rec.core.item_stats import ItemDelta, ItemStats
from stream_rec.core.profile import UserProfile

stats = ItemStats()
for k in range(300):
    stats.learn_one(ItemDelta(f"i{k}", "purchase", 1000 + k, (), True, False))
profile = dataclasses.replace(UserProfile.new("u"),
                              purchased=tuple((f"i{k}", 1, 1000 + k) for k in range(200)))
history = frozenset(f"i{k}" for k in range(200))
for label, exclude in (("all excluded", history), ("none excluded", frozenset())):
    def call(exclude: frozenset[str] = exclude) -> object:
        return buy_again(profile, stats, n=25, now_ms=5000, half_life_s=30 * 86_400.0,
                         exclude=exclude)
    best = min(timeit.repeat(call, number=2000, repeat=5)) / 2000 * 1e6
    print(f"{label}: {best:.1f} us per call")
