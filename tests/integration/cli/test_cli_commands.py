"""``stream-rec produce``, ``watch`` and ``dlq show|replay`` as a user runs them: real CLI
processes against the embedded Tansu broker and a real worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import DEMO, WARMUP, Pipeline, fresh_views, open_pipeline, wait_for

from stream_rec.broker.publisher import event_records
from stream_rec.broker.tail import last_records
from stream_rec.core import codec
from stream_rec.local.brokers import RunningBroker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
TITLES = {item.item_id: item.title for item in DEMO.catalog}


@pytest.fixture
def cli_pipeline(tansu_broker: RunningBroker, tmp_path: Path) -> Iterator[Pipeline]:
    yield from open_pipeline(tansu_broker, tmp_path, "cli", model_path="none",
                             trigger_types=("view",))


def cli(pipe: Pipeline, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_REC_")}
    env["STREAM_REC_TOPIC_PREFIX"] = pipe.settings.topic_prefix
    return subprocess.run([sys.executable, "-m", "stream_rec", *args,
                           "--broker", pipe.settings.broker], capture_output=True, text=True,
                          timeout=timeout_s, cwd=ROOT, env=env)


def dlq_count(pipe: Pipeline) -> int:
    return len(asyncio.run(last_records(pipe.bootstrap, pipe.settings.topics.dlq, 100,
                                        idle_ms=300)))


def test_produce_watch_and_dead_letters_round_trip(cli_pipeline: Pipeline,
                                                   tmp_path: Path) -> None:
    pipe = cli_pipeline
    pipe.start_worker()
    pipe.publish(list(event_records(WARMUP)))
    views = fresh_views(f"cli-{uuid.uuid4().hex[:6]}", 6)
    bad_type = {**views[0].to_dict(), "event_id": "typo-1", "type": "buy"}
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join([*(codec.dumps(v.to_dict()) for v in views),
                                   codec.dumps(bad_type), b'{"user_id": "cut-off'] ) + b"\n")

    produced = cli(pipe, "produce", str(events))
    assert produced.returncode == 0, produced.stderr
    assert f"sent 8 records to {pipe.settings.topics.events}" in produced.stderr

    # watch: one user's recommendation, with catalog titles and reasons
    user = views[2].user_id
    watched = cli(pipe, "watch", "--user", user, "--from-beginning", "--limit", "1",
                  "--timeout-s", "60")
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[0].startswith(f"user {user} slm/fast-scorer")
    ranked = [line.split(". ", 1)[1] for line in lines[1:4]]
    assert all(" — " in line and line.split("  — ")[0] in TITLES.values() for line in ranked)
    as_json = cli(pipe, "watch", "--arm", "slm", "--from-beginning", "--limit", "3", "--json",
                  "--timeout-s", "60")
    recs = [codec.loads(line) for line in as_json.stdout.splitlines()]
    assert len(recs) == 3 and all(item["title"] == TITLES[item["item_id"]]
                                  for rec in recs for item in rec["items"])

    # dlq show: both bad lines, with reasons; payloads only when asked
    wait_for(lambda: dlq_count(pipe) == 2, "the two bad lines to be dead-lettered")
    shown = cli(pipe, "dlq", "show")
    assert shown.returncode == 0, shown.stderr
    assert "'type' must be one of" in shown.stdout and "got 'buy'" in shown.stdout
    assert "payload" not in shown.stdout
    with_payload = cli(pipe, "dlq", "show", "--payload", "--json")
    letters = [codec.loads(line) for line in with_payload.stdout.splitlines()]
    assert [letter["dlq"] for letter in letters] == ["0@0", "0@1"]
    assert all("original_b64" in letter for letter in letters)

    # dlq replay --fixed: a bad fixed file publishes nothing; a good one gets its rec
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(codec.dumps({**bad_type, "type": "view"}) + b"\n" +
                       codec.dumps(bad_type) + b"\n")
    refused = cli(pipe, "dlq", "replay", "--fixed", str(broken))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: {broken}, line 2: 'type' must be one of ['add_to_cart', 'purchase', "
        "'rec_click', 'rec_request', 'remove_from_cart', 'search', 'view'], got 'buy'; "
        "nothing was sent"]
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_bytes(codec.dumps({**bad_type, "event_id": "typo-1-fixed", "type": "view"}))
    replayed = cli(pipe, "dlq", "replay", "--fixed", str(fixed))
    assert replayed.returncode == 0, replayed.stderr
    assert "re-published 1 records" in replayed.stderr
    again = cli(pipe, "watch", "--user", views[0].user_id, "--from-beginning", "--limit", "2",
                "--json", "--timeout-s", "60")
    triggers = {codec.loads(line)["trigger_event_id"] for line in again.stdout.splitlines()}
    assert triggers == {views[0].event_id, "typo-1-fixed"}

    # dlq replay --offset: the original bytes go back to their source topic (still bad here)
    resent = cli(pipe, "dlq", "replay", "--offset", "0@0")
    assert resent.returncode == 0, resent.stderr
    wait_for(lambda: dlq_count(pipe) == 3, "the re-published original to be dead-lettered again")
    missing = cli(pipe, "dlq", "replay", "--offset", "0@99")
    assert missing.returncode == 1 and "0@99" in missing.stderr
