"""Arm assignment is sticky and weighted; settings errors name the key and value."""

from __future__ import annotations

import pytest

from stream_rec.config import ENV_VARS, Settings
from stream_rec.core.router import Router, parse_arms
from stream_rec.errors import ConfigError


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


def test_arms_come_from_settings_and_every_user_gets_one_of_them() -> None:
    settings = Settings.from_env({"STREAM_REC_ARMS": "slm:0.45,llm:0.45,holdout:0.1",
                                  "STREAM_REC_EXPERIMENT_SALT": "exp-9"})
    router = Router.from_spec(settings.arms, settings.experiment_salt)
    counts = {arm.name: 0 for arm in router.arms}
    for i in range(10_000):
        counts[router.assign(f"user-{i}")] += 1
    assert abs(counts["slm"] / 10_000 - 0.45) < 0.02
    assert abs(counts["llm"] / 10_000 - 0.45) < 0.02
    assert abs(counts["holdout"] / 10_000 - 0.10) < 0.015
    assert settings.llm_arms == ("llm",) and settings.holdout_arms == ("holdout",)


def test_an_arm_with_weight_zero_gets_no_users() -> None:
    router = Router.from_spec("slm:1,llm:0", "exp-1")
    assert {router.assign(str(i)) for i in range(2000)} == {"slm"}


def test_a_users_arm_depends_on_nothing_but_salt_weights_and_id() -> None:
    order_a = Router.from_spec("slm:0.5,llm:0.5", "s")
    users = [f"u{i}" for i in range(500)]
    first = [order_a.assign(u) for u in users]
    for u in reversed(users):  # call order and other users do not matter
        order_a.assign(u)
    assert [Router.from_spec("slm:0.5,llm:0.5", "s").assign(u) for u in users] == first


def test_the_holdout_arm_ranks_without_the_model() -> None:
    from stream_rec.core.catalog import Catalog
    from stream_rec.core.events import Event
    from stream_rec.core.item_stats import ItemStats
    from stream_rec.core.profile import UserProfile
    from stream_rec.core.recommender import Recommender

    asked: list[int] = []

    def search(profile: object, n: int, exclude: object) -> list[tuple[str, float, str]]:
        asked.append(n)
        return []

    recommender = Recommender(Catalog(), ItemStats(), vector_search=search)
    profile = recommender.observe(UserProfile.new("u"),
                                  Event("e1", "view", "u", 1_300_000_000_000, item_id="a")).profile
    recommender.recommend(profile, now_ms=1_300_000_000_000, semantic=False)
    assert asked == []
    recommender.recommend(profile, now_ms=1_300_000_000_000)
    assert asked


@pytest.mark.parametrize(("env", "message"), [
    ({"STREAM_REC_LLM_BACKEND": "gpt"}, "STREAM_REC_LLM_BACKEND='gpt'"),
    ({"STREAM_REC_LLM_METHOD": "vibes"}, "STREAM_REC_LLM_METHOD='vibes'"),
    ({"STREAM_REC_ROLE": "llm", "STREAM_REC_LLM_BACKEND": "openai"}, "STREAM_REC_LLM_URL=''"),
    ({"STREAM_REC_HOLDOUT_ARMS": "llm"}, "must not share an arm"),
    ({"STREAM_REC_LLM_MAX_IN_FLIGHT": "0"}, "STREAM_REC_LLM_MAX_IN_FLIGHT=0"),
    ({"STREAM_REC_LLM_DEADLINE_MS": "-1"}, "STREAM_REC_LLM_DEADLINE_MS=-1.0"),
])
def test_bad_llm_arm_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Settings.from_env(env)


def test_covisit_history_cannot_reach_past_the_recent_items_a_profile_keeps() -> None:
    assert Settings.from_env({"STREAM_REC_COVISIT_HISTORY": "20"}).covisit_history == 20
    with pytest.raises(ConfigError, match="STREAM_REC_COVISIT_HISTORY=21 must be between 1"):
        Settings.from_env({"STREAM_REC_COVISIT_HISTORY": "21"})
    with pytest.raises(ConfigError, match="STREAM_REC_COVISIT_HISTORY=0"):
        Settings.from_env({"STREAM_REC_COVISIT_HISTORY": "0"})


def test_an_llm_worker_on_an_http_server_is_a_valid_configuration() -> None:
    s = Settings.from_env({"STREAM_REC_ROLE": "llm", "STREAM_REC_LLM_BACKEND": "openai",
                           "STREAM_REC_LLM_URL": "http://127.0.0.1:8000/v1",
                           "STREAM_REC_LLM_API_KEY": "sk-secret"})
    assert s.topics.rerank_results == "stream-rec.rerank-results"
    assert s.describe()["llm_api_key"] == "***"


def test_attribution_tables_are_kept_exactly_when_an_experiment_runs() -> None:
    assert not Settings().attribution_enabled  # one slm arm: nothing to compare
    assert Settings(arms="slm:0.5,llm:0.5").attribution_enabled
    assert Settings(arms="llm:1").attribution_enabled
    assert Settings(arms="slm:1", ab_attribution="on").attribution_enabled
    assert not Settings(arms="slm:0.5,llm:0.5", ab_attribution="off").attribution_enabled
    with pytest.raises(ConfigError, match="STREAM_REC_AB_ATTRIBUTION='maybe'"):
        Settings.from_env({"STREAM_REC_AB_ATTRIBUTION": "maybe"})
