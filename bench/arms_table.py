"""Print the arms table of docs/learned_ranker.md from a ``results.json`` of eval_arms.py.

    python bench/arms_table.py docs/accuracy/learned/online-retail/results.json

One row per arm: the headline metric, NDCG@10, both cold-start slices (cases in
brackets), and the recommend call's p50 / p99 latency; then the paired differences (the
model's ablation `slm - fast`, the learner's `fast - blend`) on the headline metric.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def table(results: dict[str, Any]) -> str:
    """The Markdown table for one run's ``results.json``."""
    head = results["headline"]
    second = "ndcg@10" if head != "ndcg@10" else "recall@10"
    lines = [f"| arm | {head} | {second} | cold-item {head} (n) | new-user {head} (n) "
             "| p50 ms | p99 ms |", "|---|---|---|---|---|---|---|"]
    for name, arm in results["arms"].items():
        slices = arm.get("slices", {})
        cells = [name, f"{arm['metrics'][head]:.4f}", f"{arm['metrics'][second]:.4f}"]
        for key in ("cold_item", "new_user"):
            part = slices.get(key, {"cases": 0, "metrics": {}})
            cells.append(f"{part['metrics'].get(head, 0.0):.4f} ({part['cases']})")
        cells += [f"{arm['latency_ms_p50']:.2f}", f"{arm['latency_ms_p99']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(results: dict[str, Any]) -> str:
    """One line per paired comparison: the headline's mean per-case difference ± 1.96 SE."""
    head = results["headline"]
    return "\n".join(
        f"{pair}: {head} {d['metrics'][head]['diff']:+.4f} ± {1.96 * d['metrics'][head]['se']:.4f}"
        f" (95 %, paired over {d['cases']:,} cases)"
        for pair, d in (results.get("paired") or {}).items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    for path in parser.parse_args().results:
        results = json.loads(path.read_text())
        print(f"{results['dataset']} / {results['protocol']} ({results['date']}, "
              f"load {results['machine'].get('load_avg', '?')})")
        print(table(results))
        if results.get("paired"):
            print()
            print(paired(results))


if __name__ == "__main__":
    main()
