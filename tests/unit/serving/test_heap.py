"""The worker freezes its long-lived heap when ready, so full collections skip it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from stream_rec.serving.heap import HeapFreezer


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_nothing_is_frozen_before_the_worker_is_ready() -> None:
    ready = False
    heap = HeapFreezer(lambda: ready, clock=_Clock())

    assert heap.tick() is False
    assert gc.get_freeze_count() == 0
    ready = True
    assert heap.tick() is True
    assert gc.get_freeze_count() > 0


def test_garbage_cycles_are_collected_before_the_survivors_are_frozen() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    dead = weakref.ref(a)
    kept = _Node()
    kept.other = kept
    del a, b

    assert HeapFreezer(lambda: True, clock=_Clock()).tick() is True
    assert dead() is None  # the cycle was garbage: collected, not frozen
    # the live one is frozen: a full collection no longer walks it
    assert kept not in gc.get_objects(generation=2)
    assert kept.other is kept


def test_what_accumulates_after_readiness_is_frozen_again_every_period() -> None:
    clock = _Clock()
    heap = HeapFreezer(lambda: True, every_s=600.0, clock=clock)
    assert heap.tick() is True
    first = gc.get_freeze_count()
    later = [_Node() for _ in range(1_000)]

    clock.now += 599.0
    assert heap.tick() is False
    assert gc.get_freeze_count() == first
    clock.now += 1.0
    assert heap.tick() is True
    assert gc.get_freeze_count() >= first + len(later)


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="every_s must be > 0"):
        HeapFreezer(lambda: True, every_s=0)
