"""The learned ranker: served = evaluated, priors = the blend, learning moves toward labels."""

from __future__ import annotations

import numpy as np

from stream_rec import assembly
from stream_rec.config import Settings
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, Event
from stream_rec.core.features import FEATURES, CandidateSet
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.learned_ranker import (
    LearnedRanker,
    LearnerParams,
    RankerState,
    StreamLearner,
)
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


def test_stream_learner_learns_from_the_lists_it_was_served() -> None:
    items = [f"i{n}" for n in range(6)]
    rec = Recommender(Catalog(CatalogItem(i, i.upper(), "") for i in items), ItemStats(),
                      ranker=LearnedRanker(LearnerParams(sample_every=1)))
    learner = rec.learner()
    profiles: dict[str, UserProfile] = {}
    ts = 1_300_000_000_000
    for u in range(20):  # everybody buys i0 then i1, and is served after each purchase
        for step, item in enumerate(("i0", "i1")):
            user = f"u{u}"
            before = profiles.get(user, UserProfile.new(user))
            event = Event(f"e{u}-{step}", "purchase", user, ts + 60_000 * (2 * u + step),
                          item_id=item)
            learner.on_event(event)
            obs = rec.observe(before, event)
            profiles[user] = obs.profile
            if obs.delta is not None:
                rec.stats.learn_one(obs.delta)
            rec.recommend(obs.profile, now_ms=event.ts_ms, trigger=event, learn=True)
    assert learner.lists == 20  # each user's second purchase labels the list after the first
    assert learner.labels + learner.misses == 20
    assert learner.labels > 0
    assert rec.ranker is not None and rec.ranker.updates == learner.labels
    mid = profiles["u0"]
    assert rec.recommend(mid, now_ms=ts + 10**7)[0].item_id in items


def _candidates(items: list[str]) -> CandidateSet:
    x = np.zeros((len(items), len(FEATURES)), np.float32)
    x[:, FEATURES.index("popularity")] = np.arange(len(items), 0, -1)
    return CandidateSet(items, x, np.zeros((len(items), 5)), ({}, {}, {}, {}, {}))


def _view(user: str, item: str, ts_ms: int) -> Event:
    return Event(f"{user}-{item}-{ts_ms}", "view", user, ts_ms, item_id=item)


def test_one_instant_labels_the_list_served_before_it_not_the_lists_served_during_it() -> None:
    learner = StreamLearner(LearnedRanker(LearnerParams(sample_every=1)))
    learner.on_served("u", 1_000, _candidates(["a", "b", "c"]))
    learner.on_event(_view("u", "b", 2_000))
    learner.on_served("u", 2_000, _candidates(["x", "y"]))  # answered at the same instant
    learner.on_event(_view("u", "c", 2_000))  # same instant: still the list from 1_000
    assert (learner.lists, learner.labels, learner.misses) == (1, 2, 0)
    learner.on_event(_view("u", "y", 3_000))  # the next instant labels the list from 2_000
    assert (learner.lists, learner.labels, learner.misses) == (2, 3, 0)
    learner.on_event(_view("u", "y", 3_000))  # the same positive twice counts once
    assert learner.labels == 3


def test_an_event_without_a_list_served_before_it_teaches_nothing() -> None:
    ranker = LearnedRanker(LearnerParams(sample_every=1))
    learner = StreamLearner(ranker)
    learner.on_event(_view("new", "a", 1_000))  # never served
    learner.on_served("u", 5_000, _candidates(["a", "b"]))
    learner.on_event(_view("u", "a", 5_000))  # served at this very instant, after it began
    learner.on_event(_view("u", "a", 4_000))  # out of order: older than the list
    learner.on_event(Event("s", "search", "u", 9_000, query="a"))  # not an item event
    learner.on_event(_view("u", "zzz", 9_000))  # not among the candidates: a miss
    assert (learner.lists, learner.labels, learner.misses, ranker.updates) == (1, 0, 1, 0)


def test_the_learner_keeps_lists_of_a_bounded_number_of_users() -> None:
    learner = StreamLearner(LearnedRanker(LearnerParams(sample_every=1)), max_users=2)
    for user in ("u1", "u2", "u3"):
        learner.on_served(user, 1_000, _candidates(["a", "b"]))
    for user in ("u1", "u2", "u3"):
        learner.on_event(_view(user, "a", 2_000))
    assert learner.labels == 2  # u1's list was dropped, the least recently served


def test_only_lists_served_with_the_model_and_learn_are_kept() -> None:
    items = [f"i{n}" for n in range(4)]
    rec = Recommender(Catalog(CatalogItem(i, i.upper(), "") for i in items), ItemStats(),
                      ranker=LearnedRanker(LearnerParams(sample_every=1)))
    learner = rec.learner()
    profile = UserProfile.new("u")
    trigger = _view("u", "i0", 1_000)
    rec.recommend(profile, now_ms=1_000, trigger=trigger)  # an evaluation query
    rec.recommend(profile, now_ms=1_000, trigger=trigger, semantic=False, learn=True)  # holdout
    learner.on_event(_view("u", "i1", 2_000))
    assert learner.lists == 0
    rec.recommend(profile, now_ms=2_000, trigger=_view("u", "i1", 2_000), learn=True)
    learner.on_event(_view("u", "i2", 3_000))
    assert learner.lists == 1
