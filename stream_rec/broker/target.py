"""Where a process connects: a bootstrap address, and whether the broker is Tansu."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BrokerTarget", "external_target"]


@dataclass(frozen=True, slots=True)
class BrokerTarget:
    """Where to connect, and whether the broker is Tansu (its workarounds apply)."""

    bootstrap: str
    tansu: bool


def external_target(spec: str) -> BrokerTarget | None:
    """``kafka://host:port[,…]`` or ``tansu://host:port`` → its target; anything else → None
    (an embedded broker the caller starts: ``stream_rec.local.brokers.resolve_broker``)."""
    if spec.startswith("kafka://"):
        return BrokerTarget(spec.removeprefix("kafka://"), tansu=False)
    if spec.startswith("tansu://"):
        return BrokerTarget(spec.removeprefix("tansu://"), tansu=True)
    return None
