"""Worker scratch directories: where a job's original and partial outputs live while it runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from contentforge.logging import get_logger

log = get_logger(__name__)

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


class Scratch:
    """One scratch directory per worker thread, under one root per process.

    A thread's directory is reused from job to job (and emptied after each) instead of a fresh
    temporary directory per job: creating and removing two directories cost more than a whole
    no-op job's SQL.
    """

    def __init__(self) -> None:
        self._root: Path | None = None
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextlib.contextmanager
    def job_dir(self) -> Iterator[Path]:
        """This thread's scratch directory, empty, with an empty ``work`` directory inside;
        emptied again when the block ends."""
        tmp = self._dir()
        try:
            yield tmp
        finally:
            self._clear(tmp)

    def _dir(self) -> Path:
        tmp: Path | None = getattr(self._local, "dir", None)
        if tmp is None:
            with self._lock:
                if self._root is None:
                    remove_scratch_of_dead_workers()
                    self._root = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
            tmp = Path(tempfile.mkdtemp(prefix="job-", dir=self._root))
            (tmp / "work").mkdir()
            self._local.dir = tmp
        return tmp

    def _clear(self, tmp: Path) -> None:
        """Empty a scratch directory after a job; a directory that cannot be emptied is dropped
        (the next job of this thread gets a new one)."""
        try:
            for entry in os.scandir(tmp):
                if entry.name == "work" and entry.is_dir(follow_symlinks=False):
                    for inner in os.scandir(entry.path):
                        _remove(inner)
                else:
                    _remove(entry)
        except OSError as exc:
            log.warning("could not empty the job's scratch directory; using a new one", path=str(tmp),
                        error=str(exc))
            self._local.dir = None
            shutil.rmtree(tmp, ignore_errors=True)

    def close(self) -> None:
        """Remove this process's scratch root."""
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


def _remove(entry: os.DirEntry[str]) -> None:
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path)
    else:
        os.unlink(entry.path)
