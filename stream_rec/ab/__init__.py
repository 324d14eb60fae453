"""A/B experiments: per-arm attribution of real feedback, statistics, offline simulation.

    Attribution.on_recommendation(rec) / on_event(event) → snapshot() per arm
    wilson_interval, two_proportion_test, stats.paired_rate_difference → intervals, tests
    simulate(dataset, data_dir, arms_spec=...) → a paired offline A/B on a real dataset
"""

from __future__ import annotations

from stream_rec.ab.attribution import DEFAULT_WINDOW_MS, ArmStats, Attribution
from stream_rec.ab.stats import ProportionTest, two_proportion_test, wilson_interval

__all__ = [
    "DEFAULT_WINDOW_MS",
    "ArmStats",
    "Attribution",
    "ProportionTest",
    "two_proportion_test",
    "wilson_interval",
]
