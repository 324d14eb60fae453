"""Per-event CPU costs of the recommender a default worker serves, on a real dataset.

    python bench/bench_eval.py --dataset online-retail --data-dir ../shared/data/online-retail

Builds the Recommender from default ``Settings`` as ``serving.runtime.build_runtime`` does
(``stream_rec/assembly.py``: stats, profile and rank parameters, the learned ranker, and,
unless ``--no-model``, the default model's text space over the whole catalogue), replays
the dataset's events as the worker folds them (the learner labels the list before each
event, then ``observe`` and ``ItemStats.learn_one``), then asks ``recommend`` for a sample
of users at the last event's time. Reports CPU µs per event (learn, observe, fold) and the
mean / p50 / p90 per recommendation (thread CPU time, single thread), each the best of
``--repeat`` passes over the same users to damp noise from other work.

``--live N`` also times the worker's whole per-event path while the stream runs: for each
of the last ``N`` events, learn + observe + fold + ``recommend`` for that user with the
event as trigger. Statistics change between calls there (as in a worker), so caches that
outlive one delta help less than at the end of the replay.

The script only uses APIs that older commits also have, so the same command run with
``PYTHONPATH`` pointing at another checkout gives a back-to-back before/after figure.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from stream_rec import assembly
from stream_rec.config import Settings
from stream_rec.core.catalog import Catalog
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.learned_ranker import LearnedRanker
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import Recommender
from stream_rec.datasets import load_dataset


def served_recommender(catalog_items: list, *, model: bool) -> Recommender:
    """The Recommender of a worker with default settings (``model``: with its text space)."""
    settings = Settings()
    learner = assembly.learner_params(settings)
    rec = Recommender(Catalog(catalog_items), ItemStats(assembly.stats_params(settings)),
                      rank_params=assembly.rank_params(settings),
                      profile_params=assembly.profile_params(settings),
                      ranker=LearnedRanker(learner) if learner is not None else None)
    if model:
        # lazy: loads llama.cpp and embeds the catalogue (minutes on a large one)
        from stream_rec.evaluation.model_arm import build_model_hooks
        from stream_rec.model.files import resolve_model_path

        rec.text_space = build_model_hooks(resolve_model_path(settings.model_path),
                                           catalog_items).text_space
    return rec


def bench(dataset: str, data_dir: Path, *, max_events: int, recs: int, repeat: int,
          model: bool, live: int = 0) -> None:
    data = load_dataset(dataset, data_dir)
    events = data.events[:max_events] if max_events else data.events
    rec = served_recommender(list(data.catalog), model=model)
    learner = rec.learner() if rec.ranker is not None else None
    profiles: dict[str, UserProfile] = {}
    clock = time.thread_time_ns
    learn_ns = obs_ns = fold_ns = live_ns = 0
    live_from = len(events) - min(live, len(events))
    for k, event in enumerate(events):
        before = profiles.get(event.user_id) or UserProfile.new(event.user_id)
        t0 = clock()
        if learner is not None:
            learner.on_event(before, event)
        t1 = clock()
        obs = rec.observe(before, event)
        t2 = clock()
        if obs.delta is not None:
            rec.stats.learn_one(obs.delta)
        fold_ns += clock() - t2
        obs_ns += t2 - t1
        learn_ns += t1 - t0
        if obs.applied:
            profiles[event.user_id] = obs.profile
        if k >= live_from:
            rec.recommend(profiles.get(event.user_id) or before, now_ms=event.ts_ms,
                          trigger=event)
            live_ns += clock() - t0
    users = random.Random(0).sample(sorted(profiles), min(recs, len(profiles)))
    now = events[-1].ts_ms
    best: list[int] | None = None
    for _ in range(repeat):
        times = []
        for user in users:
            t0 = clock()
            rec.recommend(profiles[user], now_ms=now)
            times.append(clock() - t0)
        if best is None or sum(times) < sum(best):
            best = times
    assert best is not None
    best.sort()
    mean_us = sum(best) / len(best) / 1e3
    n = len(events)
    print(f"{dataset}: {n:,} events, {len(users)} recommendations, model "
          f"{'on' if model else 'off'}, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"  learn     {learn_ns / n / 1e3:8.1f} µs/event (the ranker's label step)")
    print(f"  observe   {obs_ns / n / 1e3:8.1f} µs/event")
    print(f"  fold      {fold_ns / n / 1e3:8.1f} µs/event")
    print(f"  recommend {mean_us:8.1f} µs/call mean, p50 {best[len(best) // 2] / 1e3:.1f}, "
          f"p90 {best[int(len(best) * 0.9)] / 1e3:.1f}  => {1e6 / mean_us:,.0f} recs/s "
          f"per core")
    if live:
        per_event = live_ns / min(live, n) / 1e3
        print(f"  live      {per_event:8.1f} µs/event learn+observe+fold+recommend over the "
              f"last {min(live, n):,} events  => {1e6 / per_event:,.0f} recs/s per core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="online-retail")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--max-events", type=int, default=0, help="0 = all")
    parser.add_argument("--recs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--live", type=int, default=0, metavar="N",
                        help="time learn+observe+fold+recommend on each of the last N events")
    parser.add_argument("--no-model", action="store_true",
                        help="without the model's text space (the `fast` ablation)")
    args = parser.parse_args()
    bench(args.dataset, args.data_dir, max_events=args.max_events, recs=args.recs,
          repeat=args.repeat, model=not args.no_model, live=args.live)


if __name__ == "__main__":
    main()
