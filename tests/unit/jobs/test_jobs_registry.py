"""Job types per kind of file, output-name uniqueness, and the purity of the jobs package (the
registry is compared with the database's job types in tests/integration/schema/test_job_types.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jobs import JobInput, run_job
from jobs.registry import job_types_for

ROOT = Path(__file__).resolve().parents[3]


def test_job_types_for_kind() -> None:
    """job_types_for picks what the CLI enqueues for a kind of file."""
    assert job_types_for("image") == ["metadata", "thumbnail", "optimize"]
    assert job_types_for("document") == ["metadata"]


def test_output_names_unique_across_job_types(clip: Path, tmp_path: Path) -> None:
    """Every job type run on one video produces file names no other job type uses."""
    seen: dict[str, str] = {}
    for job in ("metadata", "thumbnail", "transcode"):
        work = tmp_path / job
        work.mkdir()
        for out in run_job(job, JobInput(clip, work, {"hls": True} if job == "transcode" else {})).outputs:
            assert out.name not in seen, (out.name, job, seen.get(out.name))
            assert out.path.is_relative_to(work) and out.path.exists()
            assert not out.name.startswith("/") and ".." not in out.name.split("/")
            seen[out.name] = job
    assert len(seen) > 10


def test_jobs_imports_nothing_of_ours_but_the_error_roots() -> None:
    """Importing every jobs module loads no workers, schema or scheduler code, and of contentforge
    only the error roots (contentforge.errors, which imports nothing)."""
    code = (
        "import sys, pkgutil, importlib, jobs\n"
        "for m in pkgutil.iter_modules(jobs.__path__): importlib.import_module('jobs.' + m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('contentforge', 'workers', 'schema', 'scheduler', 'cli')]\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "['contentforge', 'contentforge.errors']"
