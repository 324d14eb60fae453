"""Replay a protocol's split through the worker's recommender and score every test case.

One pass over ``split.train_events`` per *state group* (arms whose item statistics and
profiles are built by the same parameters): each event goes through
:meth:`Recommender.observe`, its delta is folded into the group's :class:`ItemStats` at
once (as the worker that owns the user does; the other replicas fold it from the
item-deltas topic within ~100 ms), and before ``train_events[case.at_index]`` every arm of
the group is asked :meth:`Recommender.recommend` for the case's user (with the case's
trigger event, when it has one, as the worker passes the event it answers). Arms of a group
share the state (it would be identical) but each has its own Recommender. With one worker
and the events in this order, the worker's answers are these lists exactly (``served``
protocol, ``stream-rec verify``).
"""

from __future__ import annotations

import gc
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psutil
from tqdm import tqdm

from stream_rec.core.candidates import VectorSearch
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, Event, RecItem
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.learned_ranker import LearnedRanker, StreamLearner
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import Recommender
from stream_rec.core.text_space import TextSpace
from stream_rec.datasets import Split, TestCase
from stream_rec.evaluation.arms import Arm
from stream_rec.evaluation.metrics import RankingAccumulator

__all__ = ["ArmTally", "CaseHook", "GroupTally", "ModelHooks", "arm_recommender", "curve_ks",
           "replay_group", "rss_mb"]

_RSS_EVERY = 4096


@dataclass
class ModelHooks:
    """What a model arm adds to a group: the ``similar`` source's search, and optionally a
    per-event profile update ``enrich(before, after, event)``."""

    vector_search: VectorSearch
    enrich: Callable[[UserProfile, UserProfile, Event], UserProfile] | None = None
    rss_mb: float = 0.0  # the model's resident size, counted into the group's peak
    text_space: TextSpace | None = None  # what the learned ranker's model features read
    # the in-process rerank, rerank(profile, items, top_n) → items (arms with rerank_top_n)
    rerank: Callable[[UserProfile, list[RecItem], int], list[RecItem]] | None = None


# called after every arm answered a case: (case, the user's profile, the shared item
# statistics, the arms' tallies)
CaseHook = Callable[[TestCase, UserProfile, ItemStats, list["ArmTally"]], None]

# Cold-start slices, reported for every arm: the target item had fewer than COLD_ITEM
# interactions before the case (relevant = those cold items only), or the user had at most
# NEW_USER_EVENTS events before it.
COLD_ITEM = 5
NEW_USER_EVENTS = 2
SLICES = ("cold_item", "new_user")


@dataclass
class ArmTally:
    """Running results of one arm."""

    arm: Arm
    recommender: Recommender
    metrics: RankingAccumulator
    curve: RankingAccumulator
    latency_ns: list[int] = field(default_factory=list)
    cpu_ns: int = 0
    short_lists: int = 0  # cases answered with fewer than top_k items
    squares: dict[str, float] = field(default_factory=dict)  # per-metric sum of squares
    slices: dict[str, RankingAccumulator] = field(default_factory=dict)
    learner: StreamLearner | None = None
    learn_ns: int = 0
    per_case: list[dict[str, float]] = field(default_factory=list)  # in case order
    last_ranked: list[str] = field(default_factory=list)  # the list of the latest case

    def standard_errors(self) -> dict[str, float]:
        """Standard error of each metric's mean over the cases."""
        n = self.metrics.count
        if n < 2:
            return dict.fromkeys(self.metrics.keys, math.nan)
        means = self.metrics.result()
        return {k: math.sqrt(max(0.0, self.squares.get(k, 0.0) / n - means[k] ** 2) / (n - 1))
                for k in self.metrics.keys}


@dataclass
class GroupTally:
    """Running costs of one state group's replay."""

    arms: tuple[str, ...]
    events: int = 0
    applied: int = 0
    observe_ns: int = 0
    fold_ns: int = 0
    enrich_ns: int = 0
    rss_base_mb: float = 0.0
    rss_peak_mb: float = 0.0
    wall_s: float = 0.0
    users: int = 0
    items: int = 0


def curve_ks(top_k: int) -> tuple[int, ...]:
    """Cut-offs for metric@k curves, up to ``top_k``."""
    return tuple(k for k in (1, 2, 3, 5, 10, 20, 50) if k <= top_k) or (top_k,)


def rss_mb() -> float:
    """This process's resident set size now, in MB."""

    return float(psutil.Process().memory_info().rss) / 2**20


def arm_recommender(arm: Arm, catalog: Catalog, stats: ItemStats, *, top_k: int,
                    hooks: ModelHooks | None = None) -> Recommender:
    """The worker's Recommender configured as ``arm`` (the model's parts only for a model
    arm, and only when ``hooks`` carry them)."""
    model = hooks if hooks is not None and arm.needs_model else None
    return Recommender(
        catalog, stats, rank_params=arm.rank_params(top_k), profile_params=arm.profile,
        vector_search=model.vector_search if model else None,
        ranker=LearnedRanker(arm.learner) if arm.learner is not None else None,
        text_space=model.text_space if model else None)


def replay_group(
    split: Split,
    catalog_items: Sequence[CatalogItem],
    arms: Sequence[Arm],
    *,
    top_k: int,
    cases: Sequence[TestCase],
    hooks: ModelHooks | None = None,
    progress: bool = True,
    on_case: CaseHook | None = None,
) -> tuple[list[ArmTally], GroupTally]:
    """Stream the split once for arms sharing a state key; return per-arm and group tallies.

    ``on_case(case, profile, stats, tallies)``, when given, is called after every arm has
    answered a case, with the state the arms answered from (for diagnostics; it must not
    change the state)."""
    if not arms or len({a.state_key for a in arms}) != 1:
        raise ValueError("replay_group needs one or more arms with the same state_key")
    gc.collect()
    group = GroupTally(arms=tuple(a.name for a in arms), rss_base_mb=rss_mb())
    catalog = Catalog(catalog_items)
    stats = ItemStats(arms[0].stats)
    ks = curve_ks(top_k)
    tallies = [
        ArmTally(
            arm=arm,
            recommender=arm_recommender(arm, catalog, stats, top_k=top_k, hooks=hooks),
            metrics=RankingAccumulator(split.metrics),
            curve=RankingAccumulator.for_ks(ks, ("hr", "recall", "ndcg")),
            slices={name: RankingAccumulator(split.metrics) for name in SLICES},
        )
        for arm in arms
    ]
    for tally in tallies:
        if tally.recommender.ranker is not None:
            tally.learner = tally.recommender.learner()
    learners = [t for t in tallies if t.learner is not None]
    observer = tallies[0].recommender
    profiles: dict[str, UserProfile] = {}
    events = split.train_events
    last_index = max((c.at_index for c in cases), default=-1)
    n_events = min(len(events), last_index)
    enrich = hooks.enrich if hooks is not None else None
    peak = group.rss_base_mb + (hooks.rss_mb if hooks else 0.0)
    started = time.perf_counter()
    bar = _progress(n_events, f"replay {'+'.join(group.arms)[:48]}", progress)
    next_case = 0
    perf = time.perf_counter_ns
    for i in range(n_events):
        while next_case < len(cases) and cases[next_case].at_index == i:
            _ask(cases[next_case], profiles, tallies, top_k, stats, group, hooks, on_case)
            next_case += 1
        event = events[i]
        before = profiles.get(event.user_id)
        if before is None:
            before = UserProfile.new(event.user_id)
        for tally in learners:  # the next event labels the list before it; delta not folded
            l0 = perf()
            tally.learner.on_event(before, event)  # type: ignore[union-attr]
            tally.learn_ns += perf() - l0
        t0 = perf()
        obs = observer.observe(before, event)
        t1 = perf()
        if obs.delta is not None:
            stats.learn_one(obs.delta)
        t2 = perf()
        group.observe_ns += t1 - t0
        group.fold_ns += t2 - t1
        if obs.applied:
            profile = obs.profile
            if enrich is not None:
                profile = enrich(before, profile, event)
                group.enrich_ns += perf() - t2
            profiles[event.user_id] = profile
            group.applied += 1
        if i % _RSS_EVERY == 0:
            peak = max(peak, rss_mb())
            bar.update(_RSS_EVERY if i else 1)
    bar.update(max(0, n_events - bar.n))
    bar.close()
    group.events = n_events
    while next_case < len(cases):
        _ask(cases[next_case], profiles, tallies, top_k, stats, group, hooks, on_case)
        next_case += 1
    group.rss_peak_mb = max(peak, rss_mb())
    group.wall_s = time.perf_counter() - started
    group.users = len(profiles)
    group.items = len(stats)
    return tallies, group


def _ask(case: TestCase, profiles: dict[str, UserProfile], tallies: list[ArmTally],
         top_k: int, stats: ItemStats, group: GroupTally, hooks: ModelHooks | None,
         on_case: CaseHook | None) -> None:
    profile = profiles.get(case.user_id) or UserProfile.new(case.user_id)
    cold = frozenset(i for i in case.relevant if stats.counts.get(i, 0) < COLD_ITEM)
    new_user = sum(n for _, n in profile.counts) <= NEW_USER_EVENTS
    for tally in tallies:
        c0 = time.thread_time_ns()
        w0 = time.perf_counter_ns()
        recs = tally.recommender.recommend(profile, now_ms=case.now_ms, trigger=case.trigger,
                                           exclude=case.masked, allow=case.candidates)
        if tally.arm.rerank_top_n > 1 and len(recs) > 1:
            if hooks is None or hooks.rerank is None:
                raise ValueError(f"arm {tally.arm.name!r} reranks: build its model hooks "
                                 "with rerank=True")
            recs = hooks.rerank(profile, recs, tally.arm.rerank_top_n)
        w1 = time.perf_counter_ns()
        tally.cpu_ns += time.thread_time_ns() - c0
        tally.latency_ns.append(w1 - w0)
        ranked = [r.item_id for r in recs]
        tally.last_ranked = ranked
        if len(ranked) < top_k:
            tally.short_lists += 1
        values = tally.metrics.add(ranked, case.relevant)
        tally.per_case.append(values)
        for key, value in values.items():
            tally.squares[key] = tally.squares.get(key, 0.0) + value * value
        tally.curve.add(ranked, case.relevant)
        if cold:
            tally.slices["cold_item"].add(ranked, cold)
        if new_user:
            tally.slices["new_user"].add(ranked, case.relevant)
    if on_case is not None:
        on_case(case, profile, stats, tallies)


class _NoBar:
    n = 0

    def update(self, n: int) -> None:
        self.n += n

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool) -> _NoBar:
    if not enabled:
        return _NoBar()

    bar: _NoBar = tqdm(total=total, desc=desc, unit="ev", unit_scale=True, mininterval=0.5,
                       file=sys.stderr, leave=False)
    return bar
