"""Evaluation protocols: which events a replayer streams, and when it asks for what.

A :class:`Split` is replayed like this::

    cases = iter(split.cases)                      # sorted by at_index
    for i, event in enumerate(split.train_events):
        for case in cases_at(i): ask(case)         # before events[i] is applied
        apply(event)
    for case in cases_at(len(split.train_events)): ask(case)

so ``TestCase.at_index`` counts positions in ``split.train_events``; every case sees the
state built from ``train_events[:at_index]``. Rank ``split.item_ids`` minus ``case.masked``
(or only ``case.candidates`` when set) and score with ``split.metrics`` keys through
:class:`stream_rec.evaluation.metrics.RankingAccumulator`.

Protocols (see docs in each function): ``llamarec``, ``minionerec``, ``time-split``,
``sampled-100``, ``served``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from stream_rec.config import Settings
from stream_rec.core.events import Event
from stream_rec.datasets.dataset import Dataset
from stream_rec.errors import ConfigError, DatasetError

__all__ = [
    "DEFAULT_PROTOCOLS",
    "PROTOCOLS",
    "Split",
    "TestCase",
    "llamarec_split",
    "minionerec_split",
    "sampled_split",
    "served_split",
    "time_split",
]

# Event types that count as a user-item interaction; remove_from_cart does not.
INTERACTION_TYPES = frozenset({"purchase", "add_to_cart", "view", "rec_click"})


@dataclass(frozen=True, slots=True)
class TestCase:
    """One question to the recommender: rank for ``user_id`` before ``train_events[at_index]``."""

    __test__ = False  # not a pytest class

    user_id: str
    at_index: int
    relevant: frozenset[str]
    masked: frozenset[str]
    now_ms: int
    candidates: frozenset[str] | None = None
    # the event the answer follows (the ``served`` protocol: a worker's trigger), or None
    trigger: Event | None = None


@dataclass(frozen=True, slots=True)
class Split:
    """Events to stream, cases to ask, and what to rank and report.

    ``item_ids`` is the ranking universe (sorted); ``metrics`` the keys the protocol
    reports, e.g. ``("recall@10", "ndcg@10")``; ``stats`` counts after filtering.
    """

    protocol: str
    train_events: tuple[Event, ...]
    cases: tuple[TestCase, ...]
    stats: Mapping[str, int]
    item_ids: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (f"Split(protocol={self.protocol!r}, train_events=<{len(self.train_events)}>, "
                f"cases=<{len(self.cases)}>, items=<{len(self.item_ids)}>, "
                f"stats={dict(self.stats)})")


def llamarec_split(dataset: Dataset, *, stage: Literal["test", "valid"] = "test",
                   ask_at: Literal["end", "own_time"] = "end",
                   min_interactions: int = 5) -> Split:
    """Leave-one-out after an iterative k-core, as LlamaRec prepares MovieLens.

    Items without a catalog title are dropped, then users and items with fewer than
    ``min_interactions`` interactions, repeatedly until none are left. Each user's
    interactions are ordered by (ts_ms, item id); the last is the test item, the one before
    the validation item. ``stage="test"`` streams everything except each user's test item
    (so the validation item is history at test time); ``stage="valid"`` also withholds the
    validation item and asks for it. Ranking covers every item left after filtering, with
    the user's streamed history masked.

    ``ask_at="end"`` (default, as LlamaRec: it scores after training on everything but the
    held-out items) asks every user after the whole stream, ``now_ms`` the time of the last
    streamed event: the clock of a worker that has just applied the whole stream. Not the
    user's own last event: the state then holds everybody's later events, and a clock set
    before them would age the item statistics backwards. ``"own_time"`` asks each user
    right after their own last streamed event, ``now_ms`` that event's time: the moment a
    worker answers the user's last trigger, holding only what was streamed before it.

    Neither reads the held-out event: its time would tell the recommender when the user
    comes back (and, in ``own_time``, which other users' events to stream before asking),
    which no worker knows when it answers.
    """
    if stage not in ("test", "valid"):
        raise ConfigError(f"llamarec: stage must be 'test' or 'valid', got {stage!r}")
    if ask_at not in ("end", "own_time"):
        raise ConfigError(f"llamarec: ask_at must be 'end' or 'own_time', got {ask_at!r}")
    if min_interactions < 1:
        raise ConfigError(f"llamarec: min_interactions must be at least 1, "
                          f"got {min_interactions}")
    titled = {item.item_id for item in dataset.catalog if item.title.strip()}
    events = [e for e in _interactions(dataset.events) if e.item_id in titled]
    events = _k_core(events, min_interactions)
    by_user: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_user[event.user_id].append(event)
    held_out = 1 if stage == "test" else 2
    held: dict[str, Event] = {}
    withheld: set[str] = set()
    for user, seq in by_user.items():
        seq.sort(key=lambda e: (e.ts_ms, _natural(_item(e))))
        if len(seq) > held_out:
            held[user] = seq[-held_out]
            withheld.update(e.event_id for e in seq[-held_out:])
    train = tuple(e for e in events if e.event_id not in withheld)
    end_ms = max((e.ts_ms for e in train), default=0)
    history: dict[str, set[str]] = defaultdict(set)
    last_index: dict[str, int] = {}
    for index, event in enumerate(train):
        history[event.user_id].add(_item(event))
        last_index[event.user_id] = index
    cases = []
    for user, target in held.items():
        if ask_at == "end":
            at_index, now_ms = len(train), end_ms
        else:
            own = last_index[user]  # the user keeps at least one streamed event
            at_index, now_ms = own + 1, train[own].ts_ms
        cases.append(TestCase(user_id=user, at_index=at_index,
                              relevant=frozenset({_item(target)}),
                              masked=frozenset(history[user]), now_ms=now_ms))
    items = _sorted_ids({_item(e) for e in events})
    return Split(
        protocol="llamarec", train_events=train, cases=_ordered(cases), item_ids=items,
        metrics=("recall@5", "recall@10", "ndcg@5", "ndcg@10", "mrr@10"),
        stats=_stats(users=len(by_user), items=len(items), interactions=len(events),
                     train_events=len(train), cases=len(cases)),
    )


def minionerec_split(dataset: Dataset) -> Split:
    """MiniOneRec's next-item test: every test-CSV row, asked in row order.

    Everything is streamed: valid rows and each user's earlier history first; a test row is
    asked just before its target event, which is then streamed, so a user's later rows see
    it. Ranking covers the whole catalog, nothing masked. Needs the ``context`` that
    :func:`~stream_rec.datasets.amazon_minionerec.load_amazon_minionerec` puts on events.
    """
    cases = [
        TestCase(user_id=e.user_id, at_index=i, relevant=frozenset({_item(e)}),
                 masked=frozenset(), now_ms=e.ts_ms)
        for i, e in enumerate(dataset.events)
        if e.context.get("split") == "test" and e.context.get("role") == "target"
    ]
    if not cases:
        raise DatasetError(f"minionerec protocol: dataset {dataset.name!r} has no test-row "
                           "targets (events with context split='test', role='target'); load "
                           "it with load_dataset('amazon-minionerec', dir)")
    valid = sum(1 for e in dataset.events
                if e.context.get("split") == "valid" and e.context.get("role") == "target")
    items = _sorted_ids({item.item_id for item in dataset.catalog})
    return Split(
        protocol="minionerec", train_events=dataset.events, cases=tuple(cases),
        item_ids=items, metrics=("hr@3", "hr@5", "hr@10", "ndcg@3", "ndcg@5", "ndcg@10"),
        stats=_stats(users=len({e.user_id for e in dataset.events}), items=len(items),
                     interactions=len(dataset.events), valid_samples=valid,
                     test_samples=len(cases), cases=len(cases)),
    )


def time_split(dataset: Dataset, *, cut: str | int | datetime = "2011-11-01") -> Split:
    """Global time split: stream every basket before ``cut``, test each known customer's
    first basket on or after it.

    ``cut`` is an ISO date/time (UTC when naive), a datetime, or epoch milliseconds. A
    basket is the events sharing user, ``context["invoice"]`` and ``ts_ms``. A customer is
    known if they have a basket before the cut; every distinct item of their first later
    basket (earliest time, then invoice) is relevant. Ranking covers the whole catalog,
    nothing masked; every case is asked after the whole training stream, ``now_ms`` being
    the basket's time.
    """
    cut_ms = _cut_ms(cut)
    train: list[Event] = []
    later: dict[str, tuple[int, str]] = {}
    later_items: dict[tuple[str, int, str], set[str]] = defaultdict(set)
    for event in _interactions(dataset.events):
        if event.ts_ms < cut_ms:
            train.append(event)
            continue
        key = (event.ts_ms, _basket(event))
        later_items[(event.user_id, *key)].add(_item(event))
        if event.user_id not in later or key < later[event.user_id]:
            later[event.user_id] = key
    known = {e.user_id for e in train}
    cases = [
        TestCase(user_id=user, at_index=len(train),
                 relevant=frozenset(later_items[(user, *later[user])]),
                 masked=frozenset(), now_ms=later[user][0])
        for user in known if user in later
    ]
    items = _sorted_ids({item.item_id for item in dataset.catalog})
    return Split(
        protocol="time-split", train_events=tuple(train), cases=_ordered(cases),
        item_ids=items, metrics=("hr@10", "ndcg@10", "recall@10"),
        stats=_stats(train_baskets=len({(e.user_id, _basket(e), e.ts_ms) for e in train}),
                     train_events=len(train), users=len(known), items=len(items),
                     test_customers=len(cases), cases=len(cases), cut_ms=cut_ms),
    )


def sampled_split(dataset: Dataset, *, base: str | None = None, n_negatives: int = 100,
                  rng: random.Random | None = None, **base_options: Any) -> Split:
    """A base protocol's cases, each ranked among its relevant items plus ``n_negatives``
    items the user never interacted with (anywhere in the log), drawn uniformly from the
    base protocol's ranking universe with ``rng`` (``random.Random(0)`` when omitted).

    ``base`` defaults to the dataset's usual protocol (:data:`DEFAULT_PROTOCOLS`).
    """
    if n_negatives < 1:
        raise ConfigError(f"sampled: n_negatives must be at least 1, got {n_negatives}")
    base = base or DEFAULT_PROTOCOLS.get(dataset.name)
    if base is None or base not in PROTOCOLS or base.startswith("sampled"):
        raise ConfigError(f"sampled: base must be one of {sorted(_BASES)}, got {base!r} "
                          f"(no default for dataset {dataset.name!r})")
    rng = rng if rng is not None else random.Random(0)
    split = PROTOCOLS[base](dataset, **base_options)
    seen: dict[str, set[str]] = defaultdict(set)
    for event in dataset.events:
        if event.item_id is not None:
            seen[event.user_id].add(event.item_id)
    universe = split.item_ids
    in_universe = frozenset(universe)
    cases = []
    for case in split.cases:
        exclude = (seen[case.user_id] | case.relevant) & in_universe
        negatives = _sample_unseen(universe, exclude, n_negatives, rng)
        cases.append(TestCase(user_id=case.user_id, at_index=case.at_index,
                              relevant=case.relevant, masked=frozenset(), now_ms=case.now_ms,
                              candidates=case.relevant | negatives))
    return Split(protocol=f"sampled-{n_negatives}", train_events=split.train_events,
                 cases=tuple(cases), item_ids=universe, metrics=("hr@10",),
                 stats=MappingProxyType({**split.stats, "negatives": n_negatives}))


def served_split(dataset: Dataset, *, max_events: int = 0,
                 trigger_types: Iterable[str] | None = None) -> Split:
    """What a worker sends, scored: every recommendation it emits for the stream.

    The first ``max_events`` events of the dataset (0 = all; a *slice*, in stream order)
    are streamed as a client publishes them. Each event of a ``trigger_types`` type whose
    user has a later interaction in the slice is a case, asked right after the event is
    applied, with the event as the trigger and its time as the clock: exactly the
    recommendation a worker sends for it (``TestCase.trigger`` carries the event; nothing
    masked, the whole catalog ranked). The relevant items are those of the user's next
    interaction instant (every item of their next events sharing its time).

    A slice replayed through a running worker over the broker must give, trigger by
    trigger, the lists ``stream-rec eval --protocol served --recs-out`` writes
    (``stream-rec verify`` checks it).
    """
    if max_events < 0:
        raise ConfigError(f"served: max_events must be >= 0, got {max_events}")
    # default: what a worker with default settings answers
    triggers = frozenset(Settings().trigger_types if trigger_types is None else trigger_types)
    events = dataset.events[:max_events] if max_events else dataset.events
    next_items: dict[int, frozenset[str]] = {}
    ahead: dict[str, tuple[int, set[str]]] = {}  # user -> their next instant: (ts, items)
    for index in range(len(events) - 1, -1, -1):  # backwards: each user's next instant
        event = events[index]
        found = ahead.get(event.user_id)
        if event.type in triggers and found is not None:
            next_items[index] = frozenset(found[1])
        if event.item_id is not None and event.type in INTERACTION_TYPES:
            if found is not None and found[0] == event.ts_ms:
                found[1].add(event.item_id)
            else:
                ahead[event.user_id] = (event.ts_ms, {event.item_id})
    cases = [TestCase(user_id=events[i].user_id, at_index=i + 1,
                      relevant=relevant, masked=frozenset(),
                      now_ms=events[i].ts_ms, trigger=events[i])
             for i, relevant in sorted(next_items.items())]
    items = _sorted_ids({item.item_id for item in dataset.catalog})
    return Split(
        protocol="served", train_events=tuple(events), cases=tuple(cases), item_ids=items,
        metrics=("hr@10", "ndcg@10", "recall@10"),
        stats=_stats(events=len(events), users=len({e.user_id for e in events}),
                     items=len(items), triggers=sum(1 for e in events if e.type in triggers),
                     cases=len(cases)),
    )


def _sample_unseen(universe: tuple[str, ...], exclude: set[str], n: int,
                   rng: random.Random) -> frozenset[str]:
    """``n`` distinct items of ``universe`` not in ``exclude`` (a subset of it), uniformly."""
    if len(universe) - len(exclude) <= 2 * n:
        pool = [item for item in universe if item not in exclude]
        return frozenset(pool if len(pool) <= n else rng.sample(pool, n))
    chosen: set[str] = set()
    while len(chosen) < n:
        item = universe[rng.randrange(len(universe))]
        if item not in exclude:
            chosen.add(item)
    return frozenset(chosen)


def _interactions(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if e.item_id is not None and e.type in INTERACTION_TYPES]


def _k_core(events: list[Event], k: int) -> list[Event]:
    """Drop users and items with fewer than ``k`` interactions until none are left."""
    while True:
        users: dict[str, int] = defaultdict(int)
        items: dict[str, int] = defaultdict(int)
        for e in events:
            users[e.user_id] += 1
            items[_item(e)] += 1
        kept = [e for e in events if items[_item(e)] >= k and users[e.user_id] >= k]
        if len(kept) == len(events):
            return kept
        events = kept


def _item(event: Event) -> str:
    assert event.item_id is not None  # _interactions keeps item events only
    return event.item_id


def _basket(event: Event) -> str:
    return str(event.context.get("invoice", ""))


def _natural(value: str) -> tuple[int, int | str]:
    """Numbers before strings, numbers compared as numbers: "9" < "10" < "a"."""
    return (0, int(value)) if value.isdigit() else (1, value)


def _sorted_ids(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(ids, key=_natural))


def _ordered(cases: list[TestCase]) -> tuple[TestCase, ...]:
    return tuple(sorted(cases, key=lambda c: (c.at_index, c.now_ms, _natural(c.user_id))))


def _stats(**counts: int) -> Mapping[str, int]:
    return MappingProxyType(counts)


def _cut_ms(cut: str | int | datetime) -> int:
    if isinstance(cut, bool):
        raise ConfigError(f"time-split: cut must be an ISO date, datetime or epoch ms, "
                          f"got {cut!r}")
    if isinstance(cut, int):
        return cut
    if isinstance(cut, str):
        try:
            cut = datetime.fromisoformat(cut)
        except ValueError as exc:
            raise ConfigError(f"time-split: cut must be an ISO date such as '2011-11-01', "
                              f"got {cut!r}") from exc
    if cut.tzinfo is None:
        cut = cut.replace(tzinfo=UTC)
    return int(cut.timestamp() * 1000)


PROTOCOLS: Mapping[str, Callable[..., Split]] = MappingProxyType({
    "llamarec": llamarec_split,
    "minionerec": minionerec_split,
    "time-split": time_split,
    "sampled-100": sampled_split,
    "served": served_split,
})
_BASES = frozenset(name for name in PROTOCOLS if not name.startswith("sampled"))

# The protocol each bundled dataset is evaluated with by default.
DEFAULT_PROTOCOLS: Mapping[str, str] = MappingProxyType({
    "movielens": "llamarec",
    "amazon-minionerec": "minionerec",
    "online-retail": "time-split",
    "online-retail-demo": "time-split",
})
