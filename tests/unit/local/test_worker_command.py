"""A launched worker runs the launcher's own stream_rec, not whatever the cwd holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import stream_rec
from stream_rec.local.processes import worker_command


def test_the_worker_imports_the_launchers_package_even_from_another_checkout(
        tmp_path: Path) -> None:
    decoy = tmp_path / "stream_rec"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('imported the decoy checkout')\n")
    argv, env = worker_command({"PATH": "/usr/bin:/bin", "PYTHONPATH": "/nonexistent"})
    probe = [argv[0], *argv[1:-3], "-c", "import stream_rec; print(stream_rec.__file__)"]
    done = subprocess.run(probe, env=env, cwd=tmp_path, capture_output=True, text=True,
                          check=True, timeout=60)
    assert Path(done.stdout.strip()) == Path(stream_rec.__file__).resolve()
    assert env["PYTHONPATH"].endswith("/nonexistent")  # the caller's path is kept, after ours
    assert argv[-3:] == ["-m", "stream_rec", "worker"]
