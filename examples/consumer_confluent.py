#!/usr/bin/env python3
"""Consume stream-rec's recommendations with confluent-kafka, each one handled once.

Copy this file into your shop's code base: it needs only confluent-kafka (and, optionally,
orjson). consumer_aiokafka.py is the same program on asyncio.

    python consumer_confluent.py --bootstrap localhost:9094 --group shop-web
    python consumer_confluent.py --bootstrap localhost:9094 --json --from-beginning

Why deduplicate: stream-rec delivers at least once. Around a worker restart or a rebalance
the same recommendation can be written twice; both copies carry the same ``rec_id``
(docs/schemas/recommendation.schema.json). This consumer remembers the ``rec_id``s it
handled in a bounded set (least recently seen evicted first, ids not seen for
``--dedupe-ttl-s`` forgotten), so memory stays bounded however long it runs.

Offsets are committed only after the messages are handled (``enable.auto.commit=false``):
a crash replays the uncommitted tail instead of losing it, and the set above (or your
handler being idempotent on ``rec_id``, e.g. an upsert) absorbs the replay. The set lives
in memory: after a restart only committed offsets protect you, so make the side effect
idempotent if a duplicate would hurt.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

try:
    import orjson

    def loads(raw: bytes) -> Any:
        return orjson.loads(raw)

    def dumps(value: Any) -> str:
        return orjson.dumps(value).decode()

except ImportError:  # the standard library is enough
    import json

    def loads(raw: bytes) -> Any:
        return json.loads(raw)

    def dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

from confluent_kafka import Consumer, KafkaError, KafkaException


class SeenSet:
    """The ids seen recently: at most ``max_size``, each until unseen for ``ttl_s`` seconds.

    >>> seen = SeenSet(max_size=2, ttl_s=60, clock=lambda: 0.0)
    >>> seen.add("a"), seen.add("a"), seen.add("b"), seen.add("c"), seen.add("a")
    (True, False, True, True, True)
    """

    def __init__(self, max_size: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1 or ttl_s <= 0:
            raise ValueError("max_size must be >= 1 and ttl_s > 0")
        self.max_size = max_size
        self.ttl_s = ttl_s
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # id -> last seen, oldest first

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: str) -> bool:
        """Remember ``key``; True if it was not already remembered (handle it)."""
        now = self._clock()
        while self._seen:  # forget expired entries (the oldest are first)
            oldest, seen_at = next(iter(self._seen.items()))
            if now - seen_at < self.ttl_s:
                break
            del self._seen[oldest]
        if key in self._seen:
            self._seen[key] = now
            self._seen.move_to_end(key)
            return False
        self._seen[key] = now
        if len(self._seen) > self.max_size:
            self._seen.popitem(last=False)
        return True


def handle(rec: dict[str, Any], *, as_json: bool) -> None:
    """What your shop does with a recommendation: here, print it."""
    if as_json:
        print(dumps(rec), flush=True)
        return
    items = ", ".join(f"{item['item_id']} ({item['score']:.3f})" for item in rec["items"])
    flag = f" degraded:{rec.get('fallback_reason')}" if rec.get("degraded") else ""
    print(f"user {rec['user_id']}  arm {rec.get('arm')}  {rec.get('model')}{flag}  "
          f"rec {rec['rec_id']}: {items}", flush=True)


def decode(value: bytes | None) -> dict[str, Any]:
    """A recommendation message, or ValueError naming what is wrong with it."""
    if value is None:
        raise ValueError("empty message")
    rec = loads(value)
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    for name, kind in (("rec_id", str), ("user_id", str), ("items", list)):
        if not isinstance(rec.get(name), kind):
            raise ValueError(f"{name!r} missing or not a {kind.__name__}")
    return rec


def security_config(args: argparse.Namespace) -> dict[str, Any]:
    """librdkafka's TLS/SASL settings from the command line (PLAINTEXT: none)."""
    config: dict[str, Any] = {"security.protocol": args.security_protocol}
    if args.security_protocol in ("SSL", "SASL_SSL") and args.ssl_cafile:
        config["ssl.ca.location"] = args.ssl_cafile
    if args.security_protocol.startswith("SASL_"):
        config.update({"sasl.mechanism": args.sasl_mechanism,
                       "sasl.username": args.sasl_username,
                       "sasl.password": os.environ.get("KAFKA_SASL_PASSWORD", "")})
    return config


def consume(args: argparse.Namespace) -> dict[str, int]:
    """Read, deduplicate, handle, commit; until stopped, idle or ``--max-messages``."""
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group, "client.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if args.from_beginning else "latest",
        "session.timeout.ms": 10_000, "heartbeat.interval.ms": 1_000,
        **security_config(args)})
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    seen = SeenSet(args.dedupe_size, args.dedupe_ttl_s)
    counts = {"received": 0, "handled": 0, "duplicates": 0, "malformed": 0}
    consumer.subscribe([args.topic])
    try:
        idle_since = time.monotonic()
        while not stopping:
            messages = consumer.consume(num_messages=500, timeout=0.5)
            records = []
            for message in messages:
                error = message.error()
                if error is None:
                    records.append(message)
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
            if not records:
                if not consumer.assignment():  # still joining the group: not idle yet
                    idle_since = time.monotonic()
                elif args.max_idle_s and time.monotonic() - idle_since >= args.max_idle_s:
                    break
                continue
            idle_since = time.monotonic()
            for record in records:
                counts["received"] += 1
                try:
                    rec = decode(record.value())
                except ValueError as exc:
                    counts["malformed"] += 1
                    print(f"skipped {record.topic()}[{record.partition()}]@{record.offset()}: "
                          f"{exc}", file=sys.stderr)
                    continue
                if seen.add(rec["rec_id"]):
                    handle(rec, as_json=args.json)
                    counts["handled"] += 1
                else:
                    counts["duplicates"] += 1
            consumer.commit(asynchronous=False)  # after handling: a crash replays, never skips
            if args.max_messages and counts["received"] >= args.max_messages:
                break
    finally:
        consumer.close()
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "localhost:9094"),
                        help="Kafka bootstrap servers, host:port[,host:port] "
                             "(env KAFKA_BOOTSTRAP; default: the compose host listener "
                             "localhost:9094)")
    parser.add_argument("--topic", default="stream-rec.recs",
                        help="recommendations topic (default %(default)s)")
    parser.add_argument("--group", default="shop-recs-consumer",
                        help="consumer group: one per application (default %(default)s)")
    parser.add_argument("--from-beginning", action="store_true",
                        help="a new group starts at the oldest retained message (default: "
                             "only new ones)")
    parser.add_argument("--json", action="store_true", help="print handled recs as JSON lines")
    parser.add_argument("--dedupe-size", type=int, default=100_000,
                        help="rec ids remembered (default %(default)s, ~10 MB)")
    parser.add_argument("--dedupe-ttl-s", type=float, default=3600.0,
                        help="how long a rec id is remembered (default %(default)s s)")
    parser.add_argument("--max-messages", type=int, default=0,
                        help="stop after this many messages, duplicates included (0 = never)")
    parser.add_argument("--max-idle-s", type=float, default=0.0,
                        help="stop after this long without messages, counted once "
                             "partitions are assigned (0 = never)")
    parser.add_argument("--security-protocol", default="PLAINTEXT",
                        choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
    parser.add_argument("--sasl-mechanism", default="SCRAM-SHA-512",
                        choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    parser.add_argument("--sasl-username", default=os.environ.get("KAFKA_SASL_USERNAME", ""),
                        help="SASL user (env KAFKA_SASL_USERNAME); the password is read from "
                             "env KAFKA_SASL_PASSWORD only")
    parser.add_argument("--ssl-cafile", default=os.environ.get("KAFKA_SSL_CAFILE", ""),
                        help="CA bundle for SSL/SASL_SSL (env KAFKA_SSL_CAFILE)")
    args = parser.parse_args(argv)
    if args.dedupe_size < 1 or args.dedupe_ttl_s <= 0:
        parser.error("--dedupe-size must be >= 1 and --dedupe-ttl-s > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        counts = consume(args)
    except KafkaException as exc:
        print(f"broker {args.bootstrap}: {exc}", file=sys.stderr)
        return 3
    print(" ".join(f"{name} {n}" for name, n in counts.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
