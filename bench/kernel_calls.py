"""What each kernel of the recommend call costs, on the arguments real calls give it.

    python bench/kernel_calls.py --data-dir ../shared/data/online-retail

Builds a default worker's Recommender as ``bench_eval.py`` does (with the model's text
space), replays ``--max-events`` events, then asks ``recommend`` for ``--users`` users at
the last event's time while recording the arguments of every call to the kernels below.
Each kernel is then timed alone on those arguments (best of ``--repeat`` passes), and the
script prints its calls per recommendation and µs per call:

- ``_mixture.best_of`` and ``_mixture.mix_lists`` (stream_rec/core/_mixture.c);
- ``_features.*`` (stream_rec/core/_features.c), where the checkout has them;
- ``TextSpace.query`` and ``TextSpace.cosines``.

Run with ``PYTHONPATH`` pointing at another checkout for its figures (kernels it lacks are
left out).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_eval import served_recommender

from stream_rec.core import _mixture
from stream_rec.core.profile import UserProfile
from stream_rec.core.text_space import TextSpace
from stream_rec.datasets import load_dataset


def _record(owner: Any, name: str, calls: dict[str, list[tuple[Any, ...]]], label: str
            ) -> Callable[[], None]:
    """Wrap ``owner.name`` to append each call's arguments to ``calls[label]``; returns
    what undoes it."""
    original = getattr(owner, name)
    calls[label] = []

    def recording(*args: Any) -> Any:
        calls[label].append(args)
        return original(*args)

    setattr(owner, name, recording)
    return lambda: setattr(owner, name, original)


def _time(function: Callable[..., Any], args: list[tuple[Any, ...]], repeat: int) -> float:
    """Best mean µs per call over ``repeat`` passes."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for call in args:
            function(*call)
        best = min(best, (time.perf_counter() - started) / len(args) * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="online-retail")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--max-events", type=int, default=60_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    data = load_dataset(args.dataset, args.data_dir)
    events = data.events[:args.max_events]
    rec = served_recommender(list(data.catalog), model=True)
    profiles: dict[str, UserProfile] = {}
    for event in events:
        before = profiles.get(event.user_id) or UserProfile.new(event.user_id)
        obs = rec.observe(before, event)
        if obs.delta is not None:
            rec.stats.learn_one(obs.delta)
        if obs.applied:
            profiles[event.user_id] = obs.profile
    users = random.Random(0).sample(sorted(profiles), min(args.users, len(profiles)))
    now = events[-1].ts_ms

    kernels: dict[str, Callable[..., Any]] = {
        "_mixture.best_of": _mixture.best_of, "_mixture.mix_lists": _mixture.mix_lists}
    calls: dict[str, list[tuple[Any, ...]]] = {}
    undo = [_record(_mixture, "best_of", calls, "_mixture.best_of"),
            _record(_mixture, "mix_lists", calls, "_mixture.mix_lists")]
    try:
        from stream_rec.core import _features  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # an older checkout
        _features = None
    if _features is not None:
        for name in ("assemble", "user_columns", "category_column", "category_trending"):
            if hasattr(_features, name):
                kernels[f"_features.{name}"] = getattr(_features, name)
                undo.append(_record(_features, name, calls, f"_features.{name}"))
    space = rec.text_space
    assert isinstance(space, TextSpace)
    for name in ("query", "cosines"):
        kernels[f"TextSpace.{name}"] = getattr(space, name)
        undo.append(_record(space, name, calls, f"TextSpace.{name}"))
    try:
        for user in users:
            rec.recommend(profiles[user], now_ms=now)
    finally:
        for restore in undo:
            restore()

    print(f"{args.dataset}: {len(events):,} events, {len(users)} recommendations")
    print("| kernel | calls per recommendation | µs per call |")
    print("|---|---|---|")
    for label, function in kernels.items():
        recorded = calls.get(label, [])
        if recorded:
            print(f"| {label} | {len(recorded) / len(users):.2f} | "
                  f"{_time(function, recorded, args.repeat):.2f} |")


if __name__ == "__main__":
    main()
