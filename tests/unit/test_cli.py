"""The command line's contract: --version, exit codes, one-line errors, env-var typos."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from stream_rec import __version__
from stream_rec.config import Settings, unknown_env_vars
from stream_rec.ops import _event_lines

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None,
        timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_REC_")}
    return subprocess.run([sys.executable, "-m", "stream_rec", *args], capture_output=True,
                          text=True, timeout=timeout_s, cwd=ROOT, env={**base, **(env or {})})


def test_version_prints_the_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"stream-rec {__version__}"


def test_a_usage_error_exits_2() -> None:
    assert run("produce").returncode == 2  # the file argument is missing
    result = run("produce", "events.jsonl")  # needs --broker kafka://…, not an embedded one
    assert result.returncode == 2 and "--broker" in result.stderr


def test_a_setting_that_cannot_work_exits_2_with_one_line() -> None:
    result = run("settings", env={"STREAM_REC_TOP_K": "0"})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: STREAM_REC_TOP_K=0 must be between 1 and 100"


def test_an_unreadable_input_file_exits_1_with_one_line(tmp_path: Path) -> None:
    result = run("produce", str(tmp_path / "missing.jsonl"), "--broker", "kafka://127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot read {tmp_path / 'missing.jsonl'}: No such file or directory"]


def test_an_unreachable_broker_exits_1_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"user_id": "u1"}\n')
    for args in (["produce", str(events)], ["dlq", "show"], ["watch", "--limit", "1"],
                 ["state", "u1"]):
        result = run(*args, "--broker", "kafka://127.0.0.1:1")
        assert result.returncode == 1, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: broker:"), (args, lines)
        assert "Traceback" not in result.stderr


def test_a_misspelled_variable_is_named_with_the_setting_it_resembles() -> None:
    assert unknown_env_vars({"STREAM_REC_TOPK": "5", "STREAM_REC_TOP_K": "5",
                             "STREAM_REC_SHARED_DATA": "x", "OTHER": "1"}) == ["STREAM_REC_TOPK"]
    result = run("settings", env={"STREAM_REC_TOPK": "5"})
    assert result.returncode == 0
    assert ("warning: STREAM_REC_TOPK is not a stream-rec setting and is ignored; did you mean "
            "STREAM_REC_TOP_K?") in result.stderr


def test_the_web_token_is_masked_like_other_secrets() -> None:
    assert Settings(web_token="s3cret").describe()["web_token"] == "***"


def test_produce_reads_lines_as_it_sends_them() -> None:
    class OneLineThenFail(io.BytesIO):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield b'{"user_id": "u1", "event_id": "e1"}\n'
            raise AssertionError("read past the first line before it was sent")

    read: list[int] = []
    lines = _event_lines(OneLineThenFail(), read.append)
    assert next(lines) == (b"u1", b'{"user_id": "u1", "event_id": "e1"}')
    assert read == [36]  # bytes read so far: one line
