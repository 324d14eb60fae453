"""Settings: read once from the environment, checked once, passed down.

Only this module touches ``os.environ``. Every field has an environment variable
``STREAM_REC_<FIELD>`` (upper case); :data:`ENV_VARS` maps them. Units live in names.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_rec.errors import ConfigError

__all__ = ["ENV_PREFIX", "ENV_VARS", "Settings", "Topics"]

ENV_PREFIX = "STREAM_REC_"


@dataclass(frozen=True, slots=True)
class Topics:
    """Names of the topics stream-rec reads and writes."""

    events: str = "stream-rec.events"
    catalog: str = "stream-rec.catalog"
    recs: str = "stream-rec.recs"
    dlq: str = "stream-rec.dlq"
    rerank_requests: str = "stream-rec.rerank-requests"
    item_deltas: str = "stream-rec.item-deltas"

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        """All topic names under another prefix (``shop1`` → ``shop1.events`` …)."""
        return cls(
            events=f"{prefix}.events",
            catalog=f"{prefix}.catalog",
            recs=f"{prefix}.recs",
            dlq=f"{prefix}.dlq",
            rerank_requests=f"{prefix}.rerank-requests",
            item_deltas=f"{prefix}.item-deltas",
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker needs; build with :meth:`from_env` or directly in tests."""

    # "tansu" / "kafka" (embedded, started by stream-rec), kafka://host:port[,host:port]
    # (any Kafka cluster) or tansu://host:port (an external Tansu, with its workarounds)
    broker: str = "tansu"
    topic_prefix: str = "stream-rec"
    app_id: str = "stream-rec"
    partitions: int = 4
    replication_factor: int = 1
    data_dir: Path = Path("var/stream-rec")
    # security for external clusters: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    # worker
    role: str = "slm"
    web_port: int = 6066
    web_host: str = "0.0.0.0"
    processing_guarantee: str = "at_least_once"
    standby_replicas: int = 0
    commit_interval_s: float = 2.0
    # 0 = automatic: 16 bytes (one record per batch) on the embedded Tansu, whose ListOffsets
    # under-reports batched ends and breaks table recovery; 16384 elsewhere
    producer_max_batch_bytes: int = 0
    log_level: str = "info"
    # input limits
    max_event_bytes: int = 16_384
    max_context_keys: int = 32
    max_future_skew_s: float = 86_400.0
    # user state
    recent_items: int = 20
    half_life_s: float = 7 * 86_400.0
    dedupe_window: int = 64
    # recommendations
    top_k: int = 10
    candidates_per_source: int = 50
    trigger_types: tuple[str, ...] = ("view", "add_to_cart", "purchase", "rec_request")
    popularity_half_life_s: float = 3 * 86_400.0
    covisit_window: int = 5
    covisit_max_neighbours: int = 100
    # model
    model_path: str = ""
    model_threads: int = 1
    model_pool_size: int = 1
    model_deadline_ms: float = 50.0
    # after this many missed model calls in a row, skip the model for the cool-down
    # (0 disables the circuit breaker)
    model_breaker_failures: int = 5
    model_breaker_cooldown_s: float = 5.0
    rerank_top_n: int = 0
    # A/B
    arms: str = "slm:1.0"
    experiment_salt: str = "exp-1"

    @property
    def topics(self) -> Topics:
        return Topics.with_prefix(self.topic_prefix)

    @property
    def is_embedded(self) -> bool:
        return self.broker in ("tansu", "kafka")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``STREAM_REC_*`` variables, then ``overrides`` (CLI flags) on top.

        >>> Settings.from_env({"STREAM_REC_TOP_K": "5"}).top_k
        5
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the first key whose value cannot work."""
        if not (self.broker in ("tansu", "kafka")
                or self.broker.startswith(("kafka://", "tansu://"))):
            _bad("broker", self.broker,
                 "must be 'tansu', 'kafka' (embedded), kafka://host:port[,...] or "
                 "tansu://host:port (an external Tansu: enables its workarounds)")
        if self.partitions < 1:
            _bad("partitions", self.partitions, "must be >= 1")
        if self.top_k < 1 or self.top_k > 100:
            _bad("top_k", self.top_k, "must be between 1 and 100")
        if self.role not in ("slm", "llm"):
            _bad("role", self.role, "must be 'slm' or 'llm'")
        if self.processing_guarantee not in ("at_least_once", "exactly_once"):
            _bad("processing_guarantee", self.processing_guarantee,
                 "must be 'at_least_once' or 'exactly_once'")
        if self.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            _bad("security_protocol", self.security_protocol,
                 "must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
        if self.half_life_s <= 0 or self.popularity_half_life_s <= 0:
            _bad("half_life_s", self.half_life_s, "half-lives must be > 0")
        if self.max_event_bytes < 256:
            _bad("max_event_bytes", self.max_event_bytes, "must be >= 256")
        if self.model_deadline_ms <= 0:
            _bad("model_deadline_ms", self.model_deadline_ms, "must be > 0")
        if self.model_breaker_failures < 0 or self.model_breaker_cooldown_s <= 0:
            _bad("model_breaker_failures", self.model_breaker_failures,
                 "must be >= 0 (0 disables it), with MODEL_BREAKER_COOLDOWN_S > 0")

    def to_env(self) -> dict[str, str]:
        """These settings as ``STREAM_REC_*`` variables (for a worker subprocess)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            out[ENV_PREFIX + f.name.upper()] = text
        return out

    def describe(self) -> dict[str, Any]:
        """Settings as plain values, secrets masked (for logs and ``--help``)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("sasl_password",) and value:
                value = "***"
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


ENV_VARS: dict[str, str] = {
    ENV_PREFIX + f.name.upper(): f.name for f in dataclasses.fields(Settings)
}


def _parse(name: str, type_name: Any, raw: str) -> Any:
    type_text = str(type_name)
    try:
        if type_text == "int":
            return int(raw)
        if type_text == "float":
            return float(raw)
        if type_text == "Path":
            return Path(raw)
        if type_text.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError as exc:
        raise ConfigError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {type_text}; fix or unset it"
        ) from exc


def _bad(name: str, value: object, rule: str) -> None:
    raise ConfigError(f"{ENV_PREFIX}{name.upper()}={value!r} {rule}")

