"""Run llama-cpp-python's OpenAI-compatible server on a loopback port (tests, benchmarks).

    with LlmServer.start(model_path, log_path=…) as server:
        server.url  # http://127.0.0.1:PORT/v1 → STREAM_REC_LLM_URL

Needs the ``server`` extra (fastapi, uvicorn, sse-starlette, pydantic-settings,
starlette-context). ``logits_all`` is only needed by the ``echo`` method and makes every
prompt token pay for the 262k-token output layer, so it is off by default.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stream_rec.errors import ModelError
from stream_rec.local.brokers import free_port

__all__ = ["SERVER_MODULES", "LlmServer"]

SERVER_MODULES = ("fastapi", "uvicorn", "sse_starlette", "pydantic_settings", "starlette_context")


@dataclass
class LlmServer:
    """One ``python -m llama_cpp.server`` subprocess."""

    proc: subprocess.Popen[bytes]
    port: int
    alias: str
    log_path: Path

    @property
    def url(self) -> str:
        """The OpenAI base URL (what ``STREAM_REC_LLM_URL`` wants)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @classmethod
    def start(cls, model_path: Path, *, log_path: Path, alias: str = "", n_ctx: int = 512,
              n_threads: int = 1, logits_all: bool = False,
              timeout_s: float = 60.0) -> LlmServer:
        """Start the server and wait until ``/v1/models`` answers."""
        missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise ModelError(f"llama_cpp.server needs {missing}: pip install "
                             "'stream-rec[server]'")
        port = free_port()
        alias = alias or Path(model_path).stem.lower()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
                "--model_alias", alias, "--host", "127.0.0.1", "--port", str(port),
                "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
                "--n_threads_batch", str(n_threads), "--logits_all", str(logits_all).lower(),
                "--verbose", "false"]
        with log_path.open("ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        server = cls(proc, port, alias, log_path)
        try:
            server._wait_ready(timeout_s)
        except BaseException:
            server.stop()
            raise
        return server

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> LlmServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ModelError(f"llama_cpp.server exited with {self.proc.returncode}; see "
                                 f"{self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise ModelError(f"llama_cpp.server not ready after {timeout_s:.0f} s; see "
                         f"{self.log_path}")
