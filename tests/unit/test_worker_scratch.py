"""Scratch directories of killed workers are removed by whoever comes next (found by the soak)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from workers.scratch import SCRATCH_PREFIX, remove_scratch_of_dead_workers


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_dead_workers_scratch_is_removed_and_live_ones_kept() -> None:
    """A root left by a process that no longer exists goes; this process's own root stays."""
    dead = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{_dead_pid()}-"))
    (dead / "job-1").mkdir()
    (dead / "job-1" / "original.mp4").write_bytes(b"x" * 1000)
    alive = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    try:
        assert remove_scratch_of_dead_workers() >= 1
        assert not dead.exists() and alive.exists()
    finally:
        for p in (dead, alive):
            if p.exists():
                import shutil

                shutil.rmtree(p)


def test_a_named_pid_is_removed_even_if_reused() -> None:
    """The supervisor removes the root of the child it saw exit, by pid."""
    pid = _dead_pid()
    root = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{pid}-"))
    other = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    try:
        assert remove_scratch_of_dead_workers(pid) == 1
        assert not root.exists() and other.exists()
    finally:
        import shutil

        shutil.rmtree(other, ignore_errors=True)
