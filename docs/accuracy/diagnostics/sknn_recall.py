"""Would a session-kNN source (the items of users whose items overlap the user's recent
ones) find the targets the served candidates miss?

    python docs/accuracy/diagnostics/sknn_recall.py --dataset D \
        --data-dir ../shared/data/DIR --protocol P

Replays the validation stage through the served `slm` arm (as bench/candidate_recall.py,
whose table it prints first). At each case, from the streamed events before it: the users
who touched any of the user's 10 latest distinct items (the 500 latest of them), cosine
of their item sets with those 10 items, the 100 most similar; each item scores the sum of
the similarities of those who touched it. Counts targets in that list's top 10 / 25 / 50
/ 100, and how many of those are not among the candidates already ("NEW"). A diagnostic:
no worker keeps the item -> users index it needs.
"""
import argparse
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import candidate_recall as cr

from stream_rec.core import candidates as cands
from stream_rec.datasets import load_dataset
from stream_rec.evaluation.arms import served_arm
from stream_rec.evaluation.model_arm import model_hooks_factory
from stream_rec.evaluation.replay import COLD_ITEM, replay_group
from stream_rec.evaluation.stages import split_for_stage

ITEM_TYPES = ("view", "rec_click", "add_to_cart", "purchase")


class UserIndex:
    """Who touched what, from the events streamed so far (each pair's latest position)."""

    def __init__(self, events) -> None:
        self.events = events
        self.pos = 0
        self.users: defaultdict[str, dict[str, int]] = defaultdict(dict)  # item -> users
        self.items: defaultdict[str, dict[str, int]] = defaultdict(dict)  # user -> items

    def advance(self, upto: int) -> None:
        while self.pos < upto:
            event = self.events[self.pos]
            if event.item_id is not None and event.type in ITEM_TYPES:
                self.users[event.item_id][event.user_id] = self.pos
                self.items[event.user_id][event.item_id] = self.pos
            self.pos += 1

    def recommend(self, user: str, recent: list[str], n: int, exclude, k: int = 100,
                  sample: int = 500) -> list[str]:
        query = set(recent)
        latest: dict[str, int] = {}
        for item in query:
            for other, at in self.users.get(item, {}).items():
                if other != user and at > latest.get(other, -1):
                    latest[other] = at
        pool = sorted(latest, key=lambda other: -latest[other])[:sample]
        sims = []
        for other in pool:
            theirs = self.items[other]
            overlap = sum(1 for item in query if item in theirs)
            if overlap:
                sims.append((overlap / math.sqrt(len(query) * len(theirs)), other))
        sims.sort(reverse=True)
        scores: Counter[str] = Counter()
        for sim, other in sims[:k]:
            for item in self.items[other]:
                scores[item] += sim
        return [item for item, _ in cands._best(scores.items(), n, exclude)]


class SknnTally(cr.Tally):
    def __init__(self, index: UserIndex) -> None:
        super().__init__()
        self.extra: Counter[tuple[str, str]] = Counter()
        self.index = index

    def __call__(self, case, profile, stats, tallies) -> None:
        super().__call__(case, profile, stats, tallies)
        found = tallies[0].recommender.candidates(profile, now_ms=case.now_ms,
                                                  blocked=case.masked, allow=case.candidates)
        have = set(found.items)
        skip = (case.masked if case.candidates is None
                else cands.OutsideOf(case.candidates, case.masked))
        self.index.advance(case.at_index)
        recent = list(dict.fromkeys(t.item_id for t in reversed(profile.recent)))[:10]
        ranked = self.index.recommend(case.user_id, recent, 100, skip)
        for target in case.relevant:
            kind = "cold" if stats.counts.get(target, 0) < COLD_ITEM else "warm"
            if target in ranked[:10]:
                self.extra[kind, "sknn top10"] += 1
            for n in (25, 50, 100):
                if target in ranked[:n]:
                    self.extra[kind, f"sknn top{n}"] += 1
                    if target not in have:
                        self.extra[kind, f"sknn top{n} NEW"] += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--protocol", required=True)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, args.data_dir)
    split = split_for_stage(dataset, args.protocol, "valid")
    hooks = model_hooks_factory(["slm"])(split, dataset.catalog)
    tally = SknnTally(UserIndex(split.train_events))
    replay_group(split, dataset.catalog, [served_arm()], top_k=10, cases=split.cases,
                 hooks=hooks, progress=False, on_case=tally)
    print(args.dataset)
    print(tally.table())
    for key in sorted(tally.extra):
        print(key, tally.extra[key])


if __name__ == "__main__":
    main()
