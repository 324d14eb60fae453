"""The learned ranker: served = evaluated, priors = the blend, learning moves toward labels."""

from __future__ import annotations

import numpy as np

from stream_rec import assembly
from stream_rec.config import Settings
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, Event
from stream_rec.core.features import FEATURES
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.learned_ranker import LearnedRanker, LearnerParams, RankerState
from stream_rec.core.profile import UserProfile
from stream_rec.core.recommender import Recommender
from stream_rec.evaluation.arms import make_arms, served_arm
from stream_rec.evaluation.replay import replay_group  # noqa: F401  (import contract)


def test_evaluated_slm_arm_is_what_a_default_worker_serves() -> None:
    settings = Settings()
    slm = make_arms(["slm"], model_available=True, dataset="movielens",
                    protocol="llamarec")[0]
    assert slm == served_arm(settings)
    assert slm.stats == assembly.stats_params(settings)
    assert slm.profile == assembly.profile_params(settings)
    assert slm.learner == assembly.learner_params(settings)
    rank = slm.rank_params(settings.top_k)
    assert rank.per_source == assembly.rank_params(settings).per_source
    # no dataset-keyed choice: every dataset gets the same arm
    for dataset, protocol in (("amazon-minionerec", "minionerec"),
                              ("online-retail", "time-split")):
        assert make_arms(["slm"], model_available=True, dataset=dataset,
                         protocol=protocol)[0] == slm


def test_ranker_state_round_trips_and_starts_at_the_prior() -> None:
    ranker = LearnedRanker()
    state = ranker.state()
    assert dict(zip(state.features, state.weights, strict=True))["prior"] == 1.0
    x = np.zeros((3, len(FEATURES)), np.float32)
    x[:, 1] = [1.0, 0.0, -1.0]
    ranker.learn_one(x, 2)
    again = RankerState.from_dict(ranker.state().to_dict())
    assert again == ranker.state()
    assert LearnedRanker(state=again).score(x).tolist() == ranker.score(x).tolist()


def test_learning_raises_the_labelled_candidates_score() -> None:
    ranker = LearnedRanker(LearnerParams(learning_rate=0.1))
    x = np.zeros((4, len(FEATURES)), np.float32)
    x[:, FEATURES.index("popularity")] = [3.0, 2.0, 1.0, 0.0]  # the label is the least popular
    for _ in range(50):
        ranker.learn_one(x, 3)
    scores = ranker.score(x)
    assert int(np.argmax(scores)) == 3


def test_stream_learner_labels_the_list_before_the_event() -> None:
    items = [f"i{n}" for n in range(6)]
    rec = Recommender(Catalog(CatalogItem(i, i.upper(), "") for i in items), ItemStats(),
                      ranker=LearnedRanker(LearnerParams(sample_every=1)))
    learner = rec.learner()
    profiles: dict[str, UserProfile] = {}
    ts = 1_300_000_000_000
    for u in range(20):  # everybody buys i0 then i1
        for step, item in enumerate(("i0", "i1")):
            user = f"u{u}"
            before = profiles.get(user, UserProfile.new(user))
            event = Event(f"e{u}-{step}", "purchase", user, ts + 60_000 * (2 * u + step),
                          item_id=item)
            learner.on_event(before, event)
            obs = rec.observe(before, event)
            profiles[user] = obs.profile
            if obs.delta is not None:
                rec.stats.learn_one(obs.delta)
    assert learner.labels > 0
    top = rec.recommend(UserProfile.new("new").__class__.new("x"), now_ms=ts)
    assert top  # popular backfill for a new user
    mid = profiles["u0"]
    assert rec.recommend(mid, now_ms=ts + 10**7)[0].item_id in items


def test_bought_days_says_how_long_ago_the_user_last_bought_each_candidate() -> None:
    items = ["tea", "mug", "pot"]
    rec = Recommender(Catalog(CatalogItem(i, i.upper(), "") for i in items), ItemStats(),
                      ranker=LearnedRanker())
    day = 86_400_000
    profile = UserProfile.new("u")
    for n, (item, ts) in enumerate((("tea", 0), ("mug", 0), ("tea", 3 * day))):
        event = Event(f"e{n}", "purchase", "u", ts, item_id=item)
        obs = rec.observe(profile, event)
        profile = obs.profile
        assert obs.delta is not None
        rec.stats.learn_one(obs.delta)
    found = rec.candidates(profile, now_ms=10 * day)
    days = {item: float(found.x[k, FEATURES.index("bought_days")])
            for k, item in enumerate(found.items)}
    assert days["tea"] == np.float32(np.log1p(7.0))  # last bought on day 3
    assert days["mug"] == np.float32(np.log1p(10.0))
    assert days.get("pot", 0.0) == 0.0  # never bought


def test_a_state_saved_before_a_feature_was_added_keeps_its_weights() -> None:
    old = RankerState(("prior", "bought", "gone"), (0.5, 2.0, 9.0), (1.0, 1.0, 1.0))
    weights = dict(zip(FEATURES, LearnedRanker(state=old).w.tolist(), strict=True))
    assert weights["prior"] == 0.5 and weights["bought"] == 2.0
    assert weights["bought_days"] == 0.0  # the new feature starts at its prior
    assert "gone" not in weights
