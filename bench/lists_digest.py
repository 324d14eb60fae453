"""A digest of every list a default worker's recommender serves on a replayed stream.

    python bench/lists_digest.py --dataset demo --events 40000
    python bench/lists_digest.py --dataset movielens --data-dir DIR

(``DIR``: e.g. ``../shared/data/movielens-latest-small``.)

Replays the events as the worker folds them (the learner labels the list before each event,
then ``observe`` and ``ItemStats.learn_one``), asks ``recommend`` after every other event
of the first half and after every event of the second, and hashes each list (items,
scores, reasons) and the learned ranker's final weights. Two checkouts that print the same
digest serve the same lists bit for bit: a change meant to be only faster is checked so,

    PYTHONPATH=OTHER_CHECKOUT python bench/lists_digest.py ...

``--dataset demo`` is the benchmark's workload: the bundled Online Retail stream replicated
to ``--users`` users (``stream_rec/bench/workload.py``). Also prints the mean CPU µs per
recommend call over the second half.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import time
from pathlib import Path

from bench_eval import served_recommender

from stream_rec.bench.workload import replicate
from stream_rec.core.events import Event
from stream_rec.core.profile import UserProfile
from stream_rec.datasets import load_dataset
from stream_rec.datasets.demo import load_demo


def digest(events: list[Event], catalog: list, *, model: bool) -> tuple[str, float]:
    """(hex digest of every list and the final weights, mean µs per timed recommend)."""
    rec = served_recommender(catalog, model=model)
    learner = rec.learner() if rec.ranker is not None else None
    profiles: dict[str, UserProfile] = {}
    hashed = hashlib.sha1()
    timed_ns = timed = 0
    half = len(events) // 2
    for k, event in enumerate(events):
        before = profiles.get(event.user_id) or UserProfile.new(event.user_id)
        obs = rec.observe(before, event)
        if obs.applied:
            if learner is not None:
                learner.on_event(before, event)
            profiles[event.user_id] = obs.profile
            if obs.delta is not None:
                rec.stats.learn_one(obs.delta)
        if k % 2 == 0 or k > half:
            started = time.thread_time_ns()
            served = rec.recommend(obs.profile, now_ms=event.ts_ms, trigger=event)
            if k > half:
                timed_ns += time.thread_time_ns() - started
                timed += 1
            hashed.update(repr([(r.item_id, r.score, r.reason) for r in served]).encode())
    if rec.ranker is not None:
        hashed.update(repr(rec.ranker.w.tolist()).encode())
    return hashed.hexdigest()[:16], timed_ns / max(1, timed) / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="demo", help="demo, or a name load_dataset knows")
    parser.add_argument("--data-dir", type=Path, help="the dataset's folder (not for demo)")
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--users", type=int, default=5_000, help="demo: replicated users")
    parser.add_argument("--no-model", action="store_true")
    args = parser.parse_args()
    if args.dataset == "demo":
        data = load_demo()
        events = [e for e, _, _ in itertools.islice(replicate(data.events, args.users),
                                                      args.events)]
    else:
        if args.data_dir is None:
            parser.error("--data-dir is required for a real dataset")
        data = load_dataset(args.dataset, args.data_dir)
        events = list(data.events[:args.events])
    found, micros = digest(events, list(data.catalog), model=not args.no_model)
    print(f"{args.dataset}: {len(events):,} events, digest {found}, recommend "
          f"{micros:.0f} µs/call (second half)")


if __name__ == "__main__":
    main()
