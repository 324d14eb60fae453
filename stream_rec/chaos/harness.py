"""The fault-injection rig: topics, worker processes, a producer, monitors and the oracle.

A :class:`Rig` owns one set of topics and one consumer group on a broker. It starts and
kills worker processes (each slot with its own RocksDB dir), feeds records from a
background thread, samples every process's RSS, and at the end :meth:`Rig.finish` checks
the run against the truth:

- **user state**: the oracle replays the events topic *as the broker holds it* (partition
  and offset order, producer retries included) through the pure core; every live worker's
  ``/state/{user}`` must equal it on every compared field. Fewer events counted than the
  oracle = lost, more = double-counted.
- **changelog**: the last value per key of the users changelog (what a worker with an
  empty disk recovers) must equal the oracle too.
- **downstream**: every valid trigger event has a recommendation; duplicates (same
  ``rec_id`` twice) are counted; one trigger never maps to two ``rec_id`` values.
- **dead letters**: every invalid record of the events topic is dead-lettered.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import random
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from stream_rec.broker.publisher import catalog_records, event_records, publish
from stream_rec.broker.security import client_security_kwargs
from stream_rec.broker.topics import ensure_topics
from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.catalog import Catalog
from stream_rec.core.events import CatalogItem, Event, EventLimits, parse_keyed_event
from stream_rec.core.item_stats import ItemStats
from stream_rec.core.profile import ProfileParams, UserProfile
from stream_rec.core.recommender import Recommender, rec_id_for
from stream_rec.errors import InvalidEvent, StreamRecError
from stream_rec.local.brokers import RunningBroker
from stream_rec.local.hostile import bad_events
from stream_rec.local.processes import WorkerProcess

__all__ = ["COMPARED", "ChaosResult", "Feeder", "Record", "Restart", "Rig", "chaos_settings",
           "workload"]

Record = tuple[bytes | None, bytes]
#: User-state fields compared with the oracle (``offsets``: last applied source offset).
COMPARED = ("user_id", "recent", "purchased", "cart", "counts", "recent_event_ids",
            "first_ts_ms", "last_ts_ms", "offsets")
_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase", "search", "rec_request",
          "rec_click")
_TYPE_WEIGHTS = (55, 14, 4, 10, 6, 6, 5)


def chaos_settings(broker: RunningBroker, run_dir: Path, **overrides: Any) -> Settings:
    """Settings for a worker on its own topics and group (unique tag) on ``broker``.

    The model is off (``model_path="none"``: the fast scorer) unless ``overrides`` set a
    ``model_path``: state, offsets and delivery do not depend on it, and a worker without
    it starts in seconds. The model scenarios turn it on.
    """
    tag = uuid.uuid4().hex[:8]
    scheme = "tansu" if broker.info.kind == "tansu" else "kafka"
    base = Settings(broker=f"{scheme}://{broker.info.bootstrap}", topic_prefix=f"chaos-{tag}",
                    app_id=f"chaos-{tag}", partitions=4, data_dir=run_dir / "state",
                    commit_interval_s=0.5, log_level="info", model_path="none")
    return replace(base, **overrides)


def workload(n: int, *, rng: random.Random, items: Sequence[str], users: int = 120,
             hostile_every: int = 0, client_dup_every: int = 0,
             now_ms: int | None = None) -> list[Record]:
    """``n`` valid events (a seeded mix of every type over ``items``), plus a hostile record
    after every ``hostile_every`` and a client retry (same event again) every
    ``client_dup_every`` valid events. Timestamps rise towards ``now_ms``."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    tag = f"{rng.getrandbits(32):08x}"
    people = [f"user-{tag[:4]}-{i}" for i in range(users)]
    popularity = [1.0 / (rank + 1) for rank in range(len(items))]
    ts = now - n * 1000
    out: list[Record] = []
    hostile = bad_events(max(1, n // hostile_every) if hostile_every else 0, ts_ms=now - 1000,
                         rng=rng, users=tuple(people[:8]))
    for i in range(n):
        ts += rng.randint(1, 900)
        kind = rng.choices(_TYPES, _TYPE_WEIGHTS)[0]
        user = people[min(users - 1, int(rng.paretovariate(1.2)) - 1)] if rng.random() < 0.5 \
            else rng.choice(people)
        fields: dict[str, Any] = {}
        if kind == "search":
            fields["query"] = rng.choice(["lantern", "heart", "bag", "mug", "cake"])
        elif kind != "rec_request":
            fields["item_id"] = rng.choices(items, popularity)[0]
        if kind == "rec_click":
            fields["rec_id"] = f"{rng.getrandbits(64):016x}"
        if kind == "purchase":
            fields["quantity"] = rng.randint(1, 12)
        event = Event(event_id=f"ev-{tag}-{i}", type=kind, user_id=user, ts_ms=ts, **fields)
        out.extend(event_records([event]))
        if client_dup_every and i % client_dup_every == client_dup_every - 1:
            out.append(out[-1])
        if hostile_every and i % hostile_every == hostile_every - 1 and hostile:
            bad = hostile[(i // hostile_every) % len(hostile)]
            out.append((bad.key, bad.value))
    return out


class Feeder(threading.Thread):
    """Publishes records from a thread, one record per batch, retrying through outages.

    A send that fails (broker down) is sent again: the log may then hold it twice, as a
    real client's retry would; the worker must count it once.
    """

    def __init__(self, bootstrap: str, topic: str, records: Sequence[Record], *,
                 rate: float, client_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__(name="chaos-feeder", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.records = records
        self.rate = rate
        self.client_kwargs = dict(client_kwargs or {})
        self.sent = 0
        self.retries = 0
        self.elapsed_s = 0.0
        self.error: BaseException | None = None
        self._stop_flag = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the rig, not swallowed
            self.error = exc

    def stop(self) -> None:
        self._stop_flag.set()

    async def _main(self) -> None:
        started = time.monotonic()
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=0,
                                    max_batch_size=16, request_timeout_ms=5000,
                                    retry_backoff_ms=200, acks="all", **self.client_kwargs)
        await producer.start()
        try:
            for n, (key, value) in enumerate(self.records):
                if self.rate > 0:
                    delay = started + n / self.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                while not self._stop_flag.is_set():
                    try:
                        await producer.send_and_wait(self.topic, value=value, key=key)
                        break
                    except KafkaError:
                        self.retries += 1
                        await asyncio.sleep(0.25)
                if self._stop_flag.is_set():
                    return
                self.sent = n + 1
        finally:
            self.elapsed_s = time.monotonic() - started
            with contextlib.suppress(KafkaError):
                await producer.stop()


class RssMonitor(threading.Thread):
    """Samples the RSS of watched processes every ``interval_s`` (labels → MB)."""

    def __init__(self, interval_s: float = 0.5) -> None:
        super().__init__(name="chaos-rss", daemon=True)
        self.interval_s = interval_s
        self.samples: list[tuple[float, str, float]] = []
        self._watched: dict[str, psutil.Process] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._t0 = time.monotonic()

    def watch(self, label: str, pid: int) -> None:
        with self._lock, contextlib.suppress(psutil.Error):
            self._watched[label] = psutil.Process(pid)

    def unwatch(self, label: str) -> None:
        with self._lock:
            self._watched.pop(label, None)

    def run(self) -> None:
        while not self._done.wait(self.interval_s):
            with self._lock:
                watched = list(self._watched.items())
            now = round(time.monotonic() - self._t0, 1)
            for label, proc in watched:
                with contextlib.suppress(psutil.Error):
                    self.samples.append((now, label, proc.memory_info().rss / 2**20))

    def stop(self) -> None:
        self._done.set()

    def peak(self, prefix: str) -> float:
        return round(max((mb for _, label, mb in self.samples if label.startswith(prefix)),
                         default=0.0), 1)

    def timeline(self, prefix: str, points: int = 24) -> list[tuple[float, float]]:
        """(seconds, MB) of processes whose label starts with ``prefix``, thinned out."""
        rows = [(t, round(mb, 1)) for t, label, mb in self.samples if label.startswith(prefix)]
        step = max(1, len(rows) // points)
        return rows[::step] + ([rows[-1]] if rows and (len(rows) - 1) % step else [])


@dataclass(frozen=True, slots=True)
class Restart:
    """One worker start: which slot, what its disk held, and seconds until ``/readyz``."""

    slot: int
    local_state: str  # "fresh" (first start), "kept" or "deleted"
    ready_s: float


@dataclass
class ChaosResult:
    """Figures of one scenario run; ``ok`` when nothing was lost, doubled or missed."""

    scenario: str
    broker: str
    guarantee: str
    seed: int
    records_sent: int = 0
    valid_in_log: int = 0
    invalid_in_log: int = 0
    producer_retries: int = 0
    kills: int = 0
    kills_mid_stream: int = 0
    users_compared: int = 0
    users_missing: int = 0
    events_lost: int = 0
    events_double_counted: int = 0
    users_mismatched: int = 0
    changelog_events_lost: int = 0
    changelog_events_double_counted: int = 0
    changelog_users_mismatched: int = 0
    recs_messages: int = 0
    recs_distinct: int = 0
    recs_duplicates: int = 0
    recs_missing: int = 0
    recs_unstable: int = 0
    recs_duplicates_read_uncommitted: int | None = None
    # a trigger recommended for the first time after a later event of its partition was:
    # the worker handled events out of order (offset dedupe then drops the earlier one)
    recs_first_seen_out_of_order: int = 0
    recs_degraded: int = 0  # recommendations that fell back from the model (tagged)
    skipped_as_duplicate: int = 0  # by the live workers (since their last start)
    # events not yet committed when the run ended: lag, not loss (their effect is missing
    # from state, so a non-zero backlog makes "lost" an upper bound)
    backlog_at_end: int = 0
    dlq_distinct: int = 0
    dlq_missing: int = 0
    dlq_unexpected: int = 0
    restarts: list[Restart] = field(default_factory=list)
    recs_resume_s: float | None = None
    worker_peak_rss_mb: float = 0.0
    worker_rss_mb: list[tuple[float, float]] = field(default_factory=list)
    broker_peak_rss_mb: float = 0.0
    processed_per_s: float = 0.0
    workers_alive: bool = True
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.users_missing or self.events_lost or self.events_double_counted
                    or self.users_mismatched or self.changelog_users_mismatched
                    or self.recs_missing or self.recs_unstable or self.dlq_missing
                    or self.dlq_unexpected)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["worker_rss_mb"] = " ".join(f"{t:g}s:{mb:g}" for t, mb in self.worker_rss_mb)
        out["ok"] = self.ok
        return out


@dataclass
class _Oracle:
    states: dict[str, dict[str, Any]]
    rec_ids: dict[str, str]  # trigger event_id -> rec_id
    invalid: set[tuple[int, int]]
    valid: int
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # first (p, offset)


class Rig:
    """One scenario's topics, workers, producer and monitors on a broker."""

    def __init__(self, broker: RunningBroker, settings: Settings, run_dir: Path, *,
                 seed: int = 0, catalog: Sequence[CatalogItem] = (),
                 worker_env: Mapping[str, str] | None = None) -> None:
        self.broker = broker
        self.worker_env = dict(worker_env or {})
        self.settings = settings
        self.run_dir = run_dir
        self.seed = seed
        self.catalog = catalog
        self.bootstrap = broker.info.bootstrap
        self.client_kwargs = client_security_kwargs(settings)
        self.live: dict[int, WorkerProcess] = {}
        self.restarts: list[Restart] = []
        self.kills = 0
        self.kills_mid_stream = 0
        self.feeder: Feeder | None = None
        self.notes: list[str] = []
        self.rss = RssMonitor()
        self._started = time.monotonic()
        self._launches = 0
        atexit.register(self.stop_all)  # no orphaned workers if the caller forgets

    # ----- set-up ---------------------------------------------------------------------------
    def prepare(self) -> Rig:
        """Create the topics, publish the catalog, start the RSS monitor."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(ensure_topics(self.bootstrap, self.settings, self.client_kwargs))
        if self.catalog:
            asyncio.run(publish(self.bootstrap, self.settings.topics.catalog,
                                list(catalog_records(self.catalog)),
                                client_kwargs=self.client_kwargs, one_record_batches=True))
        self.rss.start()
        if self.broker.pid is not None:
            self.rss.watch("broker", self.broker.pid)
        return self

    def data_dir(self, slot: int) -> Path:
        return Path(self.settings.data_dir) / f"w{slot}"

    # ----- workers --------------------------------------------------------------------------
    def start_worker(self, slot: int = 0, *, delete_state: bool = False,
                     timeout_s: float = 180.0) -> WorkerProcess:
        """Start (or restart) the worker of ``slot`` and wait until it is ready."""
        data_dir = self.data_dir(slot)
        had_state = data_dir.exists()
        if delete_state:
            shutil.rmtree(data_dir, ignore_errors=True)
        kind = "fresh" if not had_state else ("deleted" if delete_state else "kept")
        data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
        self._launches += 1
        worker = WorkerProcess(replace(self.settings, data_dir=data_dir),
                               log_path=self.run_dir / f"worker{slot}-{self._launches}.log",
                               extra_env=self.worker_env)
        worker.start()
        self.live[slot] = worker
        self.rss.watch(f"worker{slot}", worker.pid)
        ready_s = worker.wait_ready(timeout_s=timeout_s)
        self.restarts.append(Restart(slot, kind, round(ready_s, 2)))
        return worker

    def kill(self, slot: int = 0) -> None:
        """SIGKILL the worker of ``slot``."""
        worker = self.live.pop(slot)
        self.rss.unwatch(f"worker{slot}")
        if self.feeder is not None and self.feeder.is_alive():
            self.kills_mid_stream += 1
        worker.kill()
        self.kills += 1

    def stop_all(self) -> None:
        """SIGKILL every live worker and stop the producer and the monitor (idempotent)."""
        for slot in list(self.live):
            self.live.pop(slot).kill()
        self.rss.stop()
        if self.feeder is not None:
            self.feeder.stop()

    # ----- producer -------------------------------------------------------------------------
    def feed(self, records: Sequence[Record], rate: float) -> Feeder:
        """Start publishing ``records`` to the events topic at ``rate``/s (0 = flat out)."""
        self.feeder = Feeder(self.bootstrap, self.settings.topics.events, records, rate=rate,
                             client_kwargs=self.client_kwargs)
        self.feeder.start()
        return self.feeder

    def feeding(self) -> bool:
        return self.feeder is not None and self.feeder.is_alive()

    def wait_fed(self, timeout_s: float = 600.0) -> None:
        assert self.feeder is not None
        self.feeder.join(timeout_s)
        if self.feeder.is_alive():
            self.feeder.stop()
            raise StreamRecError(f"producer still sending after {timeout_s:.0f} s")
        if self.feeder.error is not None:
            raise StreamRecError(f"producer failed: {self.feeder.error!r}")

    # ----- progress -------------------------------------------------------------------------
    def wait_processed(self, timeout_s: float = 180.0) -> bool:
        """Block until the group has committed the events topic's end offsets."""
        deadline = time.monotonic() + timeout_s
        committed: dict[int, int] = {}
        ends: dict[int, int] = {}
        while time.monotonic() < deadline:
            committed, ends = asyncio.run(self.group_offsets())
            if all(end == 0 or committed.get(p, -1) >= end for p, end in ends.items()):
                return True
            if not any(w.alive() for w in self.live.values()):
                self.notes.append("no live worker while waiting for the end of the stream")
                return False
            time.sleep(0.5)
        self.notes.append(f"events not all committed after {timeout_s:.0f} s: committed "
                          f"{dict(sorted(committed.items()))}, ends {dict(sorted(ends.items()))}")
        return False

    def recs_end(self) -> int:
        """Sum of the recommendations topic's end offsets."""
        return sum(asyncio.run(_end_offsets(self.bootstrap, self.settings.topics.recs,
                                            self.client_kwargs)).values())

    async def group_offsets(self) -> tuple[dict[int, int], dict[int, int]]:
        topic = self.settings.topics.events
        partitions = [TopicPartition(topic, p) for p in range(self.settings.partitions)]
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.client_kwargs)
        await admin.start()
        try:  # Tansu drops the connection on OffsetFetch without a partition list
            committed = await admin.list_consumer_group_offsets(self.settings.app_id,
                                                                partitions=partitions)
        finally:
            await admin.close()
        ends = await _end_offsets(self.bootstrap, topic, self.client_kwargs)
        return {tp.partition: meta.offset for tp, meta in committed.items()}, ends

    # ----- the verdict ----------------------------------------------------------------------
    def finish(self, scenario: str, *, processed_timeout_s: float = 90.0) -> ChaosResult:
        """Wait for the stream to be processed, then check everything against the oracle."""
        if self.feeder is not None and self.feeder.is_alive():
            self.wait_fed()
        self.wait_processed(processed_timeout_s)
        committed, ends = asyncio.run(self.group_offsets())
        backlog = sum(max(0, end - max(committed.get(p, 0), 0)) for p, end in ends.items())
        settings = self.settings
        exactly_once = settings.processing_guarantee == "exactly_once"
        isolation = "read_committed" if exactly_once else "read_uncommitted"
        result = ChaosResult(scenario=scenario, broker=self.broker.info.kind,
                             guarantee=settings.processing_guarantee, seed=self.seed)
        events_log = self._read(settings.topics.events)
        oracle = oracle_from_log(events_log, settings)
        result.backlog_at_end = backlog
        result.records_sent = self.feeder.sent if self.feeder else 0
        result.producer_retries = self.feeder.retries if self.feeder else 0
        result.valid_in_log, result.invalid_in_log = oracle.valid, len(oracle.invalid)
        # user state on every live worker
        found: dict[str, list[dict[str, Any]]] = {}
        for user in oracle.states:
            found[user] = [s for w in self.live.values() if w.alive()
                           for s in [w.state(user)] if s is not None]
        check = compare_states(oracle.states, found)
        result.users_compared = len(oracle.states)
        result.users_missing = check["missing"]
        result.events_lost, result.events_double_counted = check["lost"], check["doubled"]
        result.users_mismatched = check["mismatched"]
        result.examples.extend(check["examples"])
        # what a recovery from an empty disk would see
        changelog = self._read(f"{settings.app_id}-users-changelog", isolation)
        folded = _fold_changelog(changelog)
        check = compare_states(oracle.states, {u: [s] for u, s in folded.items()})
        result.changelog_events_lost = check["lost"]
        result.changelog_events_double_counted = check["doubled"]
        result.changelog_users_mismatched = check["mismatched"] + check["missing"]
        result.examples.extend(f"changelog: {e}" for e in check["examples"])
        # downstream
        recs = self._read(settings.topics.recs, isolation)
        _check_recs(result, recs, oracle)
        if exactly_once and self.broker.info.kind != "tansu":
            raw = self._read(settings.topics.recs, "read_uncommitted")
            ids = [codec.loads(r.value)["rec_id"] for r in raw]
            result.recs_duplicates_read_uncommitted = len(ids) - len(set(ids))
        dead = self._read(settings.topics.dlq, isolation)
        sources = {(d["source"]["partition"], d["source"]["offset"])
                   for d in (codec.loads(r.value) for r in dead)}
        result.dlq_distinct = len(sources)
        result.dlq_missing = len(oracle.invalid - sources)
        result.dlq_unexpected = len(sources - oracle.invalid)
        # process figures
        result.kills, result.kills_mid_stream = self.kills, self.kills_mid_stream
        result.restarts = list(self.restarts)
        result.worker_peak_rss_mb = self.rss.peak("worker")
        result.worker_rss_mb = self.rss.timeline("worker")
        result.broker_peak_rss_mb = self.rss.peak("broker")
        result.workers_alive = all(w.alive() for w in self.live.values())
        with contextlib.suppress(OSError):
            result.skipped_as_duplicate = int(sum(
                w.metric_total("stream_rec_events_duplicate_total")
                for w in self.live.values() if w.alive()))
        result.wall_s = round(time.monotonic() - self._started, 1)
        result.notes.extend(self.notes)
        return result

    def _read(self, topic: str, isolation: str = "read_uncommitted") -> list[Any]:
        return asyncio.run(read_topic(self.bootstrap, topic, isolation=isolation,
                                      client_kwargs=self.client_kwargs))


# ----- oracle and checks ----------------------------------------------------------------------
def oracle_from_log(records: Iterable[Any], settings: Settings) -> _Oracle:
    """Replay the events topic, as stored, through the pure core in one clean pass."""

    limits = EventLimits(max_bytes=settings.max_event_bytes,
                         max_context_keys=settings.max_context_keys,
                         max_future_skew_ms=int(settings.max_future_skew_s * 1000))
    recommender = Recommender(Catalog(), ItemStats(), profile_params=ProfileParams(
        recent_items=settings.recent_items, half_life_s=settings.half_life_s,
        dedupe_window=settings.dedupe_window))
    profiles: dict[str, UserProfile] = {}
    rec_ids: dict[str, str] = {}
    positions: dict[str, tuple[int, int]] = {}
    invalid: set[tuple[int, int]] = set()
    valid = 0
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        try:
            event = parse_keyed_event(record.key, record.value, int(time.time() * 1000), limits)
        except InvalidEvent:
            invalid.add((record.partition, record.offset))
            continue
        valid += 1
        positions.setdefault(event.event_id, (record.partition, record.offset))
        before = profiles.get(event.user_id) or UserProfile.new(event.user_id)
        profiles[event.user_id] = recommender.observe(
            before, event, partition=record.partition, offset=record.offset).profile
        if event.type in settings.trigger_types:
            rec_ids[event.event_id] = rec_id_for(event.user_id, event.event_id)
    states = {user: comparable(p.to_dict()) for user, p in profiles.items()}
    return _Oracle(states, rec_ids, invalid, valid, positions)


def comparable(state: Mapping[str, Any]) -> dict[str, Any]:
    return {key: state.get(key) for key in COMPARED}


def compare_states(expected: Mapping[str, dict[str, Any]],
                   found: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Lost / double-counted events and mismatched users; every copy of a user must match."""
    out: dict[str, Any] = {"missing": 0, "lost": 0, "doubled": 0, "mismatched": 0,
                           "examples": []}
    for user, want in expected.items():
        copies = found.get(user) or []
        want_n = sum(want["counts"].values())
        if not copies:
            out["missing"] += 1
            out["lost"] += want_n
            if len(out["examples"]) < 5:
                out["examples"].append(f"{user}: no state ({want_n} events)")
            continue
        for copy in copies:
            got = comparable(copy)
            if got == want:
                continue
            got_n = sum((got["counts"] or {}).values())
            out["lost"] += max(0, want_n - got_n)
            out["doubled"] += max(0, got_n - want_n)
            out["mismatched"] += 1
            if len(out["examples"]) < 5:
                fields = [k for k in COMPARED if got[k] != want[k]]
                out["examples"].append(f"{user}: {got_n} events counted, oracle {want_n}; "
                                       f"differs in {fields}")
    return out


def _fold_changelog(records: Iterable[Any]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        key = codec.loads(record.key)
        if record.value is None:
            latest.pop(key, None)
            continue
        value = codec.loads(record.value)
        latest[key] = codec.loads(value) if isinstance(value, str | bytes) else value
    return latest


def _check_recs(result: ChaosResult, recs: Sequence[Any], oracle: _Oracle) -> None:
    by_trigger: dict[str, set[str]] = {}
    ids = []
    newest: dict[int, int] = {}  # source partition -> highest offset recommended so far
    for record in sorted(recs, key=lambda r: (r.partition, r.offset)):
        rec = codec.loads(record.value)
        ids.append(rec["rec_id"])
        result.recs_degraded += bool(rec.get("degraded"))
        trigger = rec["trigger_event_id"]
        if trigger not in by_trigger and trigger in oracle.positions:
            partition, offset = oracle.positions[trigger]
            if offset < newest.get(partition, -1):
                result.recs_first_seen_out_of_order += 1
            newest[partition] = max(offset, newest.get(partition, -1))
        by_trigger.setdefault(trigger, set()).add(rec["rec_id"])
    result.recs_messages, result.recs_distinct = len(ids), len(set(ids))
    result.recs_duplicates = len(ids) - len(set(ids))
    missing = sorted(oracle.positions[t] for t in set(oracle.rec_ids) - set(by_trigger))
    result.recs_missing = len(missing)
    if missing:
        result.examples.append(f"no recommendation for the events at (partition, offset) "
                               f"{missing[:8]}")
    result.recs_unstable = sum(
        1 for trigger, seen in by_trigger.items()
        if len(seen) > 1 or (trigger in oracle.rec_ids and seen != {oracle.rec_ids[trigger]}))


async def _end_offsets(bootstrap: str, topic: str,
                       client_kwargs: Mapping[str, Any]) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **client_kwargs)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: end for tp, end in ends.items()}


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(50):
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    return []


async def read_topic(bootstrap: str, topic: str, *, isolation: str = "read_uncommitted",
                     client_kwargs: Mapping[str, Any] | None = None,
                     timeout_s: float = 60.0) -> list[Any]:
    """Every record of ``topic`` up to its end offsets now (last stable offsets when
    ``isolation`` is read_committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level=isolation, fetch_max_wait_ms=50,
                                **dict(client_kwargs or {}))
    await consumer.start()
    out: list[Any] = []
    try:
        partitions = await _partitions(consumer, topic)
        if not partitions:
            return out
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                break
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out
