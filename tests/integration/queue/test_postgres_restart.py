"""A real PostgreSQL restart (its own embedded server, so the shared one is left alone) under a
running `contentforge worker`: `bench/pg_restart.py` with one repetition, every check must pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_worker_carries_on_after_a_postgres_restart(tmp_path: Path, redis_url: str) -> None:
    """Jobs running at the restart and jobs enqueued right after it all complete; the worker lives."""
    out = tmp_path / "restart.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "pg_restart.py"), "--reps", "1", "--jobs", "150",
                           "--redis-url", redis_url, "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=230)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    failed = [c for c in result["checks"] if not c["passed"]]
    assert not failed and result["reps"] == 1, json.dumps(failed, indent=1) + proc.stderr[-3000:]
    assert proc.returncode == 0
