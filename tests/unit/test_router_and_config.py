"""Arm assignment is sticky and weighted; settings errors name the key and value."""

from __future__ import annotations

import pytest

from stream_rec.config import ENV_VARS, Settings
from stream_rec.errors import ConfigError
from stream_rec.router import Router, parse_arms


def test_assignment_is_deterministic_and_sticky() -> None:
    router = Router.from_spec("slm:0.5,llm:0.5", "exp-1")
    again = Router.from_spec("slm:0.5,llm:0.5", "exp-1")
    users = [f"user-{i}" for i in range(1000)]
    assert [router.assign(u) for u in users] == [again.assign(u) for u in users]


def test_weights_hold_within_tolerance_on_ten_thousand_users() -> None:
    router = Router.from_spec("slm:0.7,llm:0.2,holdout:0.1", "exp-2")
    counts: dict[str, int] = {}
    for i in range(10_000):
        arm = router.assign(str(i))
        counts[arm] = counts.get(arm, 0) + 1
    assert abs(counts["slm"] / 10_000 - 0.7) < 0.02
    assert abs(counts["llm"] / 10_000 - 0.2) < 0.02
    assert abs(counts["holdout"] / 10_000 - 0.1) < 0.015


def test_a_new_salt_reshuffles_users() -> None:
    a = Router.from_spec("x:1,y:1", "one")
    b = Router.from_spec("x:1,y:1", "two")
    moved = sum(a.assign(str(i)) != b.assign(str(i)) for i in range(2000))
    assert 800 < moved < 1200


def test_bad_arm_specs_say_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="not a number"):
        parse_arms("slm:lots")
    with pytest.raises(ConfigError, match="unique"):
        parse_arms("slm:1,slm:1")


def test_settings_read_from_env_with_types() -> None:
    s = Settings.from_env({"STREAM_REC_TOP_K": "5", "STREAM_REC_HALF_LIFE_S": "60",
                           "STREAM_REC_TRIGGER_TYPES": "purchase, view",
                           "STREAM_REC_BROKER": "kafka://k1:9092,k2:9092"})
    assert (s.top_k, s.half_life_s, s.trigger_types) == (5, 60.0, ("purchase", "view"))


def test_bad_settings_name_the_variable_and_value() -> None:
    with pytest.raises(ConfigError, match="STREAM_REC_TOP_K='many'"):
        Settings.from_env({"STREAM_REC_TOP_K": "many"})
    with pytest.raises(ConfigError, match="STREAM_REC_BROKER='redis://x'"):
        Settings.from_env({"STREAM_REC_BROKER": "redis://x"})


def test_settings_survive_their_env_form() -> None:
    s = Settings(top_k=7, broker="tansu://127.0.0.1:1", trigger_types=("view",))
    assert Settings.from_env(s.to_env()) == s
    assert set(s.to_env()) == set(ENV_VARS)


def test_secrets_are_masked_when_described() -> None:
    assert Settings(sasl_password="hunter2").describe()["sasl_password"] == "***"
