"""End-to-end benchmark sweep (what ``make bench`` runs): ``stream-rec bench`` with its options.

    python bench/bench_pipeline.py --broker tansu,kafka --workers 1,2 \
        --rate 250,500,1000,2000,max --duration 15 --out out/bench

Each point: fresh topics on a real broker, worker processes with the model loaded, real
Online Retail events replicated to ``--users`` users, recs read by a separate process.
Prints one line per point and writes results.json, results.md and
latency_vs_throughput.png; it asserts nothing (figures: docs/benchmarks.md).
"""

from __future__ import annotations

import sys

from stream_rec.cli import main

if __name__ == "__main__":
    sys.argv = ["stream-rec", "bench", *sys.argv[1:]]
    main()
