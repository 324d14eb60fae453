"""The model circuit breaker: open after a run of misses, one trial after the cool-down."""

from __future__ import annotations

import pytest

from stream_rec.model.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_it_stays_closed_while_misses_are_not_consecutive() -> None:
    breaker = CircuitBreaker(failures=3, cooldown_s=5, clock=Clock())
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
        assert breaker.allow()
    assert breaker.state().opened == 0


def test_it_opens_after_the_configured_run_of_misses_and_refuses_calls() -> None:
    breaker = CircuitBreaker(failures=3, cooldown_s=5, clock=Clock())
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert not breaker.allow()
    assert not breaker.allow()
    state = breaker.state()
    assert (state.open, state.opened, state.rejected) == (True, 1, 2)


def test_after_the_cool_down_exactly_one_trial_call_goes_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # others wait for its outcome


def test_a_successful_trial_closes_the_circuit() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.allow() and breaker.allow()
    assert not breaker.state().open


def test_a_failed_trial_opens_it_for_another_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=2, cooldown_s=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert not breaker.allow()
    clock.now += 5
    assert breaker.allow()
    assert breaker.state().opened == 2


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="failures >= 1"):
        CircuitBreaker(failures=0)
