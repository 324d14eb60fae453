"""A simulated A/B test: replay a real dataset through the worker's recommender per arm.

Every event goes, in time order, through :meth:`Recommender.observe` of each state group
(arms with the same item-statistics and profile parameters share one state, as in
``stream_rec.evaluation.replay``). Before an event is applied, the user's arm (the
:class:`~stream_rec.core.router.Router`, sticky by user) is asked for a top-k list if the user
has history; the list goes to :class:`Attribution` as a recommendation message, a list that
holds the item the user really touches next gets a synthetic ``rec_click``, and the real
event itself goes to attribution too, so a purchase of a recommended item is a conversion.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_rec.ab.attribution import DEFAULT_WINDOW_MS, Attribution
from stream_rec.ab.stats import two_proportion_test
from stream_rec.core.candidates import VectorSearch
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, Event
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import Recommender, rec_id_for
from stream_rec.core.router import Arm as RouterArm
from stream_rec.core.router import Router
from stream_rec.datasets import load_dataset
from stream_rec.errors import ConfigError, ModelError
from stream_rec.evaluation.arms import Arm, make_arms
from stream_rec.evaluation.model_arm import build_model_hooks
from stream_rec.evaluation.report import write_json_then_pyplot
from stream_rec.model.files import resolve_model_path

__all__ = ["CHART", "simulate", "write_report"]

CHART = "ab_ctr.png"
_PROTOCOL = "time-split"  # selects the slm arm's validated `similar` weight


@dataclass
class _Group:
    """State shared by arms that would build identical state from the same events."""

    stats: ItemStats
    observer: Recommender
    profiles: dict[str, UserProfile] = field(default_factory=dict)


def simulate(dataset_name: str, data_dir: Path | str, *, arms_spec: str = "fast:0.5,slm:0.5",
             salt: str = "exp-1", limit_events: int = 0, k: int = 10,
             window_ms: int = DEFAULT_WINDOW_MS, model_path: str = "") -> dict[str, Any]:
    """Replay ``dataset_name`` as an A/B test between the arms of ``arms_spec``.

    ``limit_events`` > 0 replays only the first N events (time order). Model arms fall back
    to the arms that need no model when the model cannot be loaded (see ``notes``).
    """

    if k <= 0:
        raise ConfigError(f"ab simulate: k must be > 0, got {k}")
    started = time.perf_counter()
    router = Router.from_spec(arms_spec, salt)
    dataset = load_dataset(dataset_name, Path(data_dir))
    events = dataset.events[:limit_events] if limit_events > 0 else dataset.events
    notes: list[str] = []
    vector_search = None
    if any(_is_model_arm(a.name) for a in router.arms):
        used = {e.item_id for e in events if e.item_id}
        vector_search = _load_model(model_path, [c for c in dataset.catalog
                                                 if c.item_id in used], notes)
        if vector_search is None:
            router = _without_model_arms(router, notes)
    arms = make_arms([a.name for a in router.arms], ablation=False,
                     model_available=vector_search is not None, dataset=dataset_name,
                     protocol=_PROTOCOL)
    catalog = Catalog(dataset.catalog)
    groups: dict[Any, _Group] = {}
    recommenders: dict[str, tuple[Recommender, _Group]] = {}
    for arm in arms:
        group = groups.get(arm.state_key)
        if group is None:
            stats = ItemStats(arm.stats)
            group = groups[arm.state_key] = _Group(
                stats, Recommender(catalog, stats, profile_params=arm.profile))
        recommenders[arm.name] = (_recommender(arm, catalog, group.stats, k, vector_search),
                                  group)

    attribution = Attribution(window_ms=window_ms, arms=[a.name for a in arms])
    assignment: dict[str, str] = {}
    last_event: dict[str, Event] = {}
    asked = 0
    perf = time.perf_counter_ns
    for event in events:
        user = event.user_id
        arm_name = assignment.get(user)
        if arm_name is None:
            arm_name = assignment[user] = router.assign(user)
        recommender, group = recommenders[arm_name]
        profile = group.profiles.get(user)
        if profile is not None:
            group.stats.trending(event.ts_ms)  # lazy refresh, outside the timed call
            t0 = perf()
            items = recommender.recommend(profile, now_ms=event.ts_ms,
                                          trigger=last_event.get(user))
            latency_ms = (perf() - t0) / 1e6
            rec_id = rec_id_for(user, event.event_id)
            attribution.on_recommendation({
                "rec_id": rec_id, "user_id": user, "arm": arm_name,
                "items": [{"item_id": it.item_id} for it in items],
                "latency_ms": latency_ms, "degraded": False, "generated_at_ms": event.ts_ms})
            asked += 1
            if event.item_id is not None and any(it.item_id == event.item_id for it in items):
                attribution.on_event(Event(f"{event.event_id}~click", "rec_click", user,
                                           event.ts_ms, item_id=event.item_id, rec_id=rec_id))
        attribution.on_event(event)
        for state in groups.values():
            before = state.profiles.get(user) or UserProfile.new(user)
            obs = state.observer.observe(before, event)
            if obs.delta is not None:
                state.stats.learn_one(obs.delta)
            if obs.applied:
                state.profiles[user] = obs.profile
        last_event[user] = event

    names = [a.name for a in router.arms]
    users_per_arm = dict.fromkeys(names, 0)
    for name in assignment.values():
        users_per_arm[name] += 1
    return {
        "dataset": dataset_name,
        "events": len(events),
        "limit_events": limit_events,
        "k": k,
        "salt": salt,
        "arms_spec": ",".join(f"{a.name}:{a.weight:g}" for a in router.arms),
        "window_ms": window_ms,
        "asked": asked,
        "arms": {name: _arm_result(attribution.arms[name].summary()) for name in names},
        "difference": _difference(attribution, names),
        "assignment": users_per_arm,
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
    ax.set_title(f"{result['dataset']}: {result['events']:,} events"
                 + (f", p = {p:.3g}" if isinstance(p, float) else ""), fontsize=10)
    fig.tight_layout()
    chart = out_dir / CHART
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    return [*paths, chart]


def _is_model_arm(name: str) -> bool:
    return name.startswith("slm")


def _recommender(arm: Arm, catalog: Catalog, stats: ItemStats, k: int,
                 vector_search: VectorSearch | None) -> Recommender:
    return Recommender(catalog, stats, rank_params=arm.rank_params(k),
                       profile_params=arm.profile,
                       vector_search=vector_search if arm.needs_model else None)


def _load_model(model_path: str, items: Sequence[CatalogItem],
                notes: list[str]) -> VectorSearch | None:
    try:

        hooks = build_model_hooks(resolve_model_path(model_path), items)
    except (ImportError, ModelError, OSError) as exc:
        notes.append(f"model arms dropped: the language model is not loadable here ({exc})")
        return None
    notes.append(f"model loaded; embedded {len(items)} catalog items seen in the replay")
    return hooks.vector_search


def _without_model_arms(router: Router, notes: list[str]) -> Router:
    kept = tuple(a for a in router.arms if not _is_model_arm(a.name))
    if not kept:
        kept = (RouterArm("fast", 1.0),)
        notes.append("no arm without a model was asked for: running 'fast' alone")
    total = sum(a.weight for a in kept) or 1.0
    spec = ",".join(f"{a.name}:{a.weight / total}" for a in kept)
    notes.append(f"arms now {spec} (weights renormalised)")
    return Router.from_spec(spec, router.salt)


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


def _difference(attribution: Attribution, names: Sequence[str]) -> dict[str, Any] | None:
    if len(names) < 2:
        return None
    a, b = attribution.arms[names[0]], attribution.arms[names[1]]
    test = two_proportion_test(a.clicks, a.served, b.clicks, b.served)
    return {"arm_a": names[0], "arm_b": names[1], "ctr_diff": test.diff,
            "ci": [test.ci_low, test.ci_high], "z": test.z, "p_value": test.p_value,
            "significant": test.significant}
