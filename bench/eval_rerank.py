"""The optional log-likelihood rerank arm against `slm`, paired on a fixed subset of cases.

    python bench/eval_rerank.py --dataset online-retail \
        --data-dir ../shared/data/online-retail --cases 100 --out out/rerank-online-retail

Both arms are the worker's own: ``slm`` (what a default worker serves) and ``slm-rerank``
(the same, plus the in-process rerank a worker runs with ``STREAM_REC_RERANK_TOP_N``: the
model orders the list's head by the log-likelihood of each title after the user's recent
titles). They share one replay, so they answer exactly the same cases from the same state:
the ``--cases`` cases with the smallest hash of user and position (a fixed subset, spread
over the whole replay). Prints each arm's metrics and cost (ms per rec p50/p99, CPU-s per
1k recs on one core) and the paired per-case differences; writes results.json/.md to --out.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from stream_rec.datasets import DEFAULT_PROTOCOLS
from stream_rec.evaluation import evaluate
from stream_rec.evaluation.arms import make_arms
from stream_rec.evaluation.model_arm import model_hooks_factory

ARMS = ["slm", "slm-rerank"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--protocol", default="", help="default: the dataset's usual one")
    parser.add_argument("--stage", default="test", choices=["valid", "test"])
    parser.add_argument("--cases", type=int, default=100,
                        help="cases in the fixed hashed subset (~1 s each for the rerank)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    protocol = args.protocol or DEFAULT_PROTOCOLS[args.dataset]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = evaluate(args.dataset, args.data_dir, protocol, ARMS, out_dir=args.out,
                       progress=False, stage=args.stage, ablation=False,
                       limit_cases=args.cases, case_sample="hashed",
                       model_hooks=model_hooks_factory(ARMS),
                       command=" ".join(["python bench/eval_rerank.py", *sys.argv[1:]]),
                       plots=False)
    metrics = results["metrics"]
    print(f"{args.dataset} / {protocol} / {args.stage}: {results['split']['cases_evaluated']}"
          f" of {results['split']['cases']} cases (hashed subset), rerank top "
          f"{_rerank_top_n()}")
    print("| arm | " + " | ".join(metrics) + " | p50 ms | p99 ms | CPU-s/1k recs |")
    print("|---" * (len(metrics) + 4) + "|")
    for name in ARMS:
        arm = results["arms"][name]
        print(f"| {name} | " + " | ".join(f"{arm['metrics'][m]:.4f}" for m in metrics)
              + f" | {arm['latency_ms_p50']:.2f} | {arm['latency_ms_p99']:.2f} | "
              f"{arm['cpu_s_per_1k']:.2f} |")
    for pair, paired in results["paired"].items():
        print(f"| {pair} (paired) | " + " | ".join(
            f"{d['diff']:+.4f} ± {1.96 * d['se']:.4f}" for d in paired["metrics"].values())
            + " | | | |")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"whole run: wall {time.perf_counter() - wall0:.0f} s, process CPU "
          f"{time.process_time() - cpu0:.0f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MB")


def _rerank_top_n() -> int:
    return make_arms(["slm-rerank"], ablation=False, model_available=True)[0].rerank_top_n


if __name__ == "__main__":
    main()
