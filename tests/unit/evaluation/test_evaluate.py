"""Replay evaluation on tiny worlds with known answers, through the worker's own calls."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from stream_rec.core import recommender as recommender_module
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, Event
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import Recommender
from stream_rec.datasets import Dataset, TestCase, load_dataset, make_split
from stream_rec.errors import ConfigError
from stream_rec.evaluation import evaluate, evaluate_split, make_arms
from stream_rec.evaluation.arms import ablation_arms
from stream_rec.evaluation.replay import ArmTally, replay_group
from stream_rec.evaluation.report import markdown, to_json
from stream_rec.evaluation.run import CostModel, hashed_cases
from stream_rec.evaluation.stages import split_for_stage

T0_S = 1_300_000_000
GROUPS = 5
USERS_PER_GROUP = 6


def _write_movielens(directory: Path) -> Path:
    """Five taste groups of five films; each user rates their group's films in a rotated order.

    Leave-one-out holds out each user's last film: the only film of their group they have
    not rated, which every other group member rated within co-visitation distance.
    """
    directory.mkdir(parents=True, exist_ok=True)
    movies = ["movieId,title,genres"]
    for g in range(GROUPS):
        for m in range(5):
            movies.append(f"{g * 5 + m + 1},Film {g}-{m} (2000),Genre{g}")
    ratings = ["userId,movieId,rating,timestamp"]
    user = 0
    for g in range(GROUPS):
        for u in range(USERS_PER_GROUP):
            user += 1
            order = [(u + i) % 5 for i in range(5)]
            for step, m in enumerate(order):
                ts = T0_S + step * 1000 + user
                ratings.append(f"{user},{g * 5 + m + 1},4.0,{ts}")
    (directory / "movies.csv").write_text("\n".join(movies) + "\n")
    (directory / "ratings.csv").write_text("\n".join(ratings) + "\n")
    return directory


@pytest.fixture()
def movielens_dir(tmp_path: Path) -> Path:
    return _write_movielens(tmp_path / "ml")


def test_checkerboard_co_visitation_finds_every_held_out_film(movielens_dir: Path) -> None:
    results = evaluate("movielens", movielens_dir, "llamarec", ["popular", "item-knn"],
                       out_dir=None, progress=False, ablation=False)
    knn = results["arms"]["item-knn"]["metrics"]
    assert knn["recall@10"] == 1.0
    assert knn["ndcg@10"] == 1.0  # the only unmasked film of the group, at rank 1
    assert knn["mrr@10"] == 1.0
    assert results["arms"]["popular"]["metrics"]["ndcg@10"] < 0.5
    assert results["split"]["cases"] == GROUPS * USERS_PER_GROUP


def _basket_world() -> Dataset:
    catalog = tuple(CatalogItem(i, f"ITEM {i}", "") for i in ("x", "y", "z", "w"))
    ms = 1_300_000_000_000
    rows = [("u", "x", 1), ("u", "x", 2), ("u", "x", 3), ("u", "y", 4),  # before the cut
            ("v", "w", 5),
            ("u", "x", 100), ("u", "z", 100)]  # u's first basket after the cut: {x, z}
    events = tuple(
        Event(f"e{n}", "purchase", user, ms + day * 86_400_000, item_id=item,
              context={"invoice": f"{user}{day}"})
        for n, (user, item, day) in enumerate(rows))
    return Dataset("toy", catalog, events)


def test_time_split_arithmetic_matches_a_hand_computation() -> None:
    dataset = _basket_world()
    split = make_split(dataset, "time-split", cut=1_300_000_000_000 + 50 * 86_400_000)
    results = evaluate_split(split, dataset.catalog, make_arms(["repeat"], ablation=False),
                             dataset_name="toy", progress=False)
    metrics = results["arms"]["repeat"]["metrics"]
    # x (bought 3 times) ranks first; z was never bought by anybody, so it is never ranked
    assert metrics["hr@10"] == 1.0
    assert metrics["recall@10"] == 0.5
    assert metrics["ndcg@10"] == pytest.approx(1.0 / (1.0 + 1.0 / math.log2(3)))


def test_evaluator_goes_through_the_workers_observe_and_recommend(
        movielens_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"observe": 0, "recommend": 0, "rank": 0}
    observe, recommend = Recommender.observe, Recommender.recommend
    rank, learned = recommender_module.recommend, recommender_module.rank_candidates

    def spy_observe(self: Recommender, *args: object, **kwargs: object) -> object:
        calls["observe"] += 1
        return observe(self, *args, **kwargs)  # type: ignore[arg-type]

    def spy_recommend(self: Recommender, *args: object, **kwargs: object) -> object:
        calls["recommend"] += 1
        return recommend(self, *args, **kwargs)  # type: ignore[arg-type]

    def spy_rank(*args: object, **kwargs: object) -> object:
        calls["rank"] += 1
        return rank(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Recommender, "observe", spy_observe)
    monkeypatch.setattr(Recommender, "recommend", spy_recommend)
    def spy_learned(*args: object, **kwargs: object) -> object:
        calls["rank"] += 1
        return learned(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(recommender_module, "recommend", spy_rank)
    monkeypatch.setattr(recommender_module, "rank_candidates", spy_learned)
    arms = ["popular", "item-knn", "fast"]
    results = evaluate("movielens", movielens_dir, "llamarec", arms, out_dir=None,
                       progress=False, ablation=False)
    split = results["split"]
    groups = len({tuple(a["replay_group"]) for a in results["arms"].values()})
    assert groups == 2  # popular has its own statistics; item-knn and fast share theirs
    assert calls["observe"] == groups * split["train_events"]
    assert calls["recommend"] == len(arms) * split["cases"]
    assert calls["rank"] == calls["recommend"]  # every ranking came through the Recommender


def test_results_json_keys_are_stable(movielens_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    evaluate("movielens", movielens_dir, "llamarec", ["popular", "blend", "fast"], out_dir=out,
             progress=False, plots=False, command="stream-rec eval ...")
    data = json.loads((out / "results.json").read_text())
    assert set(data) >= {"dataset", "protocol", "stage", "split", "arms", "ablation",
                         "published", "reference_baselines", "founding", "machine", "date",
                         "command", "headline", "metrics", "cost_model"}
    assert set(data["machine"]) >= {"cores", "ram_gb", "cpu_model"}
    assert data["headline"] == "recall@10"
    for arm in data["arms"].values():
        assert set(arm) >= {"metrics", "latency_ms_p50", "latency_ms_p99", "rss_mb_peak",
                            "recs_per_s", "cpu_s_per_1k", "usd_per_million",
                            "joules_per_rec", "observe_us_per_event"}
        assert set(arm["metrics"]) == {"recall@5", "recall@10", "ndcg@5", "ndcg@10", "mrr@10"}
        assert "_latency_ms" not in arm
    assert set(data["ablation"]["blend"]["without"]) >= {"covisit", "trending"}
    assert set(data["arms"]["fast"]["slices"]) == {"cold_item", "new_user"}
    assert set(data["published"]["systems"]) == {"LlamaRec", "LRURec", "SASRec"}
    assert (out / "results.md").read_text().startswith("# movielens / llamarec")


def test_the_learners_ablation_is_paired_case_by_case(movielens_dir: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = evaluate("movielens", movielens_dir, "llamarec", ["blend", "fast"], out_dir=out,
                       progress=False, plots=False)
    paired = results["paired"]["fast - blend"]
    assert paired["cases"] == results["split"]["cases_evaluated"]
    fast, blend = results["arms"]["fast"]["metrics"], results["arms"]["blend"]["metrics"]
    for metric, d in paired["metrics"].items():
        assert d["diff"] == pytest.approx(fast[metric] - blend[metric], abs=2e-6)
        assert d["se"] >= 0
    assert "## Paired: fast - blend on the same" in (out / "results.md").read_text()
    only_one = evaluate("movielens", movielens_dir, "llamarec", ["fast"], out_dir=None,
                        progress=False, plots=False)
    assert only_one["paired"] == {}


def test_a_sweep_pairs_each_value_with_the_one_it_is_named_against(movielens_dir: Path) -> None:
    results = evaluate("movielens", movielens_dir, "llamarec", ["item-knn", "popular"],
                       out_dir=None, progress=False, plots=False,
                       pairs=[("popular", "item-knn"), ("popular", "absent")])
    assert set(results["paired"]) == {"popular - item-knn"}
    d = results["paired"]["popular - item-knn"]["metrics"]["recall@10"]
    arms = results["arms"]
    assert d["diff"] == pytest.approx(arms["popular"]["metrics"]["recall@10"]
                                      - arms["item-knn"]["metrics"]["recall@10"], abs=2e-6)


def test_reports_label_every_copied_number_as_external_and_name_its_source(
        movielens_dir: Path) -> None:
    results = evaluate("movielens", movielens_dir, "llamarec", ["popular"], out_dir=None,
                       progress=False, ablation=False)
    assert results["published"]["label"] == "published (external)"
    for entry in [*results["reference_baselines"].values(), *results["founding"].values()]:
        assert "external" in entry["label"] and "not" in entry["source"]
    text = markdown(results)
    assert "| LlamaRec, published (external) | 0.1524 |" in text
    assert "| popularity, reference value (external) |" in text
    assert "| SLM (founding doc), founding doc (external target) |" in text
    assert "not in this repository and was not run here" in text


def test_report_writes_the_three_plots(movielens_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots"
    evaluate("movielens", movielens_dir, "llamarec", ["popular"], out_dir=out, progress=False)
    for name in ("accuracy_vs_latency.png", "latency.png", "metric_at_k.png"):
        assert (out / name).stat().st_size > 1000


def test_cost_model_turns_cpu_time_into_money_and_energy() -> None:
    cost = CostModel(price_per_vcpu_hour=3.6, watts_per_core=20.0)
    assert cost.usd_per_million(0.001) == pytest.approx(1.0)  # 1000 CPU-s at $0.001/s
    assert cost.joules_per_rec(0.001) == pytest.approx(0.02)


def test_valid_stage_never_streams_a_test_target(movielens_dir: Path) -> None:
    test = evaluate("movielens", movielens_dir, "llamarec", ["popular"], out_dir=None,
                    progress=False)
    valid = evaluate("movielens", movielens_dir, "llamarec", ["popular"], out_dir=None,
                     progress=False, stage="valid")
    assert valid["stage"] == "valid"
    assert valid["split"]["train_events"] == test["split"]["train_events"] - test["split"]["cases"]


def test_unknown_arm_and_model_arm_without_model_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="nonsense"):
        make_arms(["nonsense"])
    with pytest.raises(ConfigError, match="language model"):
        make_arms(["slm"], model_available=False)


def test_rerank_arm_runs_only_when_named_and_is_slm_plus_the_rerank() -> None:
    assert "slm-rerank" not in [a.name for a in make_arms(model_available=True)]
    slm, rerank = make_arms(["slm", "slm-rerank"], ablation=False, model_available=True)
    assert rerank.rerank_top_n == 10 and slm.rerank_top_n == 0  # the served list, top 10
    assert (rerank.weights, rerank.learner, rerank.state_key) == (
        slm.weights, slm.learner, slm.state_key)  # one replay: paired on the same cases


def test_hashed_cases_are_a_fixed_subset_in_replay_order() -> None:
    cases = [TestCase(user_id=f"u{n}", at_index=n, relevant=frozenset({"x"}),
                      masked=frozenset(), now_ms=n) for n in range(200)]
    chosen = hashed_cases(cases, 20)
    assert len(chosen) == 20 and chosen == hashed_cases(list(cases), 20)
    assert [c.at_index for c in chosen] == sorted(c.at_index for c in chosen)
    assert chosen != cases[:20] and max(c.at_index for c in chosen) > 100  # spread out
    assert set(hashed_cases(cases, 10)) <= set(chosen)  # a smaller N is a prefix of it


def test_ablation_drops_one_source_at_a_time() -> None:
    blend = make_arms(["blend"], ablation=False)[0]
    names = {a.name for a in ablation_arms(blend)}
    assert "blend-no-covisit" in names and "blend-no-similar" not in names
    for arm in ablation_arms(blend):
        assert len(arm.weights) == len(blend.weights) - 1


# ----- the two core additions evaluation relies on ----------------------------------------

def _popular_world(n_items: int = 300) -> tuple[Recommender, list[str]]:
    items = [f"i{n:03d}" for n in range(n_items)]
    rec = Recommender(Catalog(CatalogItem(i, i.upper(), "") for i in items), ItemStats())
    for n, item in enumerate(items):  # item i bought n_items - i times: i000 most popular
        for k in range(n_items - n):
            rec.stats.learn_one(rec.observe(UserProfile.new(f"u{k}"), Event(
                f"e{n}-{k}", "purchase", f"u{k}", 1_300_000_000_000, item_id=item)).delta)  # type: ignore[arg-type]
    return rec, items


def test_trending_backfill_fills_top_k_even_when_the_top_items_are_excluded() -> None:
    rec, items = _popular_world()
    masked = frozenset(items[:250])  # more than the cached trending list holds
    recs = rec.recommend(UserProfile.new("heavy"), now_ms=1_300_000_000_000, exclude=masked)
    assert [r.item_id for r in recs] == items[250:260]


def test_allow_ranks_only_the_offered_candidates() -> None:
    rec, _ = _popular_world(60)
    offered = frozenset({"i059", "i030", "i001"})
    recs = rec.recommend(UserProfile.new("new"), now_ms=1_300_000_000_000, allow=offered)
    assert [r.item_id for r in recs] == ["i001", "i030", "i059"]


def test_markdown_and_json_survive_nan_values() -> None:
    results = evaluate_split(*_tiny_split(), dataset_name="toy", progress=False)
    results["arms"]["repeat"]["latency_ms_p99"] = float("nan")
    assert "null" in to_json(results)
    assert "| repeat |" in markdown(results)


def _tiny_split() -> tuple[object, ...]:
    dataset = _basket_world()
    split = make_split(dataset, "time-split", cut=1_300_000_000_000 + 50 * 86_400_000)
    return split, dataset.catalog, make_arms(["repeat"], ablation=False)


def test_the_case_hook_sees_every_case_with_the_state_the_arms_answered_from(
        movielens_dir: Path) -> None:
    dataset = load_dataset("movielens", movielens_dir)
    split = split_for_stage(dataset, "llamarec", "test")
    seen: list[tuple[str, int, list[str]]] = []

    def hook(case: TestCase, profile: UserProfile, stats: ItemStats,
             tallies: list[ArmTally]) -> None:
        again = [r.item_id for r in tallies[0].recommender.recommend(
            profile, now_ms=case.now_ms, exclude=case.masked, allow=case.candidates)]
        served_hit = tallies[0].per_case[-1]["recall@10"]  # what the arm just answered
        assert served_hit == float(bool(case.relevant & set(again)))
        seen.append((case.user_id, len(profile.recent), again))

    arm = make_arms(["item-knn"])[0]
    tallies, _ = replay_group(split, dataset.catalog, [arm], top_k=10, cases=split.cases,
                              progress=False, on_case=hook)

    assert [user for user, _, _ in seen] == [case.user_id for case in split.cases]
    assert all(recent > 0 for _, recent, _ in seen)
    assert tallies[0].metrics.result()["recall@10"] == 1.0  # the checkerboard world
    assert all(ranked for _, _, ranked in seen)


def _sweep(data_dir: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    script = Path(__file__).resolve().parents[3] / "bench" / "tune_ranker.py"
    return subprocess.run(
        [sys.executable, str(script), "--dataset", "movielens", "--data-dir", str(data_dir),
         "--protocol", "llamarec", *(arg for s in sets for arg in ("--set", s))],
        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("sets", [(), ("covisit_history=10,5",),
                                  ("top_k=10", "covisit_history=10,5")])
def test_the_validation_sweep_scores_the_defaults_when_given_no_setting(
        movielens_dir: Path, sets: tuple[str, ...]) -> None:
    done = _sweep(movielens_dir, *sets)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    names = [line["arm"] for line in lines]
    assert names == (["covisit_history=10", "covisit_history=5"] if sets else ["default"])
    assert all(0.0 <= line["recall@10"] <= 1.0 for line in lines)
    assert ("vs_first" in lines[-1]) == bool(sets)


def test_the_validation_sweep_refuses_two_swept_fields_and_unknown_ones(
        movielens_dir: Path) -> None:
    two = _sweep(movielens_dir, "top_k=5,10", "covisit_history=10,5")
    assert two.returncode != 0 and "sweep one field at a time" in two.stderr
    unknown = _sweep(movielens_dir, "no_such_setting=1")
    assert unknown.returncode != 0 and "with a Settings field" in unknown.stderr
