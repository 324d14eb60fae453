"""A circuit breaker for model calls: stop waiting on a model that keeps missing deadlines.

Without it, a stalled or overloaded model costs every trigger its full deadline before the
fast order goes out (20 events/s at a 50 ms deadline, docs/reliability.md §5). After
``failures`` consecutive misses (timeouts or a full queue) the circuit opens: calls are
refused at once for ``cooldown_s``. Then one trial call is let through (half-open); a
success closes the circuit, a miss opens it again.

Pure and thread-safe; the clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BreakerState", "CircuitBreaker"]


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A snapshot: ``open`` while calls are refused; counters since start."""

    open: bool
    consecutive_failures: int
    opened: int  # times the circuit opened
    rejected: int  # calls refused while open


class CircuitBreaker:
    """Closed → (``failures`` misses in a row) → open → (``cooldown_s``) → one trial call."""

    def __init__(self, failures: int = 5, cooldown_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or cooldown_s <= 0:
            raise ValueError("a circuit breaker needs failures >= 1 and cooldown_s > 0")
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._open_until: float | None = None
        self._trial_running = False
        self._opened = 0
        self._rejected = 0

    def allow(self) -> bool:
        """May a call go to the model now? Counts a rejection when not."""
        with self._lock:
            if self._open_until is None:
                return True
            if self._clock() >= self._open_until and not self._trial_running:
                self._trial_running = True  # half-open: exactly one trial call
                return True
            self._rejected += 1
            return False

    def record_success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._open_until = None
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            was_trial = self._trial_running
            self._trial_running = False
            if was_trial or (self._open_until is None and self._consecutive >= self.failures):
                self._open_until = self._clock() + self.cooldown_s
                self._opened += 1

    def state(self) -> BreakerState:
        with self._lock:
            return BreakerState(open=self._open_until is not None,
                                consecutive_failures=self._consecutive,
                                opened=self._opened, rejected=self._rejected)
