"""The soak harness in its short mode, run for real in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_short_soak_passes_every_check(tmp_path: Path) -> None:
    """The short soak (faults of every kind while three tenants enqueue) loses, doubles and strands no job."""
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--short", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=230,
    )
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    failed = [c for c in result["checks"] if not c["passed"]]
    assert not failed, json.dumps(failed, indent=1) + "\n" + proc.stdout[-3000:]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["wall_seconds"] < 180
