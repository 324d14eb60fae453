"""The learned ranker: served = evaluated, priors = the blend, learning moves toward labels."""

from __future__ import annotations

import numpy as np

from stream_rec import assembly
from stream_rec.config import Settings
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, Event
from stream_rec.core.features import FEATURES, CandidateSet
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.learned_ranker import LearnedRanker, LearnerParams, RankerState, StreamLearner
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


def _interactions() -> LearnedRanker:
    return LearnedRanker(LearnerParams(factors=3, factor_learning_rate=0.05))


def test_interactions_add_every_pair_of_features_once() -> None:
    ranker = _interactions()
    rng = np.random.default_rng(3)
    ranker.v = rng.normal(0.0, 0.3, ranker.v.shape)
    x = rng.normal(size=(5, len(FEATURES))).astype(np.float32)
    x64 = x.astype(np.float64)
    pairs = np.array([sum(float(ranker.v[f] @ ranker.v[g]) * x64[r, f] * x64[r, g]
                          for f in range(len(FEATURES)) for g in range(f + 1, len(FEATURES)))
                      for r in range(len(x))])
    np.testing.assert_allclose(ranker.score(x), x64 @ ranker.w + pairs, rtol=1e-9, atol=1e-9)


def test_an_interaction_step_follows_the_gradient_of_the_softmax_loss() -> None:
    ranker = _interactions()
    rng = np.random.default_rng(4)
    ranker.v = rng.normal(0.0, 0.3, ranker.v.shape)
    x = rng.normal(size=(6, len(FEATURES))).astype(np.float32)

    def loss(v: np.ndarray) -> float:
        kept, ranker.v = ranker.v, v
        scores = ranker.score(x)
        ranker.v = kept
        return float(np.log(np.exp(scores - scores.max()).sum()) - (scores[2] - scores.max()))

    numeric = np.zeros_like(ranker.v)
    for index in np.ndindex(*ranker.v.shape):
        bump = np.zeros_like(ranker.v)
        bump[index] = 1e-6
        numeric[index] = (loss(ranker.v + bump) - loss(ranker.v - bump)) / 2e-6
    before = ranker.v.copy()
    ranker.learn_one(x, 2)
    # AdaGrad's first step is lr x sign(gradient) (+ the tiny L2 pull) where it is not clipped
    moved = before - ranker.v
    big = np.abs(numeric) > 1e-3
    assert np.array_equal(np.sign(moved[big]), np.sign(numeric[big]))
    assert loss(ranker.v) < loss(before)


def test_interaction_vectors_round_trip_and_start_the_same_in_every_process() -> None:
    ranker = _interactions()
    np.testing.assert_array_equal(ranker.v, _interactions().v)  # name-seeded, not random
    x = np.random.default_rng(5).normal(size=(4, len(FEATURES))).astype(np.float32)
    for _ in range(5):
        ranker.learn_one(x, 1)
    again = RankerState.from_dict(ranker.state().to_dict())
    assert again == ranker.state() and len(again.factors[0]) == 3
    restored = LearnedRanker(LearnerParams(factors=3), state=again)
    assert restored.score(x).tolist() == ranker.score(x).tolist()
    # a state saved by a linear ranker (no vectors) starts them where a fresh process does
    linear = LearnedRanker(LearnerParams(), state=again).state()
    assert linear.factors == ()
    np.testing.assert_array_equal(LearnedRanker(LearnerParams(factors=3), state=linear).v,
                                  _interactions().v)


def test_a_disabled_feature_has_no_interactions() -> None:
    ranker = LearnedRanker(LearnerParams(factors=2), disabled=frozenset({"sim", "sim_last"}))
    x = np.random.default_rng(6).normal(size=(4, len(FEATURES))).astype(np.float32)
    for _ in range(5):
        ranker.learn_one(x, 0)
    for name in ("sim", "sim_last"):
        assert not ranker.v[FEATURES.index(name)].any()


def test_stream_learner_builds_one_list_per_instant_and_keeps_only_recent_users_lists() -> None:
    items = [f"i{n}" for n in range(8)]
    rec = Recommender(Catalog(CatalogItem(i, i.upper(), "") for i in items), ItemStats(),
                      ranker=LearnedRanker())
    built: list[tuple[str, int]] = []

    def build(profile: UserProfile, now_ms: int) -> CandidateSet:
        built.append((profile.user_id, now_ms))
        return rec.candidates(profile, now_ms=now_ms)

    learner = StreamLearner(rec.ranker, build, max_users=3)
    profiles: dict[str, UserProfile] = {}

    def see(user: str, item: str, ts: int) -> None:
        before = profiles.get(user, UserProfile.new(user))
        event = Event(f"{user}-{item}-{ts}", "purchase", user, ts, item_id=item)
        learner.on_event(before, event)
        profiles[user] = rec.observe(before, event).profile

    for n in range(6):  # every user has a history, so their next events are labelled
        see(f"u{n}", items[n], 1_000)
    built.clear()
    see("u0", "i1", 2_000)  # a basket at 2,000, with two other users in between
    see("u1", "i2", 2_001)
    see("u0", "i2", 2_000)
    see("u2", "i3", 2_002)
    see("u0", "i3", 2_000)
    assert built == [("u0", 2_000), ("u1", 2_001), ("u2", 2_002)]  # one list per instant
    for n in range(3, 6):  # three more users: u0's list is the least recently touched
        see(f"u{n}", "i7", 3_000)
    assert len(learner._pending) == 3 and "u0" not in learner._pending
    built.clear()
    see("u0", "i4", 2_000)  # a straggler of the basket builds its list again
    assert built == [("u0", 2_000)]
