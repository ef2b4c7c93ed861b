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
    assert {"postgres", "redis", "s3", "create-bucket", "migrate", "worker-light", "worker-heavy", "scheduler",
            "webhooks"} <= set(config["services"])
    assert "worker" not in config["services"]


def test_compose_builds_the_project_image_once(config: dict) -> None:
    """Only migrate builds contentforge:latest; the workers, the scheduler and webhooks run that same image."""
    services = config["services"]
    builders = sorted(name for name, s in services.items() if "build" in s)
    assert builders == ["migrate", "s3"]
    assert {services[n]["image"] for n in ("migrate", "worker-light", "worker-heavy", "scheduler", "webhooks")} \
        == {"contentforge:latest"}


def test_every_image_is_pinned(config: dict) -> None:
    """No service runs a :latest image from a registry (our own contentforge image excepted)."""
    for name, s in config["services"].items():
        image = s["image"]
        if image == "contentforge:latest":
            continue
        assert ":" in image and not image.endswith(":latest"), (name, image)
        assert "minio" not in image, (name, image)


@pytest.mark.parametrize("pool", ["light", "heavy"])
def test_workers_scale_and_wait_for_migration(config: dict, pool: str) -> None:
    """Each worker pool has no fixed name or host port (so --scale works) and starts after a successful migrate."""
    worker = config["services"][f"worker-{pool}"]
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in worker


def _seconds(duration: str) -> float:
    """A Compose duration as `compose config` prints it (1m30s, 60s)."""
    import re

    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)([hms])", duration))


def test_two_worker_pools_each_with_its_drain(config: dict) -> None:
    """worker-light runs `--pool light`, worker-heavy `--pool heavy` with fewer processes; each is
    given more time to stop than its worker waits for running jobs (heavy the longest)."""
    services = config["services"]
    grace = {}
    for pool in ("light", "heavy"):
        s = services[f"worker-{pool}"]
        assert s["command"] == ["worker", "--pool", pool]
        drain = float(s["environment"].get("CONTENTFORGE_SHUTDOWN_GRACE_SECONDS", 30))
        grace[pool] = _seconds(s["stop_grace_period"])
        assert grace[pool] > drain, (pool, grace[pool], drain)
    assert grace["heavy"] > grace["light"]
    assert int(services["worker-heavy"]["environment"]["CONTENTFORGE_WORKER_PROCESSES"]) \
        < int(services["worker-light"]["environment"]["CONTENTFORGE_WORKER_PROCESSES"])


def test_two_scheduler_replicas_and_one_shot_migrate(config: dict) -> None:
    """Two schedulers are allowed; migrate runs once and does not restart."""
    assert config["services"]["scheduler"]["deploy"]["replicas"] == 2
    assert config["services"]["migrate"]["command"] == ["db", "migrate"]
    assert config["services"]["migrate"]["restart"] == "no"


def test_dockerfile_is_multistage_slim_and_non_root() -> None:
    """Dependencies and the project build in stages of their own; the image runs slim, non-root, with ffmpeg."""
    text = (REPO / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 3 and all("slim" in s for s in stages)
    assert "USER contentforge" in text and "ffmpeg" in text and "espeak-ng" in text
    assert "HOME=/home/contentforge" in text and "XDG_CACHE_HOME" in text
    # The package list the image installs comes from pyproject.toml, so the two cannot drift.
    assert "scripts/requirements-from-pyproject" in text and "pip install --no-deps" in text


def test_dockerfile_needs_no_buildkit() -> None:
    """Plain RUN lines only: no `# syntax=` image to pull and no heredocs, so the classic builder works."""
    text = (REPO / "Dockerfile").read_text()
    assert not text.startswith("# syntax") and "<<" not in text


def test_requirements_script_expands_self_references() -> None:
    """The Dockerfile's requirements come from pyproject.toml, with contentforge[...] extras expanded."""
    import sys
    import tomllib

    out = subprocess.run([sys.executable, str(REPO / "scripts/requirements-from-pyproject"),
                          str(REPO / "pyproject.toml"), "all"], capture_output=True, text=True, check=True)
    reqs = out.stdout.split()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert not any(r.startswith("contentforge") for r in reqs)
    assert set(reqs) == set(project["dependencies"]) | {d for e in ("worker", "scheduler", "s3", "embedded")
                                                       for d in extras[e]}
    bad = subprocess.run([sys.executable, str(REPO / "scripts/requirements-from-pyproject"),
                          str(REPO / "pyproject.toml"), "nope"], capture_output=True, text=True)
    assert bad.returncode != 0 and "no extra named 'nope'" in bad.stderr


def test_dockerignore_keeps_the_context_small() -> None:
    """.dockerignore leaves out the virtualenv, git, caches, local data and the tests."""
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "node_modules", "contentforge-data", "**/__pycache__", ".pytest_cache", "tests"} <= ignored
