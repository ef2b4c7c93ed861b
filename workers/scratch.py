"""Worker scratch directories: where a job's original and partial outputs live while it runs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

#: Scratch roots are named ``cf-worker-<pid>-*`` in the temporary directory, so the files of a
#: worker that was killed (SIGKILL, OOM) can be found and removed by whoever comes next.
SCRATCH_PREFIX = "cf-worker-"


def remove_scratch_of_dead_workers(pid: int | None = None) -> int:
    """Remove the scratch roots of ``pid`` (or of every worker process no longer alive)."""
    removed = 0
    for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        try:
            owner = int(path.name[len(SCRATCH_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if (pid is not None and owner != pid) or (pid is None and _process_alive(owner)):
            continue
        if path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
