"""examples/: the client programs a shop copies, run as subprocesses on the embedded broker.

Each producer must publish events that stream-rec's own validator accepts, keyed by user,
with ids that repeat when the same input is sent again; each consumer must handle a
duplicated recommendation once and commit its offsets after handling. Both flavours
(aiokafka, confluent-kafka) run the same checks.
"""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream_rec.core.events import parse_event, parse_recommendation
from stream_rec.local.brokers import RunningBroker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCHEMAS = ROOT / "docs" / "schemas"
FLAVOURS = ["aiokafka", "confluent"]
ALLOWED_IMPORTS = {"aiokafka", "confluent_kafka", "orjson"}
PARTITIONS = 2

pytestmark = pytest.mark.integration


# ===== helpers ==============================================================================

def run_example(name: str, *args: str, stdin: str | None = None,
                timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>`` with this interpreter, as a shop would run its copy."""
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout_s, check=False,
                          cwd=EXAMPLES)


def new_topic(bootstrap: str, label: str) -> str:
    name = f"test-examples.{label}.{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
        finally:
            await admin.close()

    asyncio.run(create())
    return name


def read_all(bootstrap: str, topic: str, expected: int,
             timeout_s: float = 20) -> list[tuple[bytes, bytes]]:
    """(key, value) of the first ``expected`` messages of ``topic`` (no consumer group)."""

    async def read() -> list[tuple[bytes, bytes]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            out: list[tuple[bytes, bytes]] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < expected and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                out += [(r.key, r.value) for rs in batches.values() for r in rs]
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def publish(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(send())


def committed_total(bootstrap: str, topic: str, group: str) -> int:
    """Sum of the group's committed offsets on ``topic`` (0 where none)."""

    async def fetch() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            offsets = [await consumer.committed(TopicPartition(topic, p))
                       for p in range(PARTITIONS)]
        finally:
            await consumer.stop()
        return sum(offset or 0 for offset in offsets)

    return asyncio.run(fetch())


def schema(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMAS / name).read_text()))


def recommendation(rec_id: str, user_id: str) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    return {"rec_id": rec_id, "user_id": user_id, "arm": "slm", "model": "fast-scorer",
            "items": [{"item_id": "i1", "score": 0.9, "reason": "bought together with i7"},
                      {"item_id": "i2", "score": 0.4, "reason": "popular now"}],
            "trigger_event_id": f"ev-{rec_id}", "trigger_ts_ms": now_ms - 20,
            "generated_at_ms": now_ms, "latency_ms": 20.0, "degraded": False,
            "fallback_reason": None}


# ===== the examples stay copyable ===========================================================

@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_example_imports_only_its_client_and_the_standard_library(path: Path) -> None:
    tree = ast.parse(path.read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    outside = modules - set(sys.stdlib_module_names) - {"__future__"} - ALLOWED_IMPORTS
    assert outside == set(), f"{path.name} imports {outside}: a shop's copy would not run"
    flavour = "aiokafka" if "aiokafka" in path.name else "confluent_kafka"
    assert modules & ALLOWED_IMPORTS <= {flavour, "orjson"}


# ===== producers ============================================================================

@pytest.mark.parametrize("flavour", FLAVOURS)
def test_producer_publishes_valid_events_keyed_by_user(
        flavour: str, tansu_broker: RunningBroker) -> None:
    bootstrap = tansu_broker.info.bootstrap
    topic = new_topic(bootstrap, f"events-{flavour}")
    args = ("--bootstrap", bootstrap, "--topic", topic, "--generate", "25", "--seed", "7")
    done = run_example(f"producer_{flavour}.py", *args)
    assert done.returncode == 0, done.stderr
    assert f"sent 25 events to {topic}" in done.stderr
    messages = read_all(bootstrap, topic, 25)
    assert len(messages) == 25
    validator = schema("event.schema.json")
    now_ms = int(time.time() * 1000)
    for key, value in messages:
        event = parse_event(value, now_ms)  # what the worker does at its edge
        assert key.decode() == event.user_id
        validator.validate(json.loads(value))
    first_ids = {json.loads(value)["event_id"] for _, value in messages}
    assert len(first_ids) == 25
    # sending the same input again (a retry after a crash) repeats the same event ids
    again = run_example(f"producer_{flavour}.py", *args)
    assert again.returncode == 0, again.stderr
    both = read_all(bootstrap, topic, 50)
    assert {json.loads(value)["event_id"] for _, value in both} == first_ids


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_producer_refuses_invalid_lines_naming_them_and_sends_the_rest(
        flavour: str, tansu_broker: RunningBroker, tmp_path: Path) -> None:
    bootstrap = tansu_broker.info.bootstrap
    topic = new_topic(bootstrap, f"file-{flavour}")
    now_ms = int(time.time() * 1000)
    lines = [
        {"type": "view", "user_id": "u1", "item_id": "i1", "ts_ms": now_ms},  # no event_id
        {"type": "view", "user_id": "u1", "item_id": "i1", "ts_ms": now_ms, "colour": "red"},
        {"type": "buy", "user_id": "u2", "item_id": "i2", "ts_ms": now_ms, "event_id": "e2"},
        {"type": "purchase", "user_id": "u3", "ts_ms": now_ms, "event_id": "e3"},
        {"type": "search", "user_id": "u4", "query": "red shoes", "ts_ms": now_ms,
         "event_id": "e4", "context": {"page": "home", "ab": True}},
    ]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n\nnot json\n")
    done = run_example(f"producer_{flavour}.py", "--bootstrap", bootstrap, "--topic", topic,
                       "--file", str(source))
    assert done.returncode == 1, done.stderr  # some lines refused
    assert "line 2: refused: unknown field(s) ['colour']" in done.stderr
    assert "line 3: refused: 'type' must be one of" in done.stderr
    assert "line 4: refused: 'item_id' is required for type 'purchase'" in done.stderr
    assert "line 7: refused: not JSON" in done.stderr
    assert "sent 2 events" in done.stderr and "refused 4" in done.stderr
    messages = read_all(bootstrap, topic, 2)
    events = sorted((json.loads(value) for _, value in messages), key=lambda e: e["user_id"])
    assert [e["user_id"] for e in events] == ["u1", "u4"]
    assert events[0]["event_id"].startswith("ev-")  # derived from the content
    # the same file from standard input: the derived id is the same
    again = run_example(f"producer_{flavour}.py", "--bootstrap", bootstrap, "--topic", topic,
                        "--file", "-", stdin=source.read_text())
    assert again.returncode == 1
    ids = {json.loads(value)["event_id"] for _, value in read_all(bootstrap, topic, 4)}
    assert ids == {events[0]["event_id"], "e4"}


def test_producer_reports_an_unreachable_broker_in_one_line() -> None:
    done = run_example("producer_aiokafka.py", "--bootstrap", "127.0.0.1:9", "--generate", "1",
                       timeout_s=60)
    assert done.returncode == 3
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("broker 127.0.0.1:9: ")


# ===== consumers ============================================================================

@pytest.mark.parametrize("flavour", FLAVOURS)
def test_consumer_handles_a_duplicated_rec_once_and_commits_after_handling(
        flavour: str, tansu_broker: RunningBroker) -> None:
    bootstrap = tansu_broker.info.bootstrap
    topic = new_topic(bootstrap, f"recs-{flavour}")
    first, second = recommendation("rec-a", "u1"), recommendation("rec-b", "u1")
    validator = schema("recommendation.schema.json")
    for rec in (first, second):
        validator.validate(rec)
        parse_recommendation(json.dumps(rec).encode())
    # a redelivery: rec-a twice (same partition, as the same key), then rec-b
    publish(bootstrap, topic, [(b"u1", json.dumps(rec).encode())
                               for rec in (first, first, second)])
    group = f"shop-{uuid.uuid4().hex[:8]}"
    args = ("--bootstrap", bootstrap, "--topic", topic, "--group", group, "--from-beginning")
    done = run_example(f"consumer_{flavour}.py", *args, "--json", "--max-messages", "3")
    assert done.returncode == 0, done.stderr
    handled = [json.loads(line) for line in done.stdout.splitlines()]
    assert [rec["rec_id"] for rec in handled] == ["rec-a", "rec-b"]
    assert handled[0] == first
    assert "received 3 handled 2 duplicates 1 malformed 0" in done.stderr
    assert committed_total(bootstrap, topic, group) == 3
    # the group resumes after its commit: nothing is handled twice
    publish(bootstrap, topic, [(b"u1", b"{not json"), (b"u1", json.dumps(second).encode()),
                               (b"u2", json.dumps(recommendation("rec-c", "u2")).encode())])
    later = run_example(f"consumer_{flavour}.py", *args, "--max-idle-s", "4")
    assert later.returncode == 0, later.stderr
    assert "handled 2 duplicates 0 malformed 1" in later.stderr  # rec-b is new to this run
    assert "rec-a" not in later.stdout
    assert "rec rec-c:" in later.stdout and "i1 (0.900)" in later.stdout
    assert "skipped " in later.stderr and "@3:" in later.stderr
    assert committed_total(bootstrap, topic, group) == 6


def test_seen_set_is_bounded_and_forgets_after_its_ttl() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("consumer_example",
                                                  EXAMPLES / "consumer_aiokafka.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    now = [0.0]
    seen = module.SeenSet(max_size=3, ttl_s=10, clock=lambda: now[0])
    assert [seen.add(k) for k in ("a", "b", "a", "c", "d")] == [True, True, False, True, True]
    assert len(seen) == 3  # "b" was least recently seen: evicted
    assert seen.add("b") is True
    now[0] = 10.5  # everything is older than the TTL
    assert seen.add("a") is True and len(seen) == 1
