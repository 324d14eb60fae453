"""Fault injection and hostile input: prove that nothing is lost, doubled or let in.

    hostile_cases.py  every hostile message tried, and the table of where each one went
    harness.py        Rig: topics, worker processes, producer, RSS monitor, the oracle
    scenarios.py      kill_loop, kill_during_catch_up, two_workers_rebalance, broker_restart,
                      slow_consumer, model_stall
    __main__.py       python -m stream_rec.chaos hostile-table | run SCENARIO ...

Figures and the rules they back are in ``docs/reliability.md``.
"""

from __future__ import annotations

from stream_rec.chaos.harness import COMPARED, ChaosResult, Restart, Rig, chaos_settings, workload
from stream_rec.chaos.hostile_cases import (
    ACCEPTED,
    HostileCase,
    Outcome,
    hostile_cases,
    hostile_markdown,
    hostile_table,
    run_case,
)
from stream_rec.chaos.scenarios import (
    SCENARIOS,
    broker_restart,
    kill_during_catch_up,
    kill_loop,
    model_stall,
    slow_consumer,
    two_workers_rebalance,
)

__all__ = [
    "ACCEPTED",
    "COMPARED",
    "SCENARIOS",
    "ChaosResult",
    "HostileCase",
    "Outcome",
    "Restart",
    "Rig",
    "broker_restart",
    "chaos_settings",
    "hostile_cases",
    "hostile_markdown",
    "hostile_table",
    "kill_during_catch_up",
    "kill_loop",
    "model_stall",
    "run_case",
    "slow_consumer",
    "two_workers_rebalance",
    "workload",
]
