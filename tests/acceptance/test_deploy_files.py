"""The deployment files: compose.yaml validated by Compose itself, the Dockerfile's promises checked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _compose() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed (scripts/bootstrap dev installs it)")


@pytest.fixture(scope="module")
def config() -> dict:
    """compose.yaml as Compose resolves it (anchors, merges and defaults applied)."""
    import yaml

    r = subprocess.run([*_compose(), "-f", str(REPO / "compose.yaml"), "config"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def test_compose_is_valid_and_has_the_services(config: dict) -> None:
    """compose.yaml passes `compose config` and defines every service of the deployment."""
    assert {"postgres", "redis", "minio", "migrate", "worker", "scheduler"} <= set(config["services"])


def test_workers_scale_and_wait_for_migration(config: dict) -> None:
    """worker has no fixed name or host port (so --scale works) and starts after a successful migrate."""
    worker = config["services"]["worker"]
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in worker


def test_two_scheduler_replicas_and_one_shot_migrate(config: dict) -> None:
    """Two schedulers are allowed; migrate runs once and does not restart."""
    assert config["services"]["scheduler"]["deploy"]["replicas"] == 2
    assert config["services"]["migrate"]["command"] == ["db", "migrate"]
    assert config["services"]["migrate"]["restart"] == "no"


def test_dockerfile_is_multistage_slim_and_non_root() -> None:
    """The image builds in one stage and runs from a slim one, as a non-root user, with ffmpeg."""
    text = (REPO / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and all("slim" in s for s in stages)
    assert "USER contentforge" in text and "ffmpeg" in text
    # The package list the image installs comes from pyproject.toml, so the two cannot drift.
    assert "tomllib" in text and "pip install --no-deps ." in text
