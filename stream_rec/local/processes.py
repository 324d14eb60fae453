"""Start, watch and stop worker processes (used by the demo, the benchmark and tests)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from stream_rec.config import Settings
from stream_rec.core import codec
from stream_rec.errors import StreamRecError
from stream_rec.local.brokers import free_port

__all__ = ["WorkerProcess", "needs_embedder", "worker_command"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding stream_rec/


def worker_command(env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start a ``stream-rec worker`` running this very
    ``stream_rec`` package, whatever the working directory holds (``-P``: the current
    directory is not put first on ``sys.path``; the package's folder leads ``PYTHONPATH``),
    so a launcher run from another checkout measures its own code, not the directory's."""
    paths = [_PACKAGE_ROOT, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return ([sys.executable, "-P", "-m", "stream_rec", "worker"],
            {**env, "PYTHONPATH": os.pathsep.join(paths)})


def needs_embedder(settings: Settings) -> bool:
    """Whether serving workers with these settings expect a ``--role embedder`` process
    for their catalog vectors (the model is on and they do not load it themselves)."""
    return settings.model_path != "none" and not settings.worker_loads_model


class WorkerProcess:
    """One ``stream-rec worker`` subprocess (of ``settings.role``) with its own web port and
    log file; :meth:`embedder` makes the embedder process for the same settings.

    Its sensitive pages (user state, dead-letter payloads) take ``settings.web_token``, or a
    random token made here when there is none; :meth:`get` sends it.
    """

    def __init__(self, settings: Settings, *, log_path: Path, web_port: int | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.settings = replace(settings, web_port=web_port or free_port(),
                                web_host="127.0.0.1",
                                web_token=settings.web_token or secrets.token_urlsafe(16))
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def embedder(cls, settings: Settings, *, log_path: Path) -> WorkerProcess:
        """The ``--role embedder`` process for workers with these settings."""
        return cls(replace(settings, role="embedder", data_dir=Path(settings.data_dir)
                           / "embedder"), log_path=log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> WorkerProcess:
        argv, env = worker_command({**os.environ, **self.settings.to_env(), **self.extra_env})
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 90.0) -> float:
        """Block until ``/readyz`` answers 200; returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not self.alive():
                raise StreamRecError(f"worker exited with {self.proc and self.proc.returncode}"
                                     f" before it was ready; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise StreamRecError(f"worker not ready after {timeout_s:.0f} s; see {self.log_path}")

    def readyz(self) -> dict[str, Any]:
        """The worker's ``/readyz`` JSON (also when it answers 503: not ready)."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=5) as response:
                data: dict[str, Any] = codec.loads(response.read())
        except urllib.error.HTTPError as exc:
            data = codec.loads(exc.read())
        return data

    def metrics(self) -> dict[str, float]:
        """Scrape ``/metrics``: sample name (with labels) → value."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def metric_total(self, name: str) -> float:
        """Sum of every sample named ``name`` across labels."""
        return sum(v for k, v in self.metrics().items() if k == name or k.startswith(name + "{"))

    def get(self, path: str, *, token: bool = True) -> tuple[int, bytes]:
        """GET ``path`` on the worker (with its token unless ``token`` is False):
        (status, body), also for error statuses."""
        headers = {"Authorization": f"Bearer {self.settings.web_token}"} if token else {}
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def state(self, user_id: str) -> dict[str, object] | None:
        """The user's state if this worker owns the user (``/state/{user_id}``), else None."""
        status, body = self.get(f"/state/{user_id}")
        if status == 404:
            return None
        if status != 200:
            raise StreamRecError(f"/state/{user_id} answered {status}: {body[:200]!r}")
        data: dict[str, object] = codec.loads(body)
        return data

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
