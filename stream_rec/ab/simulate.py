"""A simulated A/B test: replay a real dataset and serve every user by every arm (paired).

Every event goes, in time order, through :meth:`Recommender.observe` of each state group
(arms with the same item-statistics and profile parameters share one state, as in
``stream_rec.evaluation.replay``), and through each learned ranker's learner first, as the
replay does. Before an event is applied, *every* arm is asked for the user's top-k list if
the user has history: the comparison is paired, each arm answering the same users at the
same moments, so the difference between arms is not blurred by which users each arm drew.
The online A/B assigns each user one arm (the router's sticky hash); this offline replay
does not need to.

Each arm's lists go to its own :class:`Attribution` as recommendation messages; a list
that holds the item the user really touches next gets a synthetic ``rec_click``, and the
real event goes to every arm's attribution, so a purchase of a recommended item is a
conversion. With a model arm, the whole catalogue is embedded up front, as a worker that
reads the catalog topic holds every item's vector before any event arrives.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_rec.ab.attribution import DEFAULT_WINDOW_MS, Attribution
from stream_rec.ab.stats import paired_rate_difference
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, Event
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.learned_ranker import StreamLearner
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import Recommender, rec_id_for
from stream_rec.datasets import load_dataset
from stream_rec.errors import ConfigError, ModelError
from stream_rec.evaluation.arms import make_arms
from stream_rec.evaluation.model_arm import build_model_hooks
from stream_rec.evaluation.replay import ModelHooks, arm_recommender
from stream_rec.evaluation.report import write_json_then_pyplot
from stream_rec.model.files import resolve_model_path

__all__ = ["CHART", "arm_names", "simulate", "write_report"]

CHART = "ab_ctr.png"


@dataclass
class _Group:
    """State shared by arms that would build identical state from the same events."""

    stats: ItemStats
    observer: Recommender
    profiles: dict[str, UserProfile] = field(default_factory=dict)


@dataclass
class _ArmRun:
    """One arm's recommender, learner and per-user tallies during the replay."""

    name: str
    recommender: Recommender
    group: _Group
    attribution: Attribution
    learner: StreamLearner | None = None
    clicks: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    converted: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def arm_names(spec: str) -> list[str]:
    """The arm names of ``"fast,slm"`` (an A/B spec's ``name:weight`` is accepted; the
    weights play no part in a paired replay)."""
    names = [part.split(":", 1)[0].strip() for part in spec.split(",")]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise ConfigError(f"ab simulate: --arms must name at least one arm, e.g. 'fast,slm'; "
                          f"got {spec!r}")
    return names


def simulate(dataset_name: str, data_dir: Path | str, *, arms_spec: str = "fast,slm",
             limit_events: int = 0, k: int = 10, window_ms: int = DEFAULT_WINDOW_MS,
             model_path: str = "") -> dict[str, Any]:
    """Replay ``dataset_name`` serving every user by each arm of ``arms_spec``; compare
    every arm with the first on the same users (paired differences, user-clustered CIs).

    ``limit_events`` > 0 replays only the first N events (time order). Model arms are
    dropped when the model cannot be loaded (see ``notes``).
    """
    if k <= 0:
        raise ConfigError(f"ab simulate: k must be > 0, got {k}")
    started = time.perf_counter()
    names = arm_names(arms_spec)
    dataset = load_dataset(dataset_name, Path(data_dir))
    events = dataset.events[:limit_events] if limit_events > 0 else dataset.events
    notes: list[str] = []
    hooks = None
    if any(_is_model_arm(n) for n in names):
        hooks = _load_model(model_path, dataset.catalog, notes)
        if hooks is None:
            names = _without_model_arms(names, notes)
    runs = _arm_runs(names, dataset.catalog, k, hooks, window_ms)
    groups = list({id(run.group): run.group for run in runs}.values())

    served: dict[str, int] = defaultdict(int)
    last_event: dict[str, Event] = {}
    perf = time.perf_counter_ns
    for event in events:
        user = event.user_id
        if user in last_event:
            served[user] += 1
            for run in runs:
                _serve(run, event, last_event[user], perf)
        for run in runs:
            before = run.attribution.arms[run.name].converted_recs
            run.attribution.on_event(event)
            run.converted[user] += run.attribution.arms[run.name].converted_recs - before
        _learn(runs, groups, event)
        last_event[user] = event

    users = sorted(served)
    trials = [served[u] for u in users]
    comparisons = [_paired(runs[0], other, users, trials) for other in runs[1:]]
    return {
        "dataset": dataset_name,
        "events": len(events),
        "limit_events": limit_events,
        "k": k,
        "arms_spec": ",".join(names),
        "design": "paired: every user served by every arm at every event",
        "window_ms": window_ms,
        "asked": sum(trials),
        "users": len(users),
        "arms": {run.name: _arm_result(run.attribution.arms[run.name].summary())
                 for run in runs},
        "comparisons": comparisons,
        "difference": _ctr_difference(comparisons),
        "notes": notes,
        "wall_s": round(time.perf_counter() - started, 3),
    }


def write_report(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``ab.json`` and, when matplotlib is importable, the CTR chart; return paths."""

    paths = [out_dir / "ab.json"]
    plt = write_json_then_pyplot(result, paths[0])
    if plt is None:
        return paths

    names = list(result["arms"])
    ctr = [result["arms"][n]["ctr"] for n in names]
    values = [c["value"] * 100 for c in ctr]
    errors = [[(c["value"] - c["ci_low"]) * 100 for c in ctr],
              [(c["ci_high"] - c["value"]) * 100 for c in ctr]]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(names, values, yerr=errors, capsize=8, color="#4c72b0")
    ax.set_ylabel("simulated CTR (%) with Wilson 95% CI")
    diff = result.get("difference") or {}
    p = diff.get("p_value")
    ax.set_title(f"{result['dataset']}: {result['events']:,} events, paired"
                 + (f", p = {p:.3g}" if isinstance(p, float) else ""), fontsize=10)
    fig.tight_layout()
    chart = out_dir / CHART
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    return [*paths, chart]


def _is_model_arm(name: str) -> bool:
    return name.startswith("slm")


def _arm_runs(names: Sequence[str], catalog_items: Sequence[CatalogItem], k: int,
              hooks: ModelHooks | None, window_ms: int) -> list[_ArmRun]:
    """One run per arm; arms with equal state keys share a group (its stats and profiles)."""
    arms = make_arms(names, ablation=False, model_available=hooks is not None)
    catalog = Catalog(catalog_items)
    groups: dict[Any, _Group] = {}
    runs = []
    for arm in arms:
        group = groups.get(arm.state_key)
        if group is None:
            stats = ItemStats(arm.stats)
            group = groups[arm.state_key] = _Group(
                stats, Recommender(catalog, stats, profile_params=arm.profile))
        recommender = arm_recommender(arm, catalog, group.stats, top_k=k, hooks=hooks)
        runs.append(_ArmRun(
            arm.name, recommender, group,
            Attribution(window_ms=window_ms, arms=[arm.name]),
            learner=recommender.learner() if recommender.ranker is not None else None))
    return runs


def _serve(run: _ArmRun, event: Event, trigger: Event, perf: Callable[[], int]) -> None:
    """Ask ``run``'s arm for the user's list before ``event``; a hit is a synthetic click."""
    user = event.user_id
    profile = run.group.profiles.get(user) or UserProfile.new(user)
    t0 = perf()
    items = run.recommender.recommend(profile, now_ms=event.ts_ms, trigger=trigger)
    latency_ms = (perf() - t0) / 1e6
    rec_id = rec_id_for(user, event.event_id)
    run.attribution.on_recommendation({
        "rec_id": rec_id, "user_id": user, "arm": run.name,
        "items": [{"item_id": it.item_id} for it in items],
        "latency_ms": latency_ms, "degraded": False, "generated_at_ms": event.ts_ms})
    if event.item_id is not None and any(it.item_id == event.item_id for it in items):
        run.clicks[user] += 1
        run.attribution.on_event(Event(f"{event.event_id}~click", "rec_click", user,
                                       event.ts_ms, item_id=event.item_id, rec_id=rec_id))


def _learn(runs: Sequence[_ArmRun], groups: Sequence[_Group], event: Event) -> None:
    """Apply ``event`` as the replay does: each learner sees it first (it labels the list
    before it), then each group observes it and folds its delta at once."""
    user = event.user_id
    for run in runs:
        if run.learner is not None:
            run.learner.on_event(run.group.profiles.get(user) or UserProfile.new(user), event)
    for group in groups:
        before = group.profiles.get(user) or UserProfile.new(user)
        obs = group.observer.observe(before, event)
        if obs.delta is not None:
            group.stats.learn_one(obs.delta)
        if obs.applied:
            group.profiles[user] = obs.profile


def _load_model(model_path: str, items: Sequence[CatalogItem],
                notes: list[str]) -> ModelHooks | None:
    try:
        hooks = build_model_hooks(resolve_model_path(model_path), items)
    except (ImportError, ModelError, OSError) as exc:
        notes.append(f"model arms dropped: the language model is not loadable here ({exc})")
        return None
    notes.append(f"model loaded; embedded the whole catalogue ({len(items)} items) before "
                 "the first event")
    return hooks


def _without_model_arms(names: Sequence[str], notes: list[str]) -> list[str]:
    kept = [n for n in names if not _is_model_arm(n)]
    if not kept:
        kept = ["fast"]
        notes.append("no arm without a model was asked for: running 'fast' alone")
    notes.append(f"arms now {','.join(kept)}")
    return kept


def _arm_result(summary: dict[str, Any]) -> dict[str, Any]:
    low, high = summary["ctr_ci"]
    conv_low, conv_high = summary["conversion_rate_ci"]
    return {
        "served": summary["served"],
        "clicks": summary["clicks"],
        "ctr": {"value": summary["ctr"], "ci_low": low, "ci_high": high},
        "conversions": summary["conversions"],
        "converted_recs": summary["converted_recs"],
        "conversion_rate": {"value": summary["conversion_rate"], "ci_low": conv_low,
                            "ci_high": conv_high},
        "revenue": summary["revenue"],
        "latency_ms_p50": summary["latency_ms_p50"],
        "latency_ms_p99": summary["latency_ms_p99"],
        "fallbacks": summary["fallbacks"],
    }


def _paired(a: _ArmRun, b: _ArmRun, users: Sequence[str],
            trials: Sequence[int]) -> dict[str, Any]:
    """Arm ``a`` minus arm ``b`` on CTR and conversion rate, paired by user."""
    out: dict[str, Any] = {"arm_a": a.name, "arm_b": b.name, "users": len(users),
                           "method": "paired by user; user-clustered 95% CI and z-test"}
    for metric, hits_a, hits_b in (("ctr", a.clicks, b.clicks),
                                   ("conversion_rate", a.converted, b.converted)):
        test = paired_rate_difference([hits_a.get(u, 0) for u in users],
                                      [hits_b.get(u, 0) for u in users], trials)
        out[metric] = {"diff": test.diff, "ci": [test.ci_low, test.ci_high], "z": test.z,
                       "p_value": test.p_value, "significant": test.significant}
    return out


def _ctr_difference(comparisons: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The first comparison's CTR in the shape ``ab report`` prints."""
    if not comparisons:
        return None
    first = comparisons[0]
    ctr = first["ctr"]
    return {"arm_a": first["arm_a"], "arm_b": first["arm_b"], "ctr_diff": ctr["diff"],
            "ci": ctr["ci"], "z": ctr["z"], "p_value": ctr["p_value"],
            "significant": ctr["significant"], "paired": True, "users": first["users"]}
