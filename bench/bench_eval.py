"""Per-event costs of the worker's recommender on a real dataset (prints figures).

    python bench/bench_eval.py --dataset movielens --data-dir ../shared/data/movielens-latest-small

Replays the dataset's events through ``Recommender.observe`` + ``ItemStats.learn_one``
(the default configuration, what the worker runs), then asks ``Recommender.recommend`` for
a sample of users at the end. Reports µs per event (observe, fold) and per recommendation
(CPU time, single thread), best of ``--repeat`` passes to damp noise from other work.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from stream_rec.core.catalog import Catalog
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import Recommender
from stream_rec.datasets import load_dataset


def bench(dataset: str, data_dir: Path, *, max_events: int, recs: int, repeat: int) -> None:
    data = load_dataset(dataset, data_dir)
    events = data.events[:max_events] if max_events else data.events
    best_obs = best_fold = best_rec = float("inf")
    for _ in range(repeat):
        rec = Recommender(Catalog(data.catalog), ItemStats())
        profiles: dict[str, UserProfile] = {}
        obs_ns = fold_ns = 0
        clock = time.thread_time_ns
        for event in events:
            before = profiles.get(event.user_id) or UserProfile.new(event.user_id)
            t0 = clock()
            obs = rec.observe(before, event)
            t1 = clock()
            if obs.delta is not None:
                rec.stats.learn_one(obs.delta)
            fold_ns += clock() - t1
            obs_ns += t1 - t0
            if obs.applied:
                profiles[event.user_id] = obs.profile
        users = random.Random(0).sample(sorted(profiles), min(recs, len(profiles)))
        now = events[-1].ts_ms
        rec.stats.trending(now)  # warm the shared trending list, as traffic would
        t0 = clock()
        for user in users:
            rec.recommend(profiles[user], now_ms=now)
        rec_ns = clock() - t0
        best_obs = min(best_obs, obs_ns / len(events) / 1e3)
        best_fold = min(best_fold, fold_ns / len(events) / 1e3)
        best_rec = min(best_rec, rec_ns / len(users) / 1e3)
    load = os.getloadavg()[0]
    print(f"{dataset}: {len(events):,} events, {len(users)} recommendations, "
          f"load average {load:.1f} on {os.cpu_count()} cores")
    print(f"  observe   {best_obs:8.1f} µs/event")
    print(f"  fold      {best_fold:8.1f} µs/event")
    print(f"  => {1e6 / (best_obs + best_fold):,.0f} events/s per core (state only)")
    print(f"  recommend {best_rec:8.1f} µs/call  => {1e6 / best_rec:,.0f} recs/s per core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movielens")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--max-events", type=int, default=0, help="0 = all")
    parser.add_argument("--recs", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    bench(args.dataset, args.data_dir, max_events=args.max_events, recs=args.recs,
          repeat=args.repeat)


if __name__ == "__main__":
    main()
