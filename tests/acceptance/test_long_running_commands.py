"""`contentforge worker` and `contentforge scheduler` on embedded services, stopped the way an operator stops them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.test_process import _env


@pytest.mark.slow
@pytest.mark.parametrize("command", [["worker", "--processes", "1"], ["scheduler"]], ids=" ".join)
def test_sigterm_while_embedded_services_start_is_a_clean_stop(tmp_path: Path, command: list[str]) -> None:
    """`docker stop` right after start: SIGTERM while the embedded PostgreSQL is still coming up
    ends the command with exit code 0 and stops that PostgreSQL, instead of a death by signal that
    leaves a postmaster running on the data folder."""
    pidfile = tmp_path / "data" / "postgres" / "postmaster.pid"
    proc = subprocess.Popen([sys.executable, "-m", "cli", *command],
                            cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not pidfile.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pidfile.exists(), "the embedded PostgreSQL never started"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert not pidfile.exists(), "the embedded PostgreSQL was left running"
