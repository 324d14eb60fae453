"""Experiment (measured 2026-12-07, not adopted; docs/learned_ranker.md): a LightGBM lambdarank
model retrained periodically on the stream's labelled lists, scoring on top of the linear
learned ranker. Runs bench/tune_ranker.py with the replay's LearnedRanker replaced by a
factory: the arm whose ranker_factor_learning_rate is 0.051 (unused while ranker_factors =
0) gets the trees; the other stays linear (paired).

    pip install lightgbm==4.7.0      # not a dependency of stream-rec
    python docs/accuracy/diagnostics/gbdt_ranker.py --dataset D --data-dir DIR --protocol P \
        --set ranker_factor_learning_rate=0.05,0.051 --model
Env: GBDT_EVERY (labels between retrains), GBDT_WINDOW (lists kept), GBDT_NEG (negatives
per list), GBDT_TREES, GBDT_LEAVES, GBDT_MODE: "feature" (the trees score alone, the
linear score one of their inputs) or "residual" (the trees boost from the linear score,
LightGBM's init_score). The linear ranker keeps learning in both; before the first retrain
the trees arm ranks exactly as the linear one. Retraining is synchronous (deterministic);
a worker would run it off the event loop.
"""
import os
import runpy
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np

import stream_rec.evaluation.replay as replay
from stream_rec.core.learned_ranker import LearnedRanker

EVERY = int(os.environ.get("GBDT_EVERY", 5000))
WINDOW = int(os.environ.get("GBDT_WINDOW", 30000))
NEG = int(os.environ.get("GBDT_NEG", 20))
TREES = int(os.environ.get("GBDT_TREES", 100))
LEAVES = int(os.environ.get("GBDT_LEAVES", 15))
MODE = os.environ.get("GBDT_MODE", "feature")


class GbdtRanker(LearnedRanker):
    def __init__(self, params, *a, **k):
        super().__init__(params, *a, **k)
        self.rng = np.random.default_rng(7)
        self.groups = []  # (x rows, labels)
        self.since = 0
        self.booster = None
        self.trains = 0

    def _inputs(self, x, lin):
        return np.column_stack([x, lin]) if MODE == "feature" else x

    def score(self, x):
        lin = super().score(x)
        if self.booster is None:
            return lin
        raw = self.booster.predict(self._inputs(x, lin), num_threads=1, raw_score=True)
        return raw + lin if MODE == "residual" else raw

    def learn_one(self, x, positive, ignore=()):
        lin = super().score(x)
        loss = super().learn_one(x, positive, ignore)
        n = x.shape[0]
        others = np.setdiff1d(np.arange(n), np.asarray([positive, *ignore], int))
        if len(others) > NEG:
            others = self.rng.choice(others, NEG, replace=False)
        rows = np.concatenate([[positive], others]).astype(int)
        y = np.zeros(len(rows))
        y[0] = 1
        self.groups.append((self._inputs(x[rows], lin[rows]), y, lin[rows]))
        if len(self.groups) > WINDOW:
            del self.groups[: len(self.groups) - WINDOW]
        self.since += 1
        if self.since >= EVERY:
            self.since = 0
            self._train()
        return loss

    def _train(self):
        X = np.vstack([g[0] for g in self.groups])
        y = np.concatenate([g[1] for g in self.groups])
        sizes = [len(g[1]) for g in self.groups]
        ds = lgb.Dataset(X, y, group=sizes,
                         init_score=np.concatenate([g[2] for g in self.groups])
                         if MODE == "residual" else None)
        params = dict(objective="lambdarank", num_leaves=LEAVES, learning_rate=0.05,
                      min_data_in_leaf=100, feature_fraction=0.8, bagging_fraction=0.8,
                      bagging_freq=1, lambdarank_truncation_level=20, verbose=-1,
                      num_threads=2, seed=7, deterministic=True, force_row_wise=True)
        self.booster = lgb.train(params, ds, num_boost_round=TREES)
        self.trains += 1
        print(f"[gbdt] train {self.trains}: {len(sizes)} lists, {len(y)} rows", file=sys.stderr)


def factory(params, *a, **k):
    if abs(params.factor_learning_rate - 0.051) < 1e-9:
        return GbdtRanker(params, *a, **k)
    return LearnedRanker(params, *a, **k)


replay.LearnedRanker = factory
sys.argv = ["tune_ranker.py", *sys.argv[1:]]
runpy.run_path(str(Path(__file__).resolve().parents[3] / "bench" / "tune_ranker.py"),
               run_name="__main__")
