#!/usr/bin/env python3
"""Publish shop events to stream-rec's events topic with aiokafka.

Copy this file into your shop's code base: it needs only aiokafka (and, optionally, orjson).

    # JSON lines, one event each (docs/schemas/event.schema.json), from a file or stdin
    python producer_aiokafka.py --bootstrap localhost:9094 --file events.jsonl
    # or a few sample events, to try a deployment
    python producer_aiokafka.py --bootstrap localhost:9094 --generate 100

What it gets right:

* **key = user_id**: stream-rec keys user state by the message key and rejects an event
  whose ``user_id`` differs from it.
* **events are validated before they are sent** with the rules of the event schema
  (unknown fields, missing fields, bad ids, types and ranges are refused here, with the
  line number, instead of ending up in ``stream-rec.dlq``).
* **retry-safe event ids**: an event without an ``event_id`` gets one derived from its
  content (a hash), so sending the same input again, after a crash or a timeout, repeats
  the same ids and stream-rec drops the duplicates (it keeps recent ids per user).
* **acks=all** and a flush before exit: the exit code is 0 only when every event was
  acknowledged by the broker (1 when some lines were refused, 2 for a usage error,
  3 when the broker could not be reached or did not acknowledge).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import random
import re
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

try:
    import orjson

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)

    def loads(raw: str | bytes) -> Any:
        return orjson.loads(raw)

except ImportError:  # the standard library is enough
    import json

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), sort_keys=True,
                          ensure_ascii=False).encode()

    def loads(raw: str | bytes) -> Any:
        return json.loads(raw)

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

# ---- the event rules (docs/schemas/event.schema.json) -------------------------------------

EVENT_TYPES = ("add_to_cart", "purchase", "rec_click", "rec_request", "remove_from_cart",
               "search", "view")
ITEM_TYPES = frozenset({"view", "add_to_cart", "remove_from_cart", "purchase", "rec_click"})
FIELDS = frozenset({"event_id", "type", "user_id", "item_id", "ts_ms", "quantity", "price",
                    "rec_id", "query", "context"})
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+\-]{0,127}$")
MIN_TS_MS = 631_152_000_000  # 1990-01-01
MAX_FUTURE_MS = 86_400_000  # one day
MAX_EVENT_BYTES = 16_384


class InvalidEvent(ValueError):
    """An event stream-rec would reject; the message names the field and the rule."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def check_event(event: Any, *, now_ms: int) -> None:
    """Raise :class:`InvalidEvent` unless ``event`` passes the event schema's rules."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"an event must be a JSON object, got {type(event).__name__}")
    unknown = sorted(set(event) - FIELDS)
    if unknown:
        raise InvalidEvent(f"unknown field(s) {unknown}; allowed: {sorted(FIELDS)}")
    for name in ("event_id", "type", "user_id", "ts_ms"):
        if name not in event:
            raise InvalidEvent(f"{name!r} is required")
    if event["type"] not in EVENT_TYPES:
        raise InvalidEvent(f"'type' must be one of {sorted(EVENT_TYPES)}, got {event['type']!r}")
    for name in ("event_id", "user_id", "item_id", "rec_id"):
        value = event.get(name)
        if value is not None and not (isinstance(value, str) and ID_RE.match(value)):
            raise InvalidEvent(f"{name!r} must match {ID_RE.pattern}, got {value!r}")
    if event["type"] in ITEM_TYPES and event.get("item_id") is None:
        raise InvalidEvent(f"'item_id' is required for type {event['type']!r}")
    if event["type"] == "rec_click" and event.get("rec_id") is None:
        raise InvalidEvent("'rec_id' is required for type 'rec_click'")
    if event["type"] == "search" and not isinstance(event.get("query"), str):
        raise InvalidEvent("'query' (a string) is required for type 'search'")
    ts_ms = event["ts_ms"]
    if not _is_int(ts_ms) or not MIN_TS_MS <= ts_ms <= now_ms + MAX_FUTURE_MS:
        raise InvalidEvent(f"'ts_ms' must be an integer Unix time in ms between {MIN_TS_MS} "
                           f"and one day from now, got {ts_ms!r}")
    if "quantity" in event and not (_is_int(event["quantity"])
                                    and 1 <= event["quantity"] <= 10_000):
        raise InvalidEvent(f"'quantity' must be an integer from 1 to 10000, "
                           f"got {event['quantity']!r}")
    if "price" in event and event["price"] is not None and not (
            _is_number(event["price"]) and 0 <= event["price"] <= 1_000_000):
        raise InvalidEvent(f"'price' must be a number from 0 to 1000000, got {event['price']!r}")
    if "query" in event and event["query"] is not None and not (
            isinstance(event["query"], str) and len(event["query"]) <= 256):
        raise InvalidEvent("'query' must be a string of at most 256 characters")
    context = event.get("context")
    if context is not None:
        if not isinstance(context, dict) or len(context) > 32:
            raise InvalidEvent("'context' must be an object with at most 32 keys")
        for key, value in context.items():
            if len(key) > 64:
                raise InvalidEvent(f"'context' key {key[:20]!r}... is longer than 64 characters")
            if isinstance(value, str) and len(value) <= 256:
                continue
            if isinstance(value, bool) or _is_number(value):
                continue
            raise InvalidEvent(f"'context.{key}' must be a string (<= 256 characters), a "
                               f"number or a boolean, got {value!r}")


def with_event_id(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with an ``event_id``: its own, or a hash of its content (retry-safe)."""
    if "event_id" in event:
        return event
    digest = hashlib.sha256(dumps(event)).hexdigest()[:32]
    return {**event, "event_id": f"ev-{digest}"}


def encode(event: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) of the Kafka message for a checked event."""
    value = dumps(event)
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"the event is {len(value)} bytes; stream-rec accepts at most "
                           f"{MAX_EVENT_BYTES}")
    return event["user_id"].encode(), value


# ---- where events come from ---------------------------------------------------------------

def read_lines(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | InvalidEvent]]:
    """(line number, event or the reason it is invalid) for each non-blank JSON line."""
    now_ms = int(time.time() * 1000)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = loads(line)
            if not isinstance(raw, dict):
                raise InvalidEvent("each line must be a JSON object")
            event = with_event_id(raw)
            check_event(event, now_ms=now_ms)
        except InvalidEvent as exc:
            yield number, exc
        except ValueError as exc:  # JSON syntax
            yield number, InvalidEvent(f"not JSON: {exc}")
        else:
            yield number, event


def sample_events(count: int, *, seed: int, users: int = 20, items: int = 50,
                  start_ms: int | None = None) -> Iterator[dict[str, Any]]:
    """``count`` plausible events (views, carts, purchases) for trying a deployment.

    The same ``seed`` and ``start_ms`` give the same events and event ids.
    """
    rng = random.Random(seed)
    ts_ms = start_ms if start_ms is not None else int(time.time() * 1000) - count * 1000
    for n in range(count):
        user_id = f"u{rng.randrange(users)}"
        kind = rng.choices(("view", "add_to_cart", "purchase"), weights=(8, 2, 1))[0]
        event: dict[str, Any] = {"type": kind, "user_id": user_id,
                                 "item_id": f"i{rng.randrange(items)}", "ts_ms": ts_ms + n * 1000}
        if kind == "purchase":
            event["quantity"] = rng.randint(1, 3)
            event["price"] = round(rng.uniform(1, 100), 2)
        event["event_id"] = f"sample-{seed}-{n}"
        yield event


# ---- sending ------------------------------------------------------------------------------

def security_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """aiokafka's TLS/SASL arguments from the command line (PLAINTEXT: none)."""
    kwargs: dict[str, Any] = {"security_protocol": args.security_protocol}
    if args.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        kwargs["ssl_context"] = create_ssl_context(cafile=args.ssl_cafile or None)
    if args.security_protocol.startswith("SASL_"):
        kwargs.update(sasl_mechanism=args.sasl_mechanism,
                      sasl_plain_username=args.sasl_username,
                      sasl_plain_password=os.environ.get("KAFKA_SASL_PASSWORD", ""))
    return kwargs


async def publish(args: argparse.Namespace,
                  events: Iterable[tuple[int, dict[str, Any] | InvalidEvent]]) -> tuple[int, int]:
    """Send every valid event; returns (sent, refused). Raises KafkaError on broker trouble."""
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, client_id=args.client_id, acks="all",
        enable_idempotence=args.idempotence, linger_ms=5, request_timeout_ms=30_000,
        **security_kwargs(args))
    sent = refused = 0
    in_flight: list[asyncio.Future[Any]] = []
    try:
        await producer.start()
        for number, event in events:
            if isinstance(event, InvalidEvent):
                refused += 1
                print(f"line {number}: refused: {event}", file=sys.stderr)
                continue
            try:
                key, value = encode(event)
            except InvalidEvent as exc:
                refused += 1
                print(f"line {number}: refused: {exc}", file=sys.stderr)
                continue
            in_flight.append(await producer.send(args.topic, value=value, key=key))
            if len(in_flight) >= 1000:  # bound memory: wait for acknowledgements
                await asyncio.gather(*in_flight)
                sent += len(in_flight)
                in_flight.clear()
        await asyncio.gather(*in_flight)
        sent += len(in_flight)
    finally:
        await producer.stop()
    return sent, refused


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "localhost:9094"),
                        help="Kafka bootstrap servers, host:port[,host:port] "
                             "(env KAFKA_BOOTSTRAP; default: the compose host listener "
                             "localhost:9094)")
    parser.add_argument("--topic", default="stream-rec.events",
                        help="events topic (default %(default)s)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="JSON-lines file of events; '-' reads standard input")
    source.add_argument("--generate", type=int, metavar="N",
                        help="send N sample events instead (users u0.., items i0..)")
    parser.add_argument("--seed", type=int, default=1,
                        help="--generate: random seed; the same seed repeats the same event ids")
    parser.add_argument("--client-id", default="shop-events-producer")
    parser.add_argument("--idempotence", action="store_true",
                        help="enable Kafka's idempotent producer (real Kafka; the embedded "
                             "Tansu broker does not support it)")
    parser.add_argument("--security-protocol", default="PLAINTEXT",
                        choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
    parser.add_argument("--sasl-mechanism", default="SCRAM-SHA-512",
                        choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    parser.add_argument("--sasl-username", default=os.environ.get("KAFKA_SASL_USERNAME", ""),
                        help="SASL user (env KAFKA_SASL_USERNAME); the password is read from "
                             "env KAFKA_SASL_PASSWORD only")
    parser.add_argument("--ssl-cafile", default=os.environ.get("KAFKA_SSL_CAFILE", ""),
                        help="CA bundle for SSL/SASL_SSL (env KAFKA_SSL_CAFILE; default: the "
                             "system CAs)")
    args = parser.parse_args(argv)
    if args.generate is not None and args.generate < 0:
        parser.error("--generate must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.generate is not None:
        events: Iterable[tuple[int, dict[str, Any] | InvalidEvent]] = enumerate(
            sample_events(args.generate, seed=args.seed), start=1)
        return run(args, events)
    if args.file == "-":
        return run(args, read_lines(sys.stdin))
    try:
        handle = open(args.file, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    with handle:
        return run(args, read_lines(handle))


def run(args: argparse.Namespace,
        events: Iterable[tuple[int, dict[str, Any] | InvalidEvent]]) -> int:
    try:
        sent, refused = asyncio.run(publish(args, events))
    except KafkaError as exc:
        print(f"broker {args.bootstrap}: {exc}", file=sys.stderr)
        return 3
    print(f"sent {sent} events to {args.topic}; refused {refused}", file=sys.stderr)
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
