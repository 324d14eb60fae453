"""``evaluate()``: load a dataset, split it, replay it through every arm, write the report."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import psutil

from stream_rec.core import codec
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.percentiles import percentile
from stream_rec.core.profile import UserProfile
from stream_rec.datasets import DEFAULT_PROTOCOLS, Split, TestCase, load_dataset
from stream_rec.errors import ConfigError
from stream_rec.evaluation.arms import Arm, make_arms
from stream_rec.evaluation.reference import (
    FOUNDING,
    LABELS,
    PUBLISHED,
    REFERENCE_ARM,
    REFERENCE_BASELINES,
    headline_metric,
)
from stream_rec.evaluation.replay import (
    ArmTally,
    CaseHook,
    GroupTally,
    ModelHooks,
    replay_group,
)
from stream_rec.evaluation.report import write_report
from stream_rec.evaluation.stages import split_for_stage

__all__ = ["CostModel", "evaluate", "evaluate_split", "hashed_cases", "machine_info"]

RESULTS_VERSION = 1


@dataclass(frozen=True, slots=True)
class CostModel:
    """How CPU time turns into money and energy (both estimates, overridable)."""

    price_per_vcpu_hour: float = 0.04  # USD, a typical on-demand vCPU-hour
    watts_per_core: float = 10.0  # a server core under load, roughly

    def usd_per_million(self, cpu_s_per_rec: float) -> float:
        return cpu_s_per_rec * 1e6 / 3600.0 * self.price_per_vcpu_hour

    def joules_per_rec(self, cpu_s_per_rec: float) -> float:
        return cpu_s_per_rec * self.watts_per_core


def evaluate(
    dataset_name: str,
    data_dir: Path | str,
    protocol: str | None = None,
    arms: Sequence[str] | Sequence[Arm] | None = None,
    *,
    out_dir: Path | str | None,
    progress: bool = True,
    limit_cases: int = 0,
    case_sample: str = "spaced",
    stage: str = "test",
    protocol_options: Mapping[str, Any] | None = None,
    cost: CostModel = CostModel(),
    ablation: bool = True,
    model_hooks: Callable[[Split, Sequence[Any]], ModelHooks] | None = None,
    command: str | None = None,
    plots: bool = True,
    recs_out: Path | str | None = None,
    pairs: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Replay ``dataset_name`` under ``protocol`` through each arm; return (and write) results.

    ``arms`` are names (see :mod:`stream_rec.evaluation.arms`) or :class:`Arm` objects;
    the default is every arm that can run here, plus the ``fast`` ablations. With
    ``out_dir``, writes ``results.json``, ``results.md`` and PNG plots there.
    ``limit_cases`` keeps that many test cases (0 = all), for quick runs: evenly spaced
    (``case_sample="spaced"``) or the first by a hash of user and position (``"hashed"``:
    a fixed subset spread over the whole replay, the same for every arm and every run);
    ``stage="valid"`` asks validation questions instead (for tuning, see ``stages``).
    ``recs_out`` writes every arm's list for every case there (JSON lines, see
    :func:`evaluate_split`). ``pairs`` names further (arm, base) comparisons for ``paired``
    (beside the rerank arms and :data:`ABLATION_PAIRS`), e.g. each value of a sweep against
    the default.
    """
    protocol = protocol or DEFAULT_PROTOCOLS.get(dataset_name)
    if protocol is None:
        raise ConfigError(f"protocol: no default for dataset {dataset_name!r}; pass one of "
                          "llamarec, minionerec, time-split, sampled-100")
    options = dict(protocol_options or {})
    loaded_at = time.perf_counter()
    dataset = load_dataset(dataset_name, Path(data_dir))
    split = split_for_stage(dataset, protocol, stage, **options)
    load_s = time.perf_counter() - loaded_at
    chosen = _resolve_arms(arms, ablation=ablation, model_available=model_hooks is not None,
                           dataset=dataset_name, protocol=protocol)
    results = evaluate_split(split, dataset.catalog, chosen, dataset_name=dataset_name,
                             limit_cases=limit_cases, case_sample=case_sample, cost=cost,
                             progress=progress, model_hooks=model_hooks,
                             recs_out=recs_out, pairs=pairs)
    results["stage"] = stage
    results["protocol_options"] = {k: str(v) for k, v in options.items()}
    results["load_s"] = round(load_s, 2)
    results["command"] = command if command is not None else " ".join(
        [Path(sys.argv[0]).name, *sys.argv[1:]])
    if out_dir is not None:

        write_report(results, Path(out_dir), plots=plots)
    return results


def evaluate_split(
    split: Split,
    catalog_items: Sequence[Any],
    arms: Sequence[Arm],
    *,
    dataset_name: str,
    limit_cases: int = 0,
    case_sample: str = "spaced",
    cost: CostModel = CostModel(),
    progress: bool = True,
    model_hooks: Callable[[Split, Sequence[Any]], ModelHooks] | None = None,
    recs_out: Path | str | None = None,
    pairs: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The replay and the results dict for an already-built split (no other files written).

    With ``recs_out``, every arm's list for every case is written there as JSON lines:
    ``{"arm", "user_id", "trigger_event_id" (null without a trigger), "at_index", "now_ms",
    "items", "relevant"}``, in replay order.
    """
    if not arms:
        raise ConfigError("arms: need at least one arm to evaluate")
    if not split.metrics:
        raise ConfigError(f"protocol {split.protocol!r} names no metrics to report")
    cases = _subsample(split.cases, limit_cases, case_sample)
    top_k = max(int(key.split("@")[1]) for key in split.metrics)
    started = time.perf_counter()
    groups: dict[tuple[Any, ...], list[Arm]] = {}
    for arm in arms:
        groups.setdefault((*arm.state_key, arm.needs_model), []).append(arm)
    tallies: dict[str, ArmTally] = {}
    group_of: dict[str, GroupTally] = {}
    with ExitStack() as stack:
        on_case = None
        if recs_out is not None:
            Path(recs_out).parent.mkdir(parents=True, exist_ok=True)
            on_case = _list_writer(stack.enter_context(Path(recs_out).open("wb")))
        for members in groups.values():
            hooks = None
            if any(a.needs_model for a in members):
                if model_hooks is None:
                    raise ConfigError("arms: a model arm needs model hooks (the language "
                                      "model)")
                hooks = model_hooks(split, catalog_items)
            arm_tallies, group = replay_group(split, catalog_items, members, top_k=top_k,
                                              cases=cases, hooks=hooks, progress=progress,
                                              on_case=on_case)
            for tally in arm_tallies:
                tallies[tally.arm.name] = tally
                group_of[tally.arm.name] = group
    headline = headline_metric(split.protocol, split.metrics)
    arm_results = {name: _arm_result(t, group_of[name], cost) for name, t in tallies.items()}
    key = (dataset_name, split.protocol)
    return {
        "version": RESULTS_VERSION,
        "dataset": dataset_name,
        "protocol": split.protocol,
        "headline": headline,
        "metrics": list(split.metrics),
        "top_k": top_k,
        "split": {**{k: int(v) for k, v in split.stats.items()},
                  "train_events": len(split.train_events), "cases": len(split.cases),
                  "cases_evaluated": len(cases), "items": len(split.item_ids)},
        "case_sample": case_sample if len(cases) < len(split.cases) else "all",
        "arms": arm_results,
        "paired": _paired(tallies, pairs),
        "ablation": _ablation(arm_results, headline),
        "published": ({**_jsonable(PUBLISHED[key]), **LABELS["published"]}
                      if key in PUBLISHED else {}),
        "reference_baselines": {
            name: {"metrics": dict(values), "our_arm": REFERENCE_ARM.get(name, ""),
                   **LABELS["reference"]}
            for name, values in REFERENCE_BASELINES.get(key, {}).items()},
        "founding": {name: {**values, **LABELS["founding"]}
                     for name, values in FOUNDING.items()},
        "cost_model": {"price_per_vcpu_hour": cost.price_per_vcpu_hour,
                       "watts_per_core": cost.watts_per_core,
                       "note": "estimates: CPU-seconds of the recommend calls on one core "
                               "times the price / the watts; observe costs are separate"},
        "machine": machine_info(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 2),
        "process_rss_mb_peak": round(_max_rss_mb(), 1),
    }


def _list_writer(sink: BinaryIO) -> CaseHook:
    """A replay hook writing each arm's list for each case as a JSON line to ``sink``."""

    def write(case: TestCase, profile: UserProfile, stats: ItemStats,
              tallies: list[ArmTally]) -> None:
        trigger = case.trigger.event_id if case.trigger is not None else None
        for tally in tallies:
            sink.write(codec.dumps({
                "arm": tally.arm.name, "user_id": case.user_id, "trigger_event_id": trigger,
                "at_index": case.at_index, "now_ms": case.now_ms,
                "items": tally.last_ranked, "relevant": sorted(case.relevant)}) + b"\n")

    return write


def _arm_result(t: ArmTally, group: GroupTally, cost: CostModel) -> dict[str, Any]:
    recs = len(t.latency_ns)
    cpu_s = t.cpu_ns / 1e9
    per_rec = cpu_s / recs if recs else math.nan
    lat_ms = [ns / 1e6 for ns in t.latency_ns]
    events = max(group.events, 1)
    return {
        "summary": t.arm.summary,
        "weights": dict(t.arm.weights),
        "stats_params": {"popularity_half_life_s": t.arm.stats.popularity_half_life_s,
                         "covisit_window": t.arm.stats.covisit_window,
                         "max_neighbours": t.arm.stats.max_neighbours},
        "metrics": {k: round(v, 6) for k, v in t.metrics.result().items()},
        "metrics_se": {k: _r(v, 6) for k, v in t.standard_errors().items()},
        "curve": {k: round(v, 6) for k, v in t.curve.result().items()},
        "slices": {name: {"cases": acc.count,
                          "metrics": {k: round(v, 6) for k, v in acc.result().items()}}
                   for name, acc in t.slices.items()},
        "learner": _learner(t, events),
        "recs": recs,
        "short_lists": t.short_lists,
        "latency_ms_p50": _r(percentile(lat_ms, 0.50)),
        "latency_ms_p99": _r(percentile(lat_ms, 0.99)),
        "latency_ms_mean": _r(sum(lat_ms) / recs if recs else math.nan),
        "rss_mb_peak": round(group.rss_peak_mb, 1),
        "state_mb": round(max(0.0, group.rss_peak_mb - group.rss_base_mb), 1),
        "recs_per_s": _r(1.0 / per_rec if per_rec > 0 else math.nan, 1),
        "cpu_s_per_1k": _r(per_rec * 1000.0),
        "usd_per_million": _r(cost.usd_per_million(per_rec), 5),
        "joules_per_rec": _r(cost.joules_per_rec(per_rec), 6),
        "observe_us_per_event": _r(group.observe_ns / 1e3 / events, 2),
        "fold_us_per_event": _r(group.fold_ns / 1e3 / events, 2),
        "enrich_us_per_event": _r(group.enrich_ns / 1e3 / events, 2),
        "replay_group": list(group.arms),
        "replay_wall_s": round(group.wall_s, 2),
        "_latency_ms": lat_ms,  # raw, for the plots; dropped from results.json
    }


def _learner(t: ArmTally, events: int) -> dict[str, Any] | None:
    learner = t.learner
    if learner is None:
        return None
    state = learner.ranker.state()
    return {"lists": learner.lists, "labels": learner.labels, "misses": learner.misses,
            "mean_loss": _r(learner.loss_sum / learner.labels if learner.labels else math.nan),
            "learn_us_per_event": _r(t.learn_ns / 1e3 / events, 2),
            "weights": {f: round(w, 4) for f, w in zip(state.features, state.weights,
                                                       strict=True)}}


def _ablation(arms: Mapping[str, Mapping[str, Any]], headline: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for base in ("blend", "fast", "slm"):
        if base not in arms:
            continue
        full = arms[base]["metrics"]
        rows = {}
        for name, result in arms.items():
            if name.startswith(f"{base}-no-"):
                rows[name.removeprefix(f"{base}-no-")] = {
                    "arm": name,
                    "metrics": result["metrics"],
                    "delta": {k: round(result["metrics"][k] - full[k], 6) for k in full},
                }
        if rows:
            out[base] = {"headline": headline, "full": full, "without": rows}
    return out


def _resolve_arms(arms: Sequence[str] | Sequence[Arm] | None, *, ablation: bool,
                  model_available: bool, dataset: str, protocol: str) -> list[Arm]:
    if arms is not None and all(isinstance(a, Arm) for a in arms):
        return [a for a in arms if isinstance(a, Arm)]
    names = None if arms is None else [str(a) for a in arms]
    return make_arms(names, ablation=ablation, model_available=model_available,
                     dataset=dataset, protocol=protocol)


def _subsample(cases: Sequence[TestCase], limit: int, how: str = "spaced") -> list[TestCase]:
    if how not in ("spaced", "hashed"):
        raise ConfigError(f"case_sample must be 'spaced' or 'hashed', got {how!r}")
    if limit <= 0 or limit >= len(cases):
        return list(cases)
    if how == "hashed":
        return hashed_cases(cases, limit)
    step = len(cases) / limit
    return [cases[int(i * step)] for i in range(limit)]


def hashed_cases(cases: Sequence[TestCase], limit: int) -> list[TestCase]:
    """The ``limit`` cases with the smallest SHA-1 of ``"user@at_index"``, in replay order:
    a fixed subset, the same for every arm and every run, spread over the whole replay."""
    def digest(case: TestCase) -> bytes:
        return hashlib.sha1(f"{case.user_id}@{case.at_index}".encode()).digest()

    chosen = set(sorted(range(len(cases)), key=lambda i: digest(cases[i]))[:limit])
    return [case for i, case in enumerate(cases) if i in chosen]


# (arm, what it is compared with): the model's ablation (the served ranker without the
# model's features) and the learner's (the fixed blend it starts from)
ABLATION_PAIRS: tuple[tuple[str, str], ...] = (("slm", "fast"), ("fast", "blend"))


def _paired(tallies: Mapping[str, ArmTally],
            extra: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Each ``<base>-rerank`` arm minus its ``<base>`` arm, each of :data:`ABLATION_PAIRS`
    and of ``extra``, on the same cases: per metric, the mean per-case difference and its
    standard error (far smaller than either arm's own when the two agree on most cases)."""
    pairs = [(name, name.removesuffix("-rerank")) for name in tallies if name.endswith("-rerank")]
    pairs += [*ABLATION_PAIRS, *extra]
    out: dict[str, Any] = {}
    for name, base_name in pairs:
        tally, base = tallies.get(name), tallies.get(base_name)
        if tally is None or base is None or len(base.per_case) != len(tally.per_case):
            continue  # not both run, or not asked the same cases
        diffs: dict[str, Any] = {}
        for key in tally.metrics.keys:
            d = [a[key] - b[key] for a, b in zip(tally.per_case, base.per_case, strict=True)]
            n = len(d)
            mean = sum(d) / n if n else math.nan
            var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else math.nan
            diffs[key] = {"diff": _r(mean, 6), "se": _r(math.sqrt(var / n), 6)
                          if n > 1 else math.nan}
        out[f"{name} - {base_name}"] = {"cases": len(tally.per_case), "metrics": diffs}
    return out


def machine_info() -> dict[str, Any]:
    """Cores, RAM, CPU model and Python of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:

        ram_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is a dependency
        ram_gb = math.nan
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        load = []
    return {"cores": os.cpu_count() or 1, "ram_gb": ram_gb, "cpu_model": cpu,
            "python": platform.python_version(), "platform": platform.platform(),
            "load_avg": load}


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _r(value: float, digits: int = 4) -> float:
    return round(value, digits) if math.isfinite(value) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
