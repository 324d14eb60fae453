"""Validation-stage sweep of the learned ranker's settings (one choice for all datasets).

    python bench/tune_ranker.py --dataset amazon-minionerec --data-dir DIR --protocol minionerec \
        --set ranker_learning_rate=0.01,0.05 [--model] [--limit-cases N]

Without ``--set`` it scores the default settings alone (``bench/ab_trees.sh``); ``--set``
is repeatable: ``--set ranker_factors=4 --set ranker_factor_learning_rate=0.05,0.01`` fixes
one field and sweeps the other.

Prints the headline metric and the cold-item slice of each variant, and each one's paired
difference from the first value (`vs_first`: mean, 1.96 SE); never asks test cases.
``text_neighbours`` (the text space is built with the model) runs one evaluation per value.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from stream_rec.config import Settings
from stream_rec.evaluation import evaluate
from stream_rec.evaluation.arms import served_arm
from stream_rec.evaluation.model_arm import model_hooks_factory


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--protocol", required=True)
    ap.add_argument("--set", action="append", default=[],
                    help="field=v1,v2 (a Settings field), repeatable: a field given one value "
                         "is fixed for every variant, at most one field is swept; "
                         "omitted: the defaults alone")
    ap.add_argument("--model", action="store_true", help="the slm arm (else fast)")
    ap.add_argument("--limit-cases", type=int, default=0)
    args = ap.parse_args()
    fixed, swept = _parse_sets(args.set)
    base = dataclasses.replace(Settings(), **fixed)
    if swept is None:
        variants = [(served_arm(base, name="default", model=args.model), base)]
    else:
        field, values = swept
        variants = []
        for raw, value in values:
            settings = dataclasses.replace(base, **{field: value})
            variants.append((served_arm(settings, name=f"{field}={raw}", model=args.model),
                             settings))
    if swept is not None and swept[0] == "text_neighbours" and args.model:
        # the text space is built with the model hooks, once per evaluation: one run each
        for arm, settings in variants:
            _report(_evaluate(args, [arm], settings.text_neighbours))
    else:
        arms = [arm for arm, _ in variants]
        first = arms[0].name  # each other value is paired with the first, case by case
        _report(_evaluate(args, arms, base.text_neighbours,
                          [(arm.name, first) for arm in arms[1:]]))


Sweep = tuple[str, list[tuple[str, Any]]]  # (field, [(value as written, value)])


def _parse_sets(sets: Sequence[str]) -> tuple[dict[str, Any], Sweep | None]:
    """``field=v1,v2`` arguments: (fields fixed to one value, the swept field and its values)."""
    kinds = {f.name: str(f.type) for f in dataclasses.fields(Settings)}
    fixed: dict[str, Any] = {}
    swept: Sweep | None = None
    for item in sets:
        field, _, raw = item.partition("=")
        if field not in kinds or not raw:
            raise SystemExit(f"--set {item!r}: expected FIELD=V1[,V2...] with a Settings field")
        cast = {"int": int, "float": float}.get(kinds[field], str)
        values = [(v, cast(v)) for v in raw.split(",")]
        if len(values) == 1:
            fixed[field] = values[0][1]
        elif swept is not None:
            raise SystemExit(f"--set: sweep one field at a time ({swept[0]} and {field})")
        else:
            swept = (field, values)
    return fixed, swept


def _evaluate(args: argparse.Namespace, arms: list[Any], text_neighbours: int | None,
              pairs: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    hooks = (model_hooks_factory(["slm"], text_neighbours=text_neighbours) if args.model
             else None)
    return evaluate(args.dataset, args.data_dir, args.protocol, arms, out_dir=None,
                    progress=False, stage="valid", limit_cases=args.limit_cases,
                    model_hooks=hooks, pairs=pairs)


def _report(results: dict[str, Any]) -> None:
    """One JSON line per value; ``vs_first`` = the headline's mean per-case difference from
    the first value and 1.96 standard errors of it (paired on the same cases)."""
    head = results["headline"]
    first = next(iter(results["arms"]))
    for name, arm in results["arms"].items():
        line = {"arm": name, head: arm["metrics"][head],
                "ndcg@10": arm["metrics"].get("ndcg@10"),
                "cold": arm["slices"]["cold_item"]["metrics"].get(head),
                "p50_ms": arm["latency_ms_p50"],
                "learn_us": arm["learner"]["learn_us_per_event"]}
        paired = results["paired"].get(f"{name} - {first}")
        if paired:
            d = paired["metrics"][head]
            line["vs_first"] = [d["diff"], round(1.96 * d["se"], 6)]
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
