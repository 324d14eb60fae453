"""Model cost on this machine: embeddings per title, rerank per user, memory.

    .venv/bin/python bench/bench_model.py [--quick] [--no-baseline]

Prints one table per measurement; copy the output into docs/model.md with the machine
line it starts with. Timings are the best of ``--repeats`` runs (other processes on a
2-core machine add noise; the minimum is the least disturbed run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

from stream_rec.bench.report import machine
from stream_rec.model.files import resolve_model_path, sha256_file
from stream_rec.model.llama import SlmModel
from stream_rec.model.loading import load_pool
from stream_rec.model.pool import ModelPool
from stream_rec.model.prompts import candidate_text, history_prefix

TITLES = [
    "WHITE HANGING HEART T-LIGHT HOLDER",
    "RED HANGING HEART T-LIGHT HOLDER",
    "JUMBO BAG RED RETROSPOT",
    "JUMBO BAG PINK POLKADOT",
    "SET OF 3 CAKE TINS PANTRY DESIGN",
    "REGENCY CAKESTAND 3 TIER",
    "PACK OF 72 RETROSPOT CAKE CASES",
    "LUNCH BAG RED RETROSPOT",
    "ASSORTED COLOUR BIRD ORNAMENT",
    "PARTY BUNTING",
    "NATURAL SLATE HEART CHALKBOARD",
    "HEART OF WICKER SMALL",
    "SET OF 6 SPICE TINS PANTRY DESIGN",
    "ALARM CLOCK BAKELIKE RED",
    "JAM MAKING SET WITH JARS",
    "PAPER CHAIN KIT 50'S CHRISTMAS",
]


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def machine_line() -> str:
    m = machine()
    return (
        f"{dt.date.today()} · nproc {m['cores']} · RAM {m['ram_gib']:.0f} GiB · CPU {m['cpu']} · "
        f"Python {m['python']} · load avg {m['load_avg_1m']:.2f}"
    )


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def titles(n: int) -> list[str]:
    return [f"{TITLES[i % len(TITLES)]} {i // len(TITLES) or ''}".strip() for i in range(n)]


def bench_embeddings(path: Path, repeats: int, baseline: bool) -> None:
    print(f"\n## Embeddings: ms per title (best of {repeats})")
    print(f"{'method':46s} {'threads':>7s} {'b=1':>7s} {'b=8':>7s} {'b=32':>7s}")
    for mode in ("input", "hidden"):
        for threads in (1, 2):
            with SlmModel(path, n_threads=threads, embed_mode=mode) as model:
                cells = []
                for batch in (1, 8, 32):
                    texts = titles(batch)
                    model.embed(texts)
                    cells.append(best_of(repeats, lambda t=texts: model.embed(t)) * 1000 / batch)
            label = (
                "SlmModel input-token mean (default)"
                if mode == "input"
                else "SlmModel hidden layer n-2 mean, LM head skipped"
            )
            print(f"{label:46s} {threads:7d} " + " ".join(f"{c:7.2f}" for c in cells))
    if baseline:
        import llama_cpp  # the high-level API, for comparison only

        for threads in (1, 2):
            llm = llama_cpp.Llama(
                str(path),
                embedding=True,
                n_ctx=2048,
                n_batch=2048,
                n_threads=threads,
                verbose=False,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            )
            cells = []
            for batch in (1, 8, 32):
                texts = titles(batch)
                llm.embed(texts)
                cells.append(best_of(repeats, lambda t=texts, m=llm: m.embed(t)) * 1000 / batch)
            llm.close()
            label = "llama_cpp.Llama.embed (MEAN, LM head on all)"
            print(f"{label:46s} {threads:7d} " + " ".join(f"{c:7.2f}" for c in cells))


def bench_rerank(path: Path, repeats: int, users: int) -> None:
    rng = np.random.default_rng(0)
    requests = []
    for _ in range(users):
        hist = [TITLES[i] for i in rng.choice(len(TITLES), size=8, replace=False)]
        cands = [
            candidate_text(f"{TITLES[i]} {j}")
            for j, i in enumerate(rng.choice(len(TITLES), size=20))
        ]
        requests.append((history_prefix(hist), cands))
    n_tok = np.mean([len(p) for p, _ in requests])
    print(
        f"\n## Rerank: 20 candidates per user, history of 8 titles (~{n_tok:.0f} chars), "
        f"first 6 tokens of each candidate; {users} users"
    )
    prefix, cands = requests[0]
    for threads in (1, 2):
        with SlmModel(path, n_threads=threads) as model:
            model.log_likelihoods(prefix, cands)
            cold = best_of(
                repeats, lambda m=model: m.log_likelihoods(prefix, cands, reuse_prefix=False)
            )
            warm = best_of(repeats, lambda m=model: m.log_likelihoods(prefix, cands))
            naive = best_of(
                1,
                lambda m=model: [m.log_likelihoods(prefix, [c], reuse_prefix=False) for c in cands],
            )
            started = time.perf_counter()
            for p, c in requests:
                model.log_likelihoods(p, c)
            serial = (time.perf_counter() - started) / users
        name = f"one {threads}-thread instance"
        print(f"{name}, shared prefix, cold prefix KV:      {cold * 1000:7.0f} ms/user")
        print(f"{name}, same prefix again (kept KV):       {warm * 1000:7.0f} ms/user")
        print(f"{name}, prefix decoded per candidate:      {naive * 1000:7.0f} ms/user")
        print(
            f"{name}, {users} different users in sequence: "
            f"{serial * 1000:7.0f} ms/user  ({1 / serial:.2f} users/s)"
        )
    for size, threads in ((2, 1), (1, 2), (1, 1)):
        pool: ModelPool = load_pool(path, size=size, n_threads=threads)
        with pool:
            pool.score_many(requests[:size])
            started = time.perf_counter()
            pool.score_many(requests)
            elapsed = time.perf_counter() - started
        print(
            f"pool {size} x {threads}-thread, {users} users through score_many: "
            f"{elapsed / users * 1000:7.0f} ms/user  ({users / elapsed:.2f} users/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default="", help="GGUF file (default: packaged model)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="2 repeats, 4 users")
    parser.add_argument("--no-baseline", action="store_true", help="skip llama_cpp.Llama.embed")
    args = parser.parse_args()
    repeats, users = (2, 4) if args.quick else (args.repeats, args.users)
    print(machine_line())
    path = resolve_model_path(args.model_path)
    print(f"model {path.name} sha256 {sha256_file(path)[:16]}… {path.stat().st_size / 1e6:.0f} MB")
    before = rss_mb()
    started = time.perf_counter()
    model = SlmModel(path, n_threads=1)
    load_s = time.perf_counter() - started
    speed = model.measure_speed()
    after = rss_mb()
    model.close()
    print(
        f"\n## Load and speed\nload {load_s:.2f} s · RSS {before:.0f} → {after:.0f} MiB "
        f"(+{after - before:.0f}, one instance, both contexts) · prefill "
        f"{speed.prefill_tok_s:.0f} tok/s · generation {speed.gen_tok_s:.0f} tok/s (1 thread)"
    )
    bench_embeddings(path, repeats, baseline=not args.no_baseline)
    bench_rerank(path, repeats, users)
    print(f"\nfinal process RSS {rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
