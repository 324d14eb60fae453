"""Where the targets sit: among the served ranker's candidates, which sources found them,
and (for cold targets) how near the model's text neighbours put them.

    python bench/candidate_recall.py --dataset amazon-minionerec \
        --data-dir ../shared/data/amazon18-industrial-scientific-minionerec --protocol minionerec

Replays the validation stage (``--stage``) through the ``slm`` arm exactly as
``stream-rec eval`` does, and at every case rebuilds the candidate set the arm ranked
(history masked as the protocol masks it). Each target is *cold* when it had fewer than 5
interactions before the case, else *warm*. For cold targets it also ranks the target among
the cold items of the text-neighbour mixture of the user's recent items (the pool the
``similar`` source reads), and among all cold items by cosine with the user's taste vector.
Prints one Markdown table; never reads test targets unless ``--stage test``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from stream_rec.core.features import SOURCES, FeatureParams, taste_weights
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.profile import UserProfile
from stream_rec.datasets import TestCase, load_dataset
from stream_rec.evaluation.arms import served_arm
from stream_rec.evaluation.model_arm import model_hooks_factory
from stream_rec.evaluation.replay import COLD_ITEM, ArmTally, replay_group
from stream_rec.evaluation.stages import split_for_stage

_BUCKETS = (10, 50, 200)


def _bucket(rank: int | None) -> str:
    """A 0-based rank as the 1-based range it falls in."""
    if rank is None:
        return "absent"
    low = 1
    for high in _BUCKETS:
        if rank < high:
            return f"{low}-{high}"
        low = high + 1
    return f"> {_BUCKETS[-1]}"


class Tally:
    """Counts per (target class, what was found)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def __call__(self, case: TestCase, profile: UserProfile, stats: ItemStats,
                 tallies: list[ArmTally]) -> None:
        recommender = tallies[0].recommender
        found = recommender.candidates(profile, now_ms=case.now_ms, blocked=case.masked,
                                       allow=case.candidates)
        position = {item: k for k, item in enumerate(found.items)}
        served = set()
        if recommender.ranker is not None and found.items:
            scores = recommender.ranker.score(found.x)
            served = {found.items[k] for k in (-scores).argsort(kind="stable")[:10]}
        count = stats.counts.get
        space = recommender.text_space
        pool_rank: dict[str, int] = {}
        cosine_rank: dict[str, int] = {}
        weights = taste_weights(profile, FeatureParams())
        if space is not None and weights:
            pool = space.neighbours_mix(weights, len(space), case.masked)
            cold_pool = [item for item, _, _ in pool if count(item, 0) < COLD_ITEM]
            pool_rank = {item: k for k, item in enumerate(cold_pool)}
            universe = case.candidates if case.candidates is not None else space.ids
            cold = [i for i in universe if count(i, 0) < COLD_ITEM and i not in case.masked]
            sims = space.cosine(space.query(weights), cold)
            cosine_rank = {cold[k]: r for r, k in enumerate((-sims).argsort(kind="stable"))}
        for target in case.relevant:
            kind = "cold" if count(target, 0) < COLD_ITEM else "warm"
            add = self.counts.update
            add([(kind, "targets")])
            k = position.get(target)
            if k is not None:
                add([(kind, "in candidates")])
                add([(kind, f"found by {SOURCES[s]}") for s in range(len(SOURCES))
                     if found.parts[k, s] >= 0])
            if target in served:
                add([(kind, "in the served top 10")])
            if kind == "cold":
                add([(kind, f"cold text-pool rank {_bucket(pool_rank.get(target))}"),
                     (kind, f"cold cosine rank {_bucket(cosine_rank.get(target))}")])

    def table(self) -> str:
        order = ["targets", "in candidates", *[f"found by {s}" for s in SOURCES],
                 "in the served top 10"]
        for prefix in ("cold text-pool rank", "cold cosine rank"):
            order += [f"{prefix} {_bucket(r)}" for r in (0, 10, 50, 200, None)]
        rows = [r for r in order if any(self.counts[k, r] for k in ("warm", "cold"))]
        lines = ["| | warm | cold |", "|---|---|---|"]
        totals = {kind: self.counts[kind, "targets"] or 1 for kind in ("warm", "cold")}
        for what in rows:
            cells = []
            for kind in ("warm", "cold"):
                n = self.counts[kind, what]
                cells.append(f"{n:,}" if what == "targets" else
                             f"{n:,} ({100 * n / totals[kind]:.1f}%)" if n else "")
            lines.append(f"| {what} | {' | '.join(cells)} |")
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--stage", default="valid", choices=["valid", "test"])
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, args.data_dir)
    split = split_for_stage(dataset, args.protocol, args.stage)
    factory = model_hooks_factory(["slm"])  # raises ConfigError, saying why, without a model
    if factory is None:
        raise SystemExit("candidate_recall: the slm arm needs the language model")
    hooks = factory(split, dataset.catalog)
    tally = Tally()
    replay_group(split, dataset.catalog, [served_arm()], top_k=10, cases=split.cases,
                 hooks=hooks, progress=True, on_case=tally)
    print(f"{args.dataset} / {args.protocol}, stage {args.stage}: {len(split.cases):,} cases")
    print(tally.table())


if __name__ == "__main__":
    main()
