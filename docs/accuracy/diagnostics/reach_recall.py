"""Would another candidate list find the targets the served candidates miss?

    python docs/accuracy/diagnostics/reach_recall.py --source two-hop --dataset D \
        --data-dir ../shared/data/DIR --protocol P
    python docs/accuracy/diagnostics/reach_recall.py --source sknn --dataset D \
        --data-dir ../shared/data/DIR --protocol P

Replays the validation stage through the served `slm` arm (as bench/candidate_recall.py,
whose table it prints first) and counts, per target, whether another list holds it, and
how many of those are not among the candidates already ("NEW"):

- ``two-hop``: the best 25 / 50 / 100 items of a two-hop score (the 20 best co-visitation
  items of the user, each weighted by its score, mixed over their own neighbour lists),
  and co-visitation itself taken to 50 / 100 / 200;
- ``sknn`` (session kNN): from the events streamed before the case, the users who touched
  any of the user's 10 latest distinct items (the 500 latest of them), cosine of their
  item sets with those 10 items, the 100 most similar; each item scores the sum of the
  similarities of those who touched it; its top 10 / 25 / 50 / 100. No worker keeps the
  item -> users index this needs.
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


class ReachTally(cr.Tally):
    def __init__(self, source: str, events) -> None:
        super().__init__()
        self.extra: Counter[tuple[str, str]] = Counter()
        self.source = source
        self.index = UserIndex(events) if source == "sknn" else None

    def lists(self, case, profile, stats, skip):
        """(name, ranked items, depths counted) of the other lists."""
        if self.index is None:
            covisit = cands.covisitation(profile, stats, n=200, exclude=skip)
            deep = [i for i, _ in sorted(covisit.items(), key=lambda kv: -kv[1][0])]
            return [("2hop", two_hop(profile, stats, 100, skip), (25, 50, 100)),
                    ("covisit", deep, (50, 100, 200))]
        self.index.advance(case.at_index)
        recent = list(dict.fromkeys(t.item_id for t in reversed(profile.recent)))[:10]
        return [("sknn", self.index.recommend(case.user_id, recent, 100, skip),
                 (10, 25, 50, 100))]

    def __call__(self, case, profile, stats, tallies) -> None:
        super().__call__(case, profile, stats, tallies)
        found = tallies[0].recommender.candidates(profile, now_ms=case.now_ms,
                                                  blocked=case.masked, allow=case.candidates)
        have = set(found.items)
        skip = (case.masked if case.candidates is None
                else cands.OutsideOf(case.candidates, case.masked))
        lists = self.lists(case, profile, stats, skip)
        for target in case.relevant:
            kind = "cold" if stats.counts.get(target, 0) < COLD_ITEM else "warm"
            for name, ranked, depths in lists:
                for n in depths:
                    if target in ranked[:n]:
                        self.extra[kind, f"{name} top{n}"] += 1
                        if target not in have and n > 10:
                            self.extra[kind, f"{name} top{n} NEW"] += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", choices=["two-hop", "sknn"], required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--protocol", required=True)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, args.data_dir)
    split = split_for_stage(dataset, args.protocol, "valid")
    hooks = model_hooks_factory(["slm"])(split, dataset.catalog)
    tally = ReachTally(args.source, split.train_events)
    replay_group(split, dataset.catalog, [served_arm()], top_k=10, cases=split.cases,
                 hooks=hooks, progress=False, on_case=tally)
    print(args.dataset)
    print(tally.table())
    for key in sorted(tally.extra):
        print(key, tally.extra[key])


if __name__ == "__main__":
    main()
