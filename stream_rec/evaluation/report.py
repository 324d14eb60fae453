"""Write an evaluation's results: ``results.json``, ``results.md`` and PNG plots.

``write_report(results, out_dir)`` takes the dict :func:`stream_rec.evaluation.evaluate`
returns. matplotlib is imported lazily (Agg backend); without it the plots are skipped and
the Markdown says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stream_rec.evaluation.reference import LABELS

__all__ = ["PLOTS", "markdown", "to_json", "write_report"]

PLOTS = ("accuracy_vs_latency.png", "latency.png", "metric_at_k.png")
PUBLISHED_LABEL = LABELS["published"]["label"]
REFERENCE_LABEL = LABELS["reference"]["label"]
FOUNDING_LABEL = LABELS["founding"]["label"]
_RAW = "_latency_ms"


def write_report(results: Mapping[str, Any], out_dir: Path, *, plots: bool = True
                 ) -> list[Path]:
    """Write the report files into ``out_dir`` (created); return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "results.json"]
    written[0].write_text(to_json(results) + "\n", encoding="utf-8")
    made: list[str] = []
    if plots:
        try:
            made = _plots(results, out_dir)
        except ImportError:
            made = []
    written += [out_dir / name for name in made]
    md = out_dir / "results.md"
    md.write_text(markdown(results, plots=made), encoding="utf-8")
    written.append(md)
    return written


def write_json_then_pyplot(result: Mapping[str, Any], path: Path) -> Any | None:
    """Write ``result`` to ``path`` as JSON (creating its folder); return matplotlib's
    ``pyplot`` on the Agg backend for a chart beside it, or None without the ``plots``
    extra."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(result) + "\n", encoding="utf-8")
    try:
        # lazy: matplotlib is the optional "plots" extra
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    # lazy: matplotlib is the optional "plots" extra
    import matplotlib.pyplot as plt

    return plt


def to_json(results: Mapping[str, Any]) -> str:
    """Stable, indented JSON without the raw latency samples; NaN becomes null."""
    return json.dumps(_clean(results), indent=2, sort_keys=False, allow_nan=False)


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if k != _RAW}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----- Markdown -------------------------------------------------------------------------------

def markdown(results: Mapping[str, Any], *, plots: Sequence[str] = ()) -> str:
    """The results as Markdown tables."""
    arms: Mapping[str, Mapping[str, Any]] = results["arms"]
    metrics: list[str] = list(results["metrics"])
    headline = results["headline"]
    lines = [
        f"# {results['dataset']} / {results['protocol']}",
        "",
        f"{results['date']} · `{results.get('command', '')}`",
        "",
        "Split: " + ", ".join(f"{k} {v:,}" for k, v in results["split"].items()
                              if isinstance(v, int) and k != "cut_ms"),
        "",
        "## Accuracy",
        "",
        _table(["arm", *metrics, "short lists"],
               [[name, *(_f(a["metrics"].get(m)) for m in metrics), str(a["short_lists"])]
                for name, a in arms.items()]),
    ]
    published = results.get("published") or {}
    refs = results.get("reference_baselines") or {}
    if published or refs:
        lines += ["", "## Beside external numbers (copied, not run here)", ""]
        cols = [m for m in metrics if any(
            m in v for v in [*published.get("systems", {}).values(),
                             *(r["metrics"] for r in refs.values())])] or metrics
        rows = []
        for name, values in published.get("systems", {}).items():
            rows.append([f"{name}, {PUBLISHED_LABEL}", *(_f(values.get(m)) for m in cols)])
        for name, ref in refs.items():
            ours = arms.get(ref["our_arm"], {}).get("metrics", {})
            rows.append([f"{name}, {REFERENCE_LABEL}",
                         *(_f(ref["metrics"].get(m)) for m in cols)])
            if ours:
                rows.append([f"↳ our {ref['our_arm']}", *(_f(ours.get(m)) for m in cols)])
        for name in ("fast", "slm", "slm-rerank"):
            if name in arms:
                rows.append([f"our {name}", *(_f(arms[name]["metrics"].get(m)) for m in cols)])
        lines.append(_table(["system", *cols], rows))
        lines += ["", f"*{PUBLISHED_LABEL}*: {LABELS['published']['source']}. "
                  f"*{REFERENCE_LABEL}*: {LABELS['reference']['source']}."]
        if published.get("note"):
            lines += ["", f"Published: {published['note']}"]
    for pair, paired in (results.get("paired") or {}).items():
        lines += ["", f"## Paired: {pair} on the same {paired['cases']:,} cases", "",
                  _table(["metric", "difference", "± 1.96 SE"],
                         [[m, _signed(d["diff"]), _f(1.96 * d["se"])]
                          for m, d in paired["metrics"].items()])]
    lines += ["", "## Founding table", "",
              f"Accuracy = {headline}. Cost figures are estimates from the CPU time of the "
              f"recommend calls on one core at ${results['cost_model']['price_per_vcpu_hour']}"
              f"/vCPU-hour and {results['cost_model']['watts_per_core']} W/core.", ""]
    rows = []
    for name, a in arms.items():
        rows.append([name, _f(a["latency_ms_p50"], 3), _f(a["latency_ms_p99"], 3),
                     _f(a["rss_mb_peak"], 0), _pct(a["metrics"].get(headline)),
                     _f(a["recs_per_s"], 0), _f(a["cpu_s_per_1k"], 4),
                     _f(a["usd_per_million"], 4), _f(a["joules_per_rec"], 5)])
    for name, f in results.get("founding", {}).items():
        rows.append([f"{name}, {FOUNDING_LABEL}", _f(f["latency_ms"], 0), "",
                     _f(f["rss_mb"], 0),
                     f"{f['accuracy_pct']:.0f}% (undefined metric)", _f(f["recs_per_s"], 0),
                     "", "", ""])
    lines.append(_table(["arm", "p50 ms", "p99 ms", "peak RSS MB", "accuracy", "recs/s",
                         "CPU-s/1k recs", "$/M recs", "J/rec"], rows))
    lines += ["", "Per-event state costs (µs/event, the worker's hot path):", ""]
    seen: set[tuple[str, ...]] = set()
    rows = []
    for a in arms.values():
        group = tuple(a["replay_group"])
        if group in seen:
            continue
        seen.add(group)
        rows.append([", ".join(group), _f(a["observe_us_per_event"], 2),
                     _f(a["fold_us_per_event"], 2), _f(a.get("enrich_us_per_event"), 2),
                     _f(a["state_mb"], 0), _f(a["replay_wall_s"], 1)])
    lines.append(_table(["replay group", "observe µs", "fold µs", "enrich µs", "state MB",
                         "wall s"], rows))
    for base, ab in (results.get("ablation") or {}).items():
        lines += ["", f"## Ablation: {base} without each source", ""]
        rows = [[f"{base} (all)", *(_f(ab["full"].get(m)) for m in metrics), ""]]
        for source, row in ab["without"].items():
            rows.append([f"without {source}", *(_f(row["metrics"].get(m)) for m in metrics),
                         _signed(row["delta"].get(ab["headline"]))])
        lines.append(_table(["arm", *metrics, f"Δ {ab['headline']}"], rows))
    m = results["machine"]
    lines += ["", "## Machine", "",
              f"{m['cores']} cores, {m['ram_gb']} GB RAM, {m['cpu_model']}, "
              f"Python {m['python']}; load average {m.get('load_avg', [])} at the end "
              f"(other work on the machine inflates wall-clock latency; CPU-time figures "
              f"are less affected); replay took {results['elapsed_s']} s."]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    else:
        lines += ["", "(plots skipped: matplotlib unavailable or disabled)"]
    return "\n".join(lines) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _f(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _signed(value: Any) -> str:
    return "-" if value is None else f"{value:+.4f}"


# ----- plots ----------------------------------------------------------------------------------

def _plots(results: Mapping[str, Any], out_dir: Path) -> list[str]:
    # lazy: matplotlib is the optional "plots" extra
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib is the optional "plots" extra
    import matplotlib.pyplot as plt

    arms: Mapping[str, Mapping[str, Any]] = results["arms"]
    headline = results["headline"]
    title = f"{results['dataset']} / {results['protocol']}"
    made = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, a in arms.items():
        if "-no-" in name:  # ablations have their own table
            continue
        x, y = a["latency_ms_p50"], a["metrics"].get(headline, 0.0)
        ax.scatter([x], [y], s=30)
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    for name, values in (results.get("published") or {}).get("systems", {}).items():
        if headline in values:
            ax.axhline(values[headline], ls=":", lw=0.8, color="grey")
            ax.text(0.01, values[headline], f"{name}, {PUBLISHED_LABEL}", fontsize=7,
                    color="grey",
                    va="bottom", transform=ax.get_yaxis_transform())
    ax.set_xlabel("latency p50 per recommendation (ms, log)")
    ax.set_ylabel(headline)
    ax.set_title(f"{title}: accuracy vs latency")
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS[0], dpi=110)
    plt.close(fig)
    made.append(PLOTS[0])

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = [n for n, a in arms.items() if a.get(_RAW)]
    if names:
        ax.boxplot([arms[n][_RAW] for n in names], showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right", fontsize=7)
        ax.set_yscale("log")
    ax.set_ylabel("latency per recommendation (ms, log)")
    ax.set_title(f"{title}: latency (box: quartiles, whiskers 1.5 IQR)")
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS[1], dpi=110)
    plt.close(fig)
    made.append(PLOTS[1])

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for metric, ax in zip(("hr", "ndcg"), axes, strict=True):
        for name, a in arms.items():
            points = sorted((int(k.split("@")[1]), v) for k, v in a["curve"].items()
                            if k.startswith(f"{metric}@"))
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker=".",
                        label=name, lw=1)
        ax.set_xlabel("k")
        ax.set_ylabel(f"{metric}@k")
        ax.set_xscale("log")
    axes[1].legend(fontsize=6, loc="upper left")
    fig.suptitle(f"{title}: metric@k")
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS[2], dpi=110)
    plt.close(fig)
    made.append(PLOTS[2])
    return made
