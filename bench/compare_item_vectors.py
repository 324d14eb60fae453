"""Item vectors compared on next-item retrieval, validation stages of the three datasets.

    nice -n 10 .venv/bin/python bench/compare_item_vectors.py --data-dir ../shared/data \
        --out out/item-vectors

(``make tune-vectors``.) For each dataset's ``stage="valid"`` split: item vectors from
TF-IDF, the model's input-token mean (the served default) and its contextual hidden states
(layers x mean/last-token pooling, around a short prompt), each raw and through a linear
projection fitted on the training stream only (ridge onto co-occurrence factors); scored
by HR@10 / NDCG@10 of a recency-weighted taste query over all items, history masked,
overall and on the cold-item slice. Embeddings are cached under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from stream_rec.bench.behaviour_projection import (
    Behaviour,
    learn_alignment,
    learn_behaviour,
    learn_projection,
)
from stream_rec.bench.vector_retrieval import (
    RetrievalCase,
    RetrievalScores,
    retrieval_cases,
    score_retrieval,
    training_sequences,
    unit_rows,
)
from stream_rec.bench.vector_sources import (
    READING_PROMPT,
    contextual_vectors,
    input_token_vectors,
    tfidf_vectors,
)
from stream_rec.core.events import CatalogItem
from stream_rec.datasets import Split, load_dataset
from stream_rec.evaluation.stages import split_for_stage
from stream_rec.model.files import resolve_model_path
from stream_rec.model.semantic import item_text


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """One dataset as ``make eval`` runs it: loader name, directory, protocol."""

    name: str
    directory: str
    protocol: str


DATASETS = (
    DatasetSpec("movielens", "movielens-latest-small", "llamarec"),
    DatasetSpec("amazon-minionerec", "amazon18-industrial-scientific-minionerec", "minionerec"),
    DatasetSpec("online-retail", "online-retail", "time-split"),
)
LAYERS = (4, 8, 12, 14, 16)
# The learned maps' settings: one choice for every dataset (see --sweep-projection).
PROJECTION = {"k": 128, "window": 5, "min_count": 5, "ridge": 0.1, "align_ridge": 3.0}
PROJECTION_GRID = {"k": (64, 128, 256), "ridge": (0.03, 0.1, 0.3),
                   "align_ridge": (1.0, 3.0, 10.0)}
SEED = 13


@dataclass(frozen=True, slots=True)
class Row:
    """One scored variant of one dataset."""

    dataset: str
    source: str
    variant: str  # raw | projected | raw+projected | aligned | behaviour
    scores: RetrievalScores
    seconds: float

    def as_dict(self) -> dict[str, object]:
        s = self.scores
        return {"dataset": self.dataset, "source": self.source, "variant": self.variant,
                "hr@10": round(s.hr, 4), "ndcg@10": round(s.ndcg, 4), "cases": s.cases,
                "cold_hr@10": round(s.cold_hr, 4), "cold_ndcg@10": round(s.cold_ndcg, 4),
                "cold_cases": s.cold_cases, "seconds": round(self.seconds, 2)}


def load_valid(spec: DatasetSpec, data_dir: Path) -> tuple[Split, list[str]]:
    """The validation split and the text of each item of its ranking universe."""
    dataset = load_dataset(spec.name, data_dir / spec.directory)
    split = split_for_stage(dataset, spec.protocol, "valid")
    by_id: dict[str, CatalogItem] = {item.item_id: item for item in dataset.catalog}
    texts = [item_text(by_id[i].title, by_id[i].category) if i in by_id else i
             for i in split.item_ids]
    return split, texts


def text_sources(texts: list[str], model_path: Path, cache_dir: Path, layers: tuple[int, ...],
                 *, progress: bool) -> dict[str, np.ndarray]:
    """Every text source's item vectors, rows in the order of ``texts`` (no contextual
    source when ``layers`` is empty)."""
    sources = {"tfidf": tfidf_vectors(texts),
               "input": input_token_vectors(model_path, texts, cache_dir)}
    if not layers:
        return sources
    started = time.perf_counter()
    hidden = contextual_vectors(model_path, texts, layers, cache_dir, progress=progress)
    if progress:
        print(f"  contextual vectors ready in {time.perf_counter() - started:.0f} s", flush=True)
    sources.update({f"hidden-{name}": vectors for name, vectors in sorted(hidden.items())})
    return sources


def score_source(dataset: str, source: str, vectors: np.ndarray,
                 cases: list[RetrievalCase], behaviour: Behaviour,
                 settings: dict[str, float]) -> list[Row]:
    """The source raw; projected onto behaviour factors; raw and projected concatenated
    (equal weight in the cosine); aligned (mapped towards the text of co-consumed items)."""
    started = time.perf_counter()
    unit = unit_rows(vectors)
    rows = [Row(dataset, source, "raw", score_retrieval(unit, cases),
                time.perf_counter() - started)]
    started = time.perf_counter()
    projection = learn_projection(unit, behaviour, min_count=int(settings["min_count"]),
                                  ridge=settings["ridge"])
    projected = unit_rows(projection.apply(unit))
    fit_s = time.perf_counter() - started
    rows.append(Row(dataset, source, "projected", score_retrieval(projected, cases), fit_s))
    both = unit_rows(np.hstack([unit, projected]), centre=False)
    rows.append(Row(dataset, source, "raw+projected", score_retrieval(both, cases), fit_s))
    started = time.perf_counter()
    alignment = learn_alignment(unit, behaviour, min_count=int(settings["min_count"]),
                                ridge=settings["align_ridge"])
    aligned = unit_rows(alignment.apply(unit))
    rows.append(Row(dataset, source, "aligned", score_retrieval(aligned, cases),
                    time.perf_counter() - started))
    return rows


def behaviour_of(sequences: list[list[int]], n_items: int,
                 settings: dict[str, float]) -> Behaviour:
    return learn_behaviour(sequences, n_items, k=int(settings["k"]),
                           window=int(settings["window"]), rng=np.random.default_rng(SEED))


def behaviour_row(dataset: str, behaviour: Behaviour, cases: list[RetrievalCase]) -> Row:
    """Reference without text: the co-occurrence factors the projection regresses onto."""
    started = time.perf_counter()
    return Row(dataset, "co-occurrence factors (no text)", "behaviour",
               score_retrieval(unit_rows(behaviour.factors), cases),
               time.perf_counter() - started)


def projection_sweep(dataset: str, sources: dict[str, np.ndarray], cases: list[RetrievalCase],
                     sequences: list[list[int]]) -> list[dict[str, object]]:
    """HR@10 of the projected (k x ridge) and aligned (align_ridge) vectors over
    PROJECTION_GRID, for tfidf and input."""
    out: list[dict[str, object]] = []
    n_items = next(iter(sources.values())).shape[0]
    min_count = int(PROJECTION["min_count"])

    def record(name: str, variant: str, unit: np.ndarray, **setting: float) -> None:
        scores = score_retrieval(unit, cases)
        out.append({"dataset": dataset, "source": name, "variant": variant, **setting,
                    "hr@10": round(scores.hr, 4), "cold_hr@10": round(scores.cold_hr, 4)})
        print("   ", json.dumps(out[-1]), flush=True)

    for k in PROJECTION_GRID["k"]:
        behaviour = behaviour_of(sequences, n_items, {**PROJECTION, "k": k})
        for name in ("tfidf", "input"):
            unit = unit_rows(sources[name])
            for ridge in PROJECTION_GRID["ridge"]:
                projection = learn_projection(unit, behaviour, min_count=min_count, ridge=ridge)
                record(name, "projected", unit_rows(projection.apply(unit)), k=k, ridge=ridge)
            if k != PROJECTION["k"]:
                continue
            for ridge in PROJECTION_GRID["align_ridge"]:
                alignment = learn_alignment(unit, behaviour, min_count=min_count, ridge=ridge)
                record(name, "aligned", unit_rows(alignment.apply(unit)), align_ridge=ridge)
    return out


def markdown(rows: list[dict[str, object]]) -> str:
    """The results as one markdown table (dataset x source x variant)."""
    lines = ["| dataset | vector source | variant | HR@10 | NDCG@10 | cold HR@10 | "
             "cold NDCG@10 | cases (cold) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['source']} | {r['variant']} | {r['hr@10']:.4f} | "
                     f"{r['ndcg@10']:.4f} | {r['cold_hr@10']:.4f} | {r['cold_ndcg@10']:.4f} | "
                     f"{r['cases']} ({r['cold_cases']}) |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return (f"{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores ({cpu}), load average "
            f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("out/item-vectors"))
    ap.add_argument("--datasets", default=",".join(d.name for d in DATASETS))
    ap.add_argument("--layers", default=",".join(map(str, LAYERS)),
                    help="contextual layers to capture; empty: no contextual source")
    ap.add_argument("--embed-only", action="store_true", help="fill the caches, score nothing")
    ap.add_argument("--sweep-projection", action="store_true",
                    help="also sweep the projection's k and ridge (tfidf and input)")
    args = ap.parse_args()
    model_path = resolve_model_path("")
    layers = tuple(int(x) for x in args.layers.split(",") if x)
    wanted = set(args.datasets.split(","))
    for spec in DATASETS:
        if spec.name not in wanted:
            continue
        print(f"{spec.name}: loading the validation split", flush=True)
        split, texts = load_valid(spec, args.data_dir)
        sources = text_sources(texts, model_path, args.out / "cache" / spec.name, layers,
                               progress=True)
        if args.embed_only:
            continue
        results, sweep = evaluate(spec.name, split, sources, sweep=args.sweep_projection)
        meta = {"machine": machine(), "prompt": READING_PROMPT, "layers": list(layers),
                "projection": PROJECTION, "seed": SEED}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"results-{spec.name}.json").write_text(json.dumps(
            {"meta": meta, "results": results, "projection_sweep": sweep}, indent=1) + "\n")
    if not args.embed_only:
        write_report(args.out)


def evaluate(dataset: str, split: Split, sources: dict[str, np.ndarray], *,
             sweep: bool) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Every source's rows on one dataset, the behaviour reference, and the sweep."""
    cases = retrieval_cases(split)
    sequences = training_sequences(split)
    print(f"  {len(cases)} cases, {sum(1 for c in cases if c.cold)} with a cold target; "
          f"{sum(map(len, sequences))} training interactions", flush=True)
    started = time.perf_counter()
    behaviour = behaviour_of(sequences, len(split.item_ids), PROJECTION)
    print(f"  behaviour factors in {time.perf_counter() - started:.1f} s", flush=True)
    results: list[dict[str, object]] = []
    for source, vectors in sources.items():
        for row in score_source(dataset, source, vectors, cases, behaviour, PROJECTION):
            results.append(row.as_dict())
            print("   ", json.dumps(results[-1]), flush=True)
    results.append(behaviour_row(dataset, behaviour, cases).as_dict())
    print("   ", json.dumps(results[-1]), flush=True)
    swept = projection_sweep(dataset, sources, cases, sequences) if sweep else []
    return results, swept


def write_report(out: Path) -> None:
    """``results.md``: every ``results-<dataset>.json`` under ``out``, in dataset order."""
    parts = []
    for spec in DATASETS:
        path = out / f"results-{spec.name}.json"
        if path.exists():
            found = json.loads(path.read_text())
            parts.append(f"{spec.name}: {found['meta']['machine']}\n\n"
                         f"{markdown(found['results'])}")
    (out / "results.md").write_text("\n".join(parts))
    print(out / "results.md")


if __name__ == "__main__":
    main()
