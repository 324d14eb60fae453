"""Would a closed-form item-item model (EASE, Steck 2019) rank MovieLens better?

    python docs/accuracy/diagnostics/ease_movielens.py --data-dir ../shared/data/movielens-latest-small

EASE learns B = argmin ||X - XB||² + λ||B||² with diag(B) = 0 in closed form
(P = (XᵀX + λI)⁻¹, B = -P / diag(P)), from the binary user x item matrix of the events
the llamarec split streams. Each case scores every item as the user's history rows of B,
summed with a recency weight (half-life ``h`` items: the newest counts 1, the one ``h``
before it 1/2), history masked; Recall@10 and NDCG@10 over all cases, for each λ and half-life,
on the validation stage (where choices are made) and the test stage. A batch model
like this one would run off the event loop on a worker; this only asks whether it would
find the targets first. Compare with the `item-knn` and `slm` rows of the same protocol in
docs/learned_ranker.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stream_rec.datasets import load_dataset
from stream_rec.datasets.protocols import Split, llamarec_split


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """EASE's item-item matrix from the Gram matrix XᵀX and the ridge ``lam``."""
    inverse = np.linalg.inv(gram + lam * np.eye(len(gram)))
    weights: np.ndarray = -inverse / np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return weights


def score_split(split: Split, lams: list[float], half_lives: list[float]) -> None:
    """Print Recall@10 / NDCG@10 of every (λ, half-life) on ``split``'s cases."""
    index = {item: i for i, item in enumerate(split.item_ids)}
    history: dict[str, list[int]] = {}
    for event in split.train_events:
        history.setdefault(event.user_id, []).append(index[event.item_id])
    users = {user: u for u, user in enumerate(history)}
    x = np.zeros((len(users), len(index)))
    for user, items in history.items():
        x[users[user], items] = 1.0
    gram = x.T @ x
    for lam in lams:
        weights = ease_weights(gram, lam)
        for half_life in half_lives:
            hits = ndcg = 0.0
            for case in split.cases:
                seq = history[case.user_id]
                recency = 0.5 ** (np.arange(len(seq))[::-1] / half_life)
                scores = recency @ weights[seq]
                scores[seq] = -np.inf
                top = np.argsort(-scores, kind="stable")[:10].tolist()
                target = index[next(iter(case.relevant))]
                if target in top:
                    hits += 1
                    ndcg += 1 / np.log2(2 + top.index(target))
            n = len(split.cases)
            print(f"  lambda {lam:>6g}  half-life {half_life:>4g} items:  "
                  f"recall@10 {hits / n:.4f}  ndcg@10 {ndcg / n:.4f}  ({n} cases)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--lambdas", default="5,20,50,200,1000")
    parser.add_argument("--half-lives", default="3,5,10")
    args = parser.parse_args()
    data = load_dataset("movielens", args.data_dir)
    lams = [float(v) for v in args.lambdas.split(",")]
    half_lives = [float(v) for v in args.half_lives.split(",")]
    for stage in ("valid", "test"):
        print(f"{stage} stage:")
        score_split(llamarec_split(data, stage=stage), lams, half_lives)


if __name__ == "__main__":
    main()
