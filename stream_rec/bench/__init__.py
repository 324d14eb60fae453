"""The end-to-end benchmark: load generator, separate recs reader, sweeps and reports.

``stream-rec bench`` (one run or a sweep) and ``make bench`` drive it; see
docs/benchmarks.md for what it measures and the figures.
"""

from stream_rec.bench.run import BenchOptions, run_once, run_sweep
from stream_rec.bench.summary import SUMMARY_KEYS, RunObservations, summarize

__all__ = ["SUMMARY_KEYS", "BenchOptions", "RunObservations", "run_once", "run_sweep",
           "summarize"]
