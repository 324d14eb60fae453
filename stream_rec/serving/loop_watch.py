"""How long the worker's event loop goes without running anything else.

The Kafka consumer runs on the worker's own loop (stream_rec/broker/faust_transport.py,
point 5), so its heartbeats wait whenever the loop is busy with one piece of synchronous
work. A block as long as the session timeout makes the group rebalance. :class:`LoopWatch`
measures how late a regular wake-up runs: that lateness is how long the loop was blocked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LoopWatch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoopWatch:
    """Wakes up every ``interval_s`` and reports how late each wake-up ran (its lag);
    a lag of ``warn_s`` or more is logged, with what it risks."""

    interval_s: float = 0.25
    warn_s: float = 1.0
    session_timeout_s: float = 6.0

    def __post_init__(self) -> None:
        if not 0 < self.interval_s < self.warn_s:
            raise ValueError(f"LoopWatch needs 0 < interval_s < warn_s, got "
                             f"interval_s={self.interval_s} warn_s={self.warn_s}")

    async def run(self, on_lag: Callable[[float], None]) -> None:
        """Call ``on_lag(seconds)`` after every wake-up, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, loop.time() - due)
            on_lag(lag)
            if lag >= self.warn_s:
                log.warning(
                    "the event loop was blocked for %.1f s: the Kafka consumer's heartbeats "
                    "wait for it, and a block of %.0f s (the session timeout) makes the group "
                    "rebalance; move long synchronous work off the loop "
                    "(asyncio.to_thread)", lag, self.session_timeout_s)
