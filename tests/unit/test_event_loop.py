"""Every role runs on the event loop ``STREAM_REC_EVENT_LOOP`` names (uvloop by default)."""

from __future__ import annotations

import asyncio
import threading

import pytest
import uvloop

from stream_rec.config import Settings
from stream_rec.errors import ConfigError
from stream_rec.worker import install_event_loop, new_event_loop


async def _sleep_and_answer() -> int:
    await asyncio.sleep(0.001)
    return 42


def test_workers_run_on_uvloop_by_default() -> None:
    loop = new_event_loop(Settings().event_loop)
    try:
        assert isinstance(loop, uvloop.Loop)
        assert loop.run_until_complete(_sleep_and_answer()) == 42
    finally:
        loop.close()


def test_the_standard_loop_can_be_chosen() -> None:
    loop = new_event_loop(Settings.from_env({"STREAM_REC_EVENT_LOOP": "asyncio"}).event_loop)
    try:
        assert not isinstance(loop, uvloop.Loop)
        assert loop.run_until_complete(_sleep_and_answer()) == 42
    finally:
        loop.close()


def test_an_unknown_event_loop_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"STREAM_REC_EVENT_LOOP='trio'.*uvloop.*asyncio"):
        Settings.from_env({"STREAM_REC_EVENT_LOOP": "trio"})


def _loop_made_on_another_thread() -> asyncio.AbstractEventLoop:
    made: list[asyncio.AbstractEventLoop] = []
    thread = threading.Thread(target=lambda: made.append(asyncio.new_event_loop()))
    thread.start()
    thread.join()
    return made[0]


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_loops_other_threads_make_follow_the_chosen_kind(kind: str) -> None:
    """faust's consumer thread makes its loop with ``asyncio.new_event_loop()``."""
    try:
        main = install_event_loop(kind)
        other = _loop_made_on_another_thread()
        try:
            assert isinstance(main, uvloop.Loop) == (kind == "uvloop")
            assert isinstance(other, uvloop.Loop) == (kind == "uvloop")
            assert other.run_until_complete(_sleep_and_answer()) == 42
        finally:
            other.close()
            main.close()
    finally:
        asyncio.set_event_loop_policy(None)
        asyncio.set_event_loop(None)
