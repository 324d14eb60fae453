"""Would a two-hop co-visitation source find the targets the served candidates miss?

    python docs/accuracy/diagnostics/two_hop_recall.py --dataset D \
        --data-dir ../shared/data/DIR --protocol P

Replays the validation stage through the served `slm` arm (as bench/candidate_recall.py,
whose table it prints first) and counts, per target, whether it is among the best 25 / 50
/ 100 items of a two-hop score (the 20 best co-visitation items of the user, each weighted
by its score, mixed over their own neighbour lists) and of co-visitation itself at 50 /
100 / 200, and how many of those are not among the candidates already ("NEW").
"""
import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import candidate_recall as cr

from stream_rec.core import candidates as cands
from stream_rec.datasets import load_dataset
from stream_rec.evaluation.arms import served_arm
from stream_rec.evaluation.model_arm import model_hooks_factory
from stream_rec.evaluation.replay import COLD_ITEM, replay_group
from stream_rec.evaluation.stages import split_for_stage


def two_hop(profile, stats, n, exclude, first=20):
    """The ``n`` best items by P(item | the user's ``first`` best co-visitation items)."""
    one = cands.covisitation(profile, stats, n=first, exclude=frozenset())
    scores: dict[str, float] = {}
    for k, (p, _) in one.items():
        row = stats.neighbours(k)
        if not row:
            continue
        total = sum(row.values()) or 1.0
        for j, w in row.items():
            scores[j] = scores.get(j, 0.0) + p * w / total
    return [i for i, _ in cands._best(scores.items(), n, exclude)]


class TwoHopTally(cr.Tally):
    def __init__(self) -> None:
        super().__init__()
        self.extra: Counter[tuple[str, str]] = Counter()

    def __call__(self, case, profile, stats, tallies) -> None:
        super().__call__(case, profile, stats, tallies)
        found = tallies[0].recommender.candidates(profile, now_ms=case.now_ms,
                                                  blocked=case.masked, allow=case.candidates)
        have = set(found.items)
        skip = (case.masked if case.candidates is None
                else cands.OutsideOf(case.candidates, case.masked))
        hop = two_hop(profile, stats, 100, skip)
        covisit = cands.covisitation(profile, stats, n=200, exclude=skip)
        deep = [i for i, _ in sorted(covisit.items(), key=lambda kv: -kv[1][0])]
        for target in case.relevant:
            kind = "cold" if stats.counts.get(target, 0) < COLD_ITEM else "warm"
            for name, ranked, depths in (("2hop", hop, (25, 50, 100)),
                                         ("covisit", deep, (50, 100, 200))):
                for n in depths:
                    if target in ranked[:n]:
                        self.extra[kind, f"{name} top{n}"] += 1
                        if target not in have:
                            self.extra[kind, f"{name} top{n} NEW"] += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--protocol", required=True)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, args.data_dir)
    split = split_for_stage(dataset, args.protocol, "valid")
    hooks = model_hooks_factory(["slm"])(split, dataset.catalog)
    tally = TwoHopTally()
    replay_group(split, dataset.catalog, [served_arm()], top_k=10, cases=split.cases,
                 hooks=hooks, progress=False, on_case=tally)
    print(args.dataset)
    print(tally.table())
    for key in sorted(tally.extra):
        print(key, tally.extra[key])


if __name__ == "__main__":
    main()
