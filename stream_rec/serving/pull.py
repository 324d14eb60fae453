"""The pull API's routing: which worker owns a user, who may read what, and forwarding.

A user's events, state and latest recommendation all live in one partition: the one the
default Kafka partitioner (murmur2 of the raw user id) picks for the events topic, which
faust's changelogs follow. Any worker asked about a user looks up the partition's owner in
the group's assignment (faust's table metadata: worker URL → changelog partitions), answers
itself when it is the owner, and otherwise forwards the request once to the owner's URL.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiokafka.partitioner import murmur2

__all__ = ["HOP_HEADER", "Forwarded", "authorized", "forward", "owner_url", "user_partition"]

#: set on a forwarded request: the receiver answers or fails, it never forwards again
HOP_HEADER = "X-Stream-Rec-Forwarded-By"


def user_partition(user_id: str, partitions: int) -> int:
    """The partition of ``user_id``'s events (and so of its state and latest rec).

    >>> user_partition("u1", 4) == user_partition("u1", 4)
    True
    """
    return int(murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


def owner_url(metadata: Mapping[str, Mapping[str, Sequence[int]]], topic: str,
              partition: int) -> str | None:
    """The URL of the worker whose active partitions of ``topic`` include ``partition``.

    ``metadata`` is faust's ``router.tables_metadata()``: worker URL → topic → partitions.

    >>> owner_url({"http://a:1": {"t": [0, 2]}, "http://b:1": {"t": [1, 3]}}, "t", 3)
    'http://b:1'
    """
    for url, topics in metadata.items():
        if partition in topics.get(topic, ()):
            return str(url).rstrip("/")
    return None


def authorized(token: str, headers: Mapping[str, str]) -> bool:
    """Whether a request may read sensitive pages: a token is configured and it was sent as
    ``Authorization: Bearer TOKEN``. With no token configured, nobody may."""
    if not token:
        return False
    sent = headers.get("Authorization", "")
    scheme, _, value = sent.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                               token.encode())


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The owner's answer, passed back as it came."""

    status: int
    content_type: str
    body: bytes


async def forward(session: Any, url: str, *, headers: Mapping[str, str], via: str,
                  timeout_s: float = 5.0) -> Forwarded:
    """GET ``url`` on the owner, with the caller's ``Authorization`` and the hop header."""
    sent = {HOP_HEADER: via}
    if "Authorization" in headers:
        sent["Authorization"] = headers["Authorization"]
    try:
        async with session.get(url, headers=sent,
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            return Forwarded(response.status, response.content_type, await response.read())
    except (aiohttp.ClientError, TimeoutError) as exc:
        body = f'{{"error": "owner {url} unreachable: {type(exc).__name__}"}}'.encode()
        return Forwarded(502, "application/json", body)
