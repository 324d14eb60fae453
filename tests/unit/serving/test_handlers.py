"""The worker's per-message handling, driven without faust or a broker: a dict is the users
table, a dataclass is the consumed record, and the real recommender does the rest."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from typing import Any

import pytest

from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.core.events import CatalogItem, parse_recommendation
from stream_rec.core.recommender import rec_id_for
from stream_rec.serving.handlers import EventHandler, LlmRecHandler, Outputs
from stream_rec.serving.runtime import WorkerRuntime, build_runtime

NOW_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Record:
    """A consumed record, as faust's ``Message`` shows it to the handler."""

    key: bytes | None
    value: bytes | None
    offset: int
    partition: int = 0
    topic: str = "stream-rec.events"
    timestamp: float = NOW_MS / 1000


def _runtime(**overrides: Any) -> WorkerRuntime:
    settings = Settings(model_path="none", broker="kafka://127.0.0.1:1", **overrides)
    runtime = build_runtime(settings, "127.0.0.1:1")  # no connection is made before run()
    for i in range(6):
        runtime.recommender.catalog.upsert(CatalogItem(f"i{i}", f"Item {i}", "cat", 1.0, True))
    return runtime


def _event(event_id: str, user: str = "u1", item: str = "i1", kind: str = "view",
           ts_ms: int = NOW_MS) -> bytes:
    return codec.dumps({"event_id": event_id, "type": kind, "user_id": user,
                        "item_id": item, "ts_ms": ts_ms})




def _handle(handler: EventHandler | LlmRecHandler, record: Record) -> Outputs:
    return asyncio.run(handler.handle(record))


def test_a_trigger_event_updates_state_and_yields_one_recommendation() -> None:
    runtime, users = _runtime(), {}
    handler = EventHandler(runtime, users, clock_ms=lambda: NOW_MS)

    out = _handle(handler, Record(b"u1", _event("e1"), offset=0))

    assert out.dead_letters == [] and out.rerank_requests == []
    [rec] = out.recs
    assert rec.rec_id == rec_id_for("u1", "e1")
    assert rec.user_id == "u1" and rec.trigger_event_id == "e1" and rec.arm == "slm"
    profile = codec.loads(users["u1"])
    assert profile["user_id"] == "u1"
    assert len(runtime.pending_deltas) == 1  # the item-statistics delta of the view


def test_a_redelivered_event_changes_no_state_and_repeats_the_same_rec_id() -> None:
    runtime, users = _runtime(), {}
    handler = EventHandler(runtime, users, clock_ms=lambda: NOW_MS)
    first = _handle(handler, Record(b"u1", _event("e1"), offset=7))
    stored = users["u1"]

    again = _handle(handler, Record(b"u1", _event("e1"), offset=7))

    assert users["u1"] == stored
    assert len(runtime.pending_deltas) == 1  # no second delta: the redelivery is not counted
    assert [r.rec_id for r in again.recs] == [r.rec_id for r in first.recs]
    assert runtime.metrics.duplicates._value.get() == 1


def test_a_non_trigger_event_updates_state_without_a_recommendation() -> None:
    runtime, users = _runtime(trigger_types=("purchase",)), {}
    handler = EventHandler(runtime, users, clock_ms=lambda: NOW_MS)

    out = _handle(handler, Record(b"u1", _event("e1", kind="view"), offset=0))

    assert out.recs == [] and "u1" in users


def test_an_event_keyed_by_another_user_is_dead_lettered_with_its_bytes() -> None:
    runtime, users = _runtime(), {}
    handler = EventHandler(runtime, users, clock_ms=lambda: NOW_MS)
    raw = _event("e1", user="u1")

    out = _handle(handler, Record(b"u2", raw, offset=3, partition=1))

    assert out.recs == [] and users == {}
    [letter] = out.dead_letters
    record = codec.loads(letter.value)
    assert letter.key == b"u2"
    assert record["field"] == "<key>" and "must equal user_id" in record["reason"]
    assert base64.b64decode(record["original_b64"]) == raw
    assert record["source"] == {"topic": "stream-rec.events", "partition": 1, "offset": 3}
    assert record["received_at_ms"] == NOW_MS


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[1, 2]", b'{"type": "buy"}'])
def test_undecodable_input_is_dead_lettered_and_the_next_event_still_applies(raw: bytes) -> None:
    runtime, users = _runtime(), {}
    handler = EventHandler(runtime, users, clock_ms=lambda: NOW_MS)

    bad = _handle(handler, Record(b"u1", raw, offset=0))
    good = _handle(handler, Record(b"u1", _event("e2"), offset=1))

    assert len(bad.dead_letters) == 1 and bad.recs == []
    assert codec.loads(bad.dead_letters[0].value)["reason"]
    assert len(good.recs) == 1 and "u1" in users


class _BrokenTable(dict[str, bytes]):
    def __setitem__(self, key: str, value: bytes) -> None:
        raise OSError("disk full")


def test_a_failure_while_applying_is_dead_lettered_not_raised() -> None:
    handler = EventHandler(_runtime(), _BrokenTable(), clock_ms=lambda: NOW_MS)

    out = _handle(handler, Record(b"u1", _event("e1"), offset=0))

    [letter] = out.dead_letters
    record = codec.loads(letter.value)
    assert record["field"] == "<processing>" and record["value"] == "OSError"


def test_a_user_on_an_llm_arm_gets_a_rerank_request_and_no_recommendation_yet() -> None:
    runtime, users = _runtime(arms="llm:1.0"), {}
    handler = EventHandler(runtime, users, clock_ms=lambda: NOW_MS)
    for offset, user in enumerate(["u2", "u3", "u4"]):  # other users make items popular
        _handle(handler, Record(user.encode(), _event(f"x{offset}", user=user,
                                                      item=f"i{offset + 2}"), offset=offset))

    produced_now = time.time()  # the LLM arm's budget runs from the record's timestamp
    out = _handle(handler, Record(b"u1", _event("e2", item="i1"), offset=9,
                                  timestamp=produced_now))

    assert out.recs == []
    [request] = out.rerank_requests
    assert request.user_id == "u1" and request.arm == "llm"
    assert {c.item_id for c in request.candidates} <= {f"i{i}" for i in range(6)}
    assert len(runtime.llm_arm) == 1  # its fast answer waits for the LLM worker


def test_an_llm_arm_rec_is_restamped_on_its_way_out_and_garbage_is_dead_lettered() -> None:
    runtime = _runtime()
    handler = LlmRecHandler(runtime, lambda: NOW_MS + 40)
    rec = {"rec_id": "r1", "user_id": "u1", "items": [{"item_id": "i2", "score": 1.0,
                                                       "reason": "trending"}],
           "arm": "llm", "model": "llm:x", "trigger_event_id": "e1",
           "generated_at_ms": NOW_MS, "latency_ms": 100.0, "degraded": False,
           "fallback_reason": None, "trigger_ts_ms": NOW_MS}
    parse_recommendation(codec.dumps(rec))  # a valid message of the recs schema

    out = _handle(handler, Record(b"u1", codec.dumps(rec), offset=0, topic="llm-recs"))
    bad = _handle(handler, Record(b"u1", b"not json", offset=1, topic="llm-recs"))

    [sent] = out.recs
    assert sent.generated_at_ms == NOW_MS + 40 and sent.latency_ms == pytest.approx(140.0)
    assert bad.recs == [] and len(bad.dead_letters) == 1


class CountingUsers(dict[str, bytes]):
    """A users table that counts its writes."""

    writes = 0

    def __setitem__(self, key: str, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def _mixed_stream() -> list[Record]:
    """Three users' views, interleaved, with one hostile record and one redelivery."""
    records = []
    for n in range(12):
        user = f"u{n % 3}"
        records.append(Record(user.encode(), _event(f"e{n}", user=user, item=f"i{n % 6}",
                                                   ts_ms=NOW_MS + n), offset=n))
    records.insert(5, Record(b"u9", b"{", offset=99))
    records.append(records[0])  # redelivered inside the batch
    return records


def test_the_worker_folds_its_own_item_deltas_before_answering_the_next_event() -> None:
    runtime, users = _runtime(), {}
    handler = EventHandler(runtime, users, clock_ms=lambda: NOW_MS)
    stats = runtime.recommender.stats

    _handle(handler, Record(b"u2", _event("x1", user="u2", item="i3"), offset=0))
    folded = stats.counts.get("i3", 0)
    out = _handle(handler, Record(b"u1", _event("e1", user="u1", item="i1"), offset=1))

    assert folded == 1  # at once, as `stream-rec eval` folds it: not after the topic's trip
    # and both still go to the other replicas
    assert [row[0] for row in runtime.pending_deltas] == ["i3", "i1"]
    assert "i3" in [item.item_id for item in out.recs[0].items]  # u2's view already counts


def test_a_batch_gives_the_same_state_and_recs_as_one_event_at_a_time() -> None:
    one_runtime, one_users = _runtime(), CountingUsers()
    one = EventHandler(one_runtime, one_users, clock_ms=lambda: NOW_MS)
    alone = [_handle(one, record) for record in _mixed_stream()]
    batch_runtime, batch_users = _runtime(), CountingUsers()
    batched = EventHandler(batch_runtime, batch_users, clock_ms=lambda: NOW_MS)

    out = asyncio.run(batched.handle_batch(_mixed_stream()))

    assert dict(batch_users) == dict(one_users)
    assert [(r.rec_id, r.items) for r in out.recs] == [
        (r.rec_id, r.items) for o in alone for r in o.recs]
    assert [d.value for d in out.dead_letters] == [d.value for o in alone
                                                   for d in o.dead_letters]
    assert batch_runtime.pending_deltas == one_runtime.pending_deltas
    assert batch_users.writes == 3 < one_users.writes  # once per touched user per batch


def test_a_batch_binds_each_users_write_to_that_users_last_message() -> None:
    runtime, users = _runtime(), {}
    handler = EventHandler(runtime, users, clock_ms=lambda: NOW_MS)
    records = [Record(b"a", _event("e1", user="a"), offset=0, partition=1),
               Record(b"b", _event("e2", user="b"), offset=0, partition=2),
               Record(b"a", _event("e3", user="a", ts_ms=NOW_MS + 1), offset=1, partition=1)]
    bound: list[int] = []
    written: list[tuple[str, int]] = []

    class Table(dict[str, bytes]):
        def __setitem__(self, key: str, value: bytes) -> None:
            written.append((key, bound[-1]))
            super().__setitem__(key, value)

    handler.users = Table()
    asyncio.run(handler.handle_batch(records, bind=bound.append))

    assert sorted(written) == [("a", 2), ("b", 1)]
    assert handler.stage_cpu_s["state"] > 0 and handler.stage_cpu_s["ranking"] > 0


def test_a_redelivered_batch_changes_nothing_and_writes_the_state_back() -> None:
    runtime, users = _runtime(), CountingUsers()
    handler = EventHandler(runtime, users, clock_ms=lambda: NOW_MS)
    asyncio.run(handler.handle_batch(_mixed_stream()))
    before, writes, deltas = dict(users), users.writes, len(runtime.pending_deltas)

    again = asyncio.run(handler.handle_batch(_mixed_stream()))

    assert dict(users) == before and users.writes == writes + 3
    assert len(runtime.pending_deltas) == deltas
    assert len(again.recs) == 13 and len(again.dead_letters) == 1
