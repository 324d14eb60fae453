"""The learned ranker's score and learning step, linear and with 4-dim pairwise interactions,
on one list of 110 candidates: µs per call, best of 5 x 5,000 (score) / 3 x 2,000 (learn).

    python -P docs/bench/2026-12-06/night/interactions_cost.py
"""

from __future__ import annotations

import timeit

import numpy as np

from stream_rec.core.features import FEATURES
from stream_rec.core.learned_ranker import LearnedRanker, LearnerParams

x = np.random.default_rng(0).normal(size=(110, len(FEATURES))).astype(np.float32)
for factors in (0, 4):
    ranker = LearnedRanker(LearnerParams(factors=factors))
    score = min(timeit.repeat(lambda r=ranker: r.score(x), number=5000, repeat=5)) / 5000 * 1e6
    learn = min(timeit.repeat(lambda r=ranker: r.learn_one(x, 3), number=2000,
                              repeat=3)) / 2000 * 1e6
    print(f"factors={factors}: score {score:.1f} us, learn_one {learn:.1f} us")
