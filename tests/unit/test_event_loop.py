"""Every role runs on the event loop ``STREAM_REC_EVENT_LOOP`` names (uvloop by default)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from stream_rec.config import Settings
from stream_rec.errors import ConfigError
from stream_rec.worker import new_event_loop


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
