"""Settings: read once from the environment, checked once, passed down.

Only this module touches ``os.environ``. Every field has an environment variable
``STREAM_REC_<FIELD>`` (upper case); :data:`ENV_VARS` maps them. Units live in names.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_rec.core.router import parse_arms
from stream_rec.errors import ConfigError

__all__ = ["ENV_PREFIX", "ENV_VARS", "NON_SETTING_VARS", "Settings", "Topics", "unknown_env_vars"]

ENV_PREFIX = "STREAM_REC_"
#: ``STREAM_REC_*`` variables that are not settings: read by the test suite or the deployment
#: files, never by the package; :func:`unknown_env_vars` does not warn about them
NON_SETTING_VARS = frozenset({"STREAM_REC_REQUIRE_KAFKA", "STREAM_REC_KAFKA_HOME",
                              "STREAM_REC_SHARED_DATA", "STREAM_REC_IMAGE",
                              "STREAM_REC_CONSOLE_SCREENSHOT"})

log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True, slots=True)
class Topics:
    """Names of the topics stream-rec reads and writes."""

    events: str = "stream-rec.events"
    catalog: str = "stream-rec.catalog"
    recs: str = "stream-rec.recs"
    dlq: str = "stream-rec.dlq"
    rerank_requests: str = "stream-rec.rerank-requests"
    rerank_results: str = "stream-rec.rerank-results"
    llm_recs: str = "stream-rec.llm-recs"  # internal: LLM-arm decisions, attributed, forwarded
    item_deltas: str = "stream-rec.item-deltas"
    item_vectors: str = "stream-rec.item-vectors"  # compacted: the embedder's catalog vectors
    ranker: str = "stream-rec.ranker"  # compacted: each worker's learned-ranker contribution

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        """All topic names under another prefix (``shop1`` → ``shop1.events`` …)."""
        return cls(
            events=f"{prefix}.events",
            catalog=f"{prefix}.catalog",
            recs=f"{prefix}.recs",
            dlq=f"{prefix}.dlq",
            rerank_requests=f"{prefix}.rerank-requests",
            rerank_results=f"{prefix}.rerank-results",
            llm_recs=f"{prefix}.llm-recs",
            item_deltas=f"{prefix}.item-deltas",
            item_vectors=f"{prefix}.item-vectors",
            ranker=f"{prefix}.ranker",
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
    # how other workers reach this one (faust's canonical URL: the pull API forwards to the
    # owner of a user's partition, the console asks every worker); "" = http://HOST:PORT
    # with web_host, or the host name when web_host is 0.0.0.0
    web_advertised_url: str = ""
    # a shared secret for the sensitive pages (a user's state, dead-letter payloads), sent
    # as "Authorization: Bearer TOKEN"; "" = those pages are off
    web_token: str = ""
    # keep each user's latest recommendation in a changelogged table (the pull API and the
    # console's latest recommendations): "on" or "off" (one more read and table write per rec)
    latest_recs: str = "on"
    # more worker URLs for the console to aggregate (comma list), besides the group's members
    console_peers: tuple[str, ...] = ()
    # the console's cost and energy estimates: CPU seconds x these (as `stream-rec eval`)
    price_per_vcpu_hour: float = 0.04
    watts_per_core: float = 10.0
    processing_guarantee: str = "at_least_once"
    standby_replicas: int = 0
    commit_interval_s: float = 2.0
    # events are handled in batches of at most this many, or what arrived within the wait
    batch_max_events: int = 256
    batch_max_wait_ms: float = 5.0
    # RocksDB read cache shared by all of the worker's table stores (every table and partition)
    table_cache_mb: float = 4.0
    # RocksDB memtable budget shared by all of the worker's table stores; past it, the store
    # being written flushes early
    table_write_buffer_mb: float = 8.0
    # 0 = automatic: 16 bytes (one record per batch) on the embedded Tansu, whose ListOffsets
    # under-reports batched ends and breaks table recovery; 16384 elsewhere
    producer_max_batch_bytes: int = 0
    log_level: str = "info"
    # the stream worker's asyncio event loop: "uvloop" (libuv; a dependency) or "asyncio"
    event_loop: str = "uvloop"
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
    # chosen on the validation stages of all three datasets (docs/learned_ranker.md):
    # fewer candidates rank as well or better and cost less than 50
    candidates_per_source: int = 25
    covisit_history: int = 10  # recent distinct items anchoring co-visitation (swept: 5/10/20 tie)
    trigger_types: tuple[str, ...] = ("view", "add_to_cart", "purchase", "rec_request")
    popularity_half_life_s: float = 3 * 86_400.0
    covisit_window: int = 5
    covisit_max_neighbours: int = 100
    # ranking: "learned" (a linear listwise ranker learning from the stream, starting from
    # the fixed blend) or "blend" (the fixed blend of ranking.DEFAULT_WEIGHTS)
    ranker: str = "learned"
    ranker_learning_rate: float = 0.1
    ranker_prior_l2: float = 1e-4
    ranker_sample_every: int = 2  # learn from one (user, instant) list in this many
    # pairwise feature interactions of the learned ranker (factorization machine): each
    # feature's vector length (0 = linear only) and their AdaGrad step. Off: on the
    # validation stages 4-dim vectors gained on some datasets and lost on others, all
    # within noise (docs/learned_ranker.md, "Pairwise feature interactions")
    ranker_factors: int = 0
    ranker_factor_learning_rate: float = 0.05
    # each worker publishes what its ranker learned to the compacted ranker topic this
    # often (and at a clean shutdown); every replica folds every worker's contribution
    ranker_publish_s: float = 5.0
    # this worker's key on the ranker topic, unique among live workers; "" = HOST:WEB_PORT
    # (a restart under the same id continues its contribution, a new id adds one)
    ranker_contributor: str = ""
    # the model's text neighbours kept per catalog item (the similar source)
    text_neighbours: int = 50
    # model
    model_path: str = ""
    # where catalog items are embedded: "embedder" (a `--role embedder` process publishes
    # vectors to the item-vectors topic; serving workers fold them and load no model unless
    # they rerank) or "worker" (every serving worker loads the model and embeds the catalog)
    item_vectors: str = "embedder"
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
    # arms served by the LLM worker (--role llm), and arms served without any model
    llm_arms: tuple[str, ...] = ("llm",)
    holdout_arms: tuple[str, ...] = ("holdout",)
    # per-arm attribution tables: "auto" = on when an experiment runs (more than one arm, or
    # an LLM or holdout arm), "on", "off" (it costs two table writes per recommendation)
    ab_attribution: str = "auto"
    # attribution: purchases within this window of a rec convert (event time); recs kept
    # per user for attribution
    ab_window_s: float = 86_400.0
    ab_recs_per_user: int = 32
    # LLM arm, SLM side: end-to-end budget per LLM-arm recommendation (from the trigger's
    # produce time), candidates and history titles sent, pending requests held in memory
    llm_deadline_ms: float = 3000.0
    llm_rerank_top_n: int = 20
    llm_history_items: int = 10
    llm_max_pending: int = 256
    # LLM arm, LLM worker side: backend "local" (a GGUF via llama-cpp-python) or "openai"
    # (any OpenAI-compatible HTTP server); requests reranked at once (more are shed)
    llm_backend: str = "local"
    llm_model_path: str = ""
    llm_pool_size: int = 1
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    # openai backend: "choice" (grammar-constrained picks; llama.cpp servers) or "echo"
    # (per-candidate log-likelihood via echo + logprobs; vLLM and others)
    llm_method: str = "choice"
    llm_picks: int = 3
    llm_max_in_flight: int = 4

    def __post_init__(self) -> None:
        # The LLM worker's GGUF defaults to the SLM's: one file (the image's /models/...)
        # serves both roles. Left empty, it would mean "assemble the default model from its
        # chunk packages", which a runtime image does not carry.
        if not self.llm_model_path and self.model_path not in ("", "none"):
            object.__setattr__(self, "llm_model_path", self.model_path)

    @property
    def topics(self) -> Topics:
        return Topics.with_prefix(self.topic_prefix)

    @property
    def worker_loads_model(self) -> bool:
        """Whether a serving worker holds the model itself: only when it makes per-event
        model calls (rerank) or embeds the catalog itself (``item_vectors=worker``)."""
        return self.model_path != "none" and (self.item_vectors == "worker"
                                              or self.rerank_top_n > 1)

    @property
    def is_embedded(self) -> bool:
        return self.broker in ("tansu", "kafka")

    @property
    def advertised_url(self) -> str:
        """The URL other workers use to reach this worker's web server."""
        if self.web_advertised_url:
            return self.web_advertised_url.rstrip("/")
        host = socket.gethostname() if self.web_host in ("0.0.0.0", "::", "") else self.web_host
        return f"http://{host}:{self.web_port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``STREAM_REC_*`` variables, then ``overrides`` (CLI flags) on top.

        >>> Settings.from_env({"STREAM_REC_TOP_K": "5"}).top_k
        5
        """
        env = os.environ if environ is None else environ
        for name in unknown_env_vars(env):
            if name not in _warned:  # once per process
                _warned.add(name)
                log.warning("warning: %s", _unknown_hint(name))
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
        if self.role not in ("slm", "llm", "embedder"):
            _bad("role", self.role, "must be 'slm', 'llm' or 'embedder'")
        if self.event_loop not in ("uvloop", "asyncio"):
            _bad("event_loop", self.event_loop, "must be 'uvloop' or 'asyncio'")
        if self.item_vectors not in ("embedder", "worker"):
            _bad("item_vectors", self.item_vectors, "must be 'embedder' or 'worker'")
        if self.processing_guarantee not in ("at_least_once", "exactly_once"):
            _bad("processing_guarantee", self.processing_guarantee,
                 "must be 'at_least_once' or 'exactly_once'")
        if self.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            _bad("security_protocol", self.security_protocol,
                 "must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
        if self.batch_max_events < 1 or self.batch_max_wait_ms <= 0:
            _bad("batch_max_events", self.batch_max_events,
                 "must be >= 1, with BATCH_MAX_WAIT_MS > 0")
        if self.table_cache_mb < 0 or self.table_write_buffer_mb < 1:
            _bad("table_write_buffer_mb", self.table_write_buffer_mb,
                 "must be >= 1 (MiB), with TABLE_CACHE_MB >= 0")
        if self.half_life_s <= 0 or self.popularity_half_life_s <= 0:
            _bad("half_life_s", self.half_life_s, "half-lives must be > 0")
        if self.max_event_bytes < 256:
            _bad("max_event_bytes", self.max_event_bytes, "must be >= 256")
        if self.ranker not in ("learned", "blend"):
            _bad("ranker", self.ranker, "must be 'learned' or 'blend'")
        if not 1 <= self.covisit_history <= self.recent_items:
            _bad("covisit_history", self.covisit_history,
                 "must be between 1 and RECENT_ITEMS (the recent items a user's state keeps)")
        if self.ranker_sample_every < 1:
            _bad("ranker_sample_every", self.ranker_sample_every, "must be >= 1")
        if self.ranker_publish_s <= 0:
            _bad("ranker_publish_s", self.ranker_publish_s, "must be > 0 (seconds)")
        if not 0 <= self.ranker_factors <= 64:
            _bad("ranker_factors", self.ranker_factors,
                 "must be between 0 (linear ranker) and 64")
        if self.ranker_factor_learning_rate < 0:
            _bad("ranker_factor_learning_rate", self.ranker_factor_learning_rate, "must be >= 0")
        if self.ranker_learning_rate < 0 or self.ranker_prior_l2 < 0:
            _bad("ranker_learning_rate", self.ranker_learning_rate,
                 "must be >= 0, with RANKER_PRIOR_L2 >= 0")
        if self.model_deadline_ms <= 0:
            _bad("model_deadline_ms", self.model_deadline_ms, "must be > 0")
        if self.latest_recs not in ("on", "off"):
            _bad("latest_recs", self.latest_recs, "must be 'on' or 'off'")
        if self.web_advertised_url and not self.web_advertised_url.startswith(
                ("http://", "https://")):
            _bad("web_advertised_url", self.web_advertised_url,
                 "must be an http(s) URL, e.g. http://worker-0.stream-rec:6066")
        if self.model_breaker_failures < 0 or self.model_breaker_cooldown_s <= 0:
            _bad("model_breaker_failures", self.model_breaker_failures,
                 "must be >= 0 (0 disables it), with MODEL_BREAKER_COOLDOWN_S > 0")
        self._check_ab_and_llm()

    @property
    def attribution_enabled(self) -> bool:
        """Whether workers keep the per-arm attribution tables (see ``ab_attribution``)."""
        if self.ab_attribution != "auto":
            return self.ab_attribution == "on"

        names = [arm.name for arm in parse_arms(self.arms)]
        special = set(self.llm_arms) | set(self.holdout_arms)
        return len(names) > 1 or any(name in special for name in names)

    def _check_ab_and_llm(self) -> None:
        if self.ab_attribution not in ("auto", "on", "off"):
            _bad("ab_attribution", self.ab_attribution, "must be 'auto' (on when an experiment "
                 "runs: several arms, or an LLM or holdout arm), 'on' or 'off'")
        if self.ab_window_s <= 0:
            _bad("ab_window_s", self.ab_window_s, "must be > 0")
        if self.ab_recs_per_user < 1:
            _bad("ab_recs_per_user", self.ab_recs_per_user, "must be >= 1")
        if self.llm_deadline_ms <= 0:
            _bad("llm_deadline_ms", self.llm_deadline_ms, "must be > 0")
        if not 1 <= self.llm_rerank_top_n <= 100:
            _bad("llm_rerank_top_n", self.llm_rerank_top_n, "must be between 1 and 100")
        if not 0 <= self.llm_history_items <= 50:
            _bad("llm_history_items", self.llm_history_items, "must be between 0 and 50")
        for name in ("llm_max_pending", "llm_max_in_flight", "llm_pool_size", "llm_picks"):
            if getattr(self, name) < 1:
                _bad(name, getattr(self, name), "must be >= 1")
        if set(self.llm_arms) & set(self.holdout_arms):
            _bad("holdout_arms", ",".join(self.holdout_arms),
                 f"must not share an arm with STREAM_REC_LLM_ARMS={','.join(self.llm_arms)!r}")
        if self.llm_backend not in ("local", "openai"):
            _bad("llm_backend", self.llm_backend, "must be 'local' (a GGUF file, "
                 "STREAM_REC_LLM_MODEL_PATH) or 'openai' (an OpenAI-compatible server, "
                 "STREAM_REC_LLM_URL)")
        if self.llm_method not in ("choice", "echo"):
            _bad("llm_method", self.llm_method, "must be 'choice' (grammar-constrained picks, "
                 "llama.cpp servers) or 'echo' (log-likelihood via echo + logprobs)")
        if self.role == "llm" and self.llm_backend == "openai" and not self.llm_url.startswith(
                ("http://", "https://")):
            _bad("llm_url", self.llm_url, "must be the server's base URL, e.g. "
                 "http://127.0.0.1:8000/v1, when STREAM_REC_LLM_BACKEND=openai")

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
            if f.name in ("sasl_password", "llm_api_key", "web_token") and value:
                value = "***"
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


ENV_VARS: dict[str, str] = {
    ENV_PREFIX + f.name.upper(): f.name for f in dataclasses.fields(Settings)
}


def unknown_env_vars(environ: Mapping[str, str]) -> list[str]:
    """``STREAM_REC_*`` names in ``environ`` that are no setting (a typo is otherwise silent).

    >>> unknown_env_vars({"STREAM_REC_TOPK": "5", "STREAM_REC_TOP_K": "5"})
    ['STREAM_REC_TOPK']
    """
    return sorted(name for name in environ if name.startswith(ENV_PREFIX)
                  and name not in ENV_VARS and name not in NON_SETTING_VARS)


def _unknown_hint(name: str) -> str:
    close = difflib.get_close_matches(name, list(ENV_VARS), n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]}?" if close else " (`stream-rec settings` lists them)"
    return f"{name} is not a stream-rec setting and is ignored{hint}"


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

