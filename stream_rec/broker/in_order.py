"""A client that sends events in order: the next one once the previous trigger is answered.

Kafka keeps order within a partition only; events of users on different partitions may be
applied by a worker in another order than they were sent, which changes the shared item
statistics each answer sees. Waiting for each trigger's answer (its recommendation, or its
dead letter) before sending the next event makes a worker apply a stream in exactly its
order, whatever the partitions: what ``stream-rec verify`` and ``stream-rec replay
--in-order`` need to compare a worker's lists with ``stream-rec eval``'s.

    answers = await send_in_order(bootstrap, topics, events, trigger_types)
    answers["or:536365:85123A"]  # → the item ids the worker sent for that trigger
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from stream_rec.config import Topics
from stream_rec.core import codec
from stream_rec.core.events import Event
from stream_rec.errors import BrokerError

__all__ = ["InOrderResult", "send_in_order"]

log = logging.getLogger(__name__)

# recommendations stamped this long before the event was sent still count (the worker's
# clock may be a little behind the client's)
_CLOCK_SKEW_MS = 5_000
_METADATA_WAIT_S = 20.0


@dataclass
class InOrderResult:
    """What came back: each trigger's list (empty for a dead-lettered one), and counts."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    events_sent: int = 0
    triggers: int = 0
    recs: int = 0
    dead_letters: int = 0
    models: set[str] = field(default_factory=set)  # "arm/model" of the recommendations
    elapsed_s: float = 0.0


async def send_in_order(bootstrap: str, topics: Topics, events: Sequence[Event],
                        trigger_types: Iterable[str], *,
                        client_kwargs: Mapping[str, Any] | None = None,
                        answer_timeout_s: float = 60.0,
                        on_sent: Callable[[int], None] | None = None) -> InOrderResult:
    """Send ``events`` to the events topic (keyed by user) one at a time, waiting after each
    trigger for its recommendation or dead letter; raises BrokerError when none comes within
    ``answer_timeout_s`` (the worker is down or behind)."""
    client = dict(client_kwargs or {})
    kinds = frozenset(trigger_types)
    result = InOrderResult()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=20, **client)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, **client)
    await consumer.start()
    try:
        await producer.start()
        await _from_the_end(consumer, (topics.recs, topics.dlq))
        started = time.monotonic()
        for event in events:
            sent_ms = int(time.time() * 1000)
            await producer.send_and_wait(topics.events, codec.dumps(event.to_dict()),
                                         key=event.user_id.encode())
            result.events_sent += 1
            if event.type in kinds:
                result.triggers += 1
                await _await_answer(consumer, topics, event.event_id, result,
                                    answer_timeout_s, not_before_ms=sent_ms - _CLOCK_SKEW_MS)
            if on_sent is not None:
                on_sent(result.events_sent)
        result.elapsed_s = time.monotonic() - started
    finally:
        await producer.stop()
        await consumer.stop()
    return result


async def _from_the_end(consumer: AIOKafkaConsumer, names: Sequence[str]) -> None:
    """Assign every partition of ``names`` at its current end: only answers to what this
    client sends are read."""
    deadline = time.monotonic() + _METADATA_WAIT_S
    while True:  # a topic created just now may take a moment to show in the metadata
        try:  # as ReplicatedState does: the consumer's own view of the cluster
            await consumer._client.force_metadata_update()
        except KafkaError as exc:
            log.warning("metadata refresh failed: %s", exc)
        partitions = [TopicPartition(name, p) for name in names
                      for p in sorted(consumer.partitions_for_topic(name) or ())]
        missing = set(names) - {tp.topic for tp in partitions}
        if not missing:
            break
        if time.monotonic() > deadline:
            raise BrokerError(f"topics {sorted(missing)} do not exist: start a worker (it "
                              "creates them) or run `stream-rec topics`")
        await asyncio.sleep(0.2)
    consumer.assign(partitions)
    for tp, end in (await consumer.end_offsets(partitions)).items():
        consumer.seek(tp, end)


async def _await_answer(consumer: AIOKafkaConsumer, topics: Topics, event_id: str,
                        result: InOrderResult, timeout_s: float, *,
                        not_before_ms: int) -> None:
    """Read the recs and dead-letter topics until the answer to ``event_id`` is there
    (recommendations made before ``not_before_ms`` are an earlier run's: skipped)."""
    deadline = time.monotonic() + timeout_s
    answers = result.answers
    while event_id not in answers:
        if time.monotonic() > deadline:
            raise BrokerError(f"no recommendation or dead letter for trigger {event_id!r} "
                              f"within {timeout_s:g} s: is a worker running on "
                              f"{topics.events!r} (see its log)?")
        batches = await consumer.getmany(timeout_ms=100)
        for tp, messages in batches.items():
            for message in messages:
                if tp.topic == topics.dlq:
                    result.dead_letters += 1
                    original = codec.loads(message.value).get("original_b64", "")
                    answers.setdefault(_dead_event_id(original), [])
                    continue
                rec = codec.loads(message.value)
                trigger = rec.get("trigger_event_id")
                if trigger in answers or rec.get("generated_at_ms", 0) < not_before_ms:
                    continue  # a redelivery's copy, or an earlier run's answer
                result.recs += 1
                result.models.add(f"{rec.get('arm')}/{rec.get('model')}")
                answers[trigger] = [item["item_id"] for item in rec["items"]]


def _dead_event_id(original_b64: str) -> str:
    """The event id inside a dead letter's original bytes ("" when unreadable)."""
    try:
        doc = codec.loads(base64.b64decode(original_b64))
    except (ValueError, codec.DecodeError):
        return ""
    return str(doc.get("event_id", "")) if isinstance(doc, dict) else ""
