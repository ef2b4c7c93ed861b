"""The containers for real: a Docker engine from Debian's packages builds the image and runs
compose.yaml with two light and three heavy workers, which process real media, each job in its own
pool; one heavy worker is killed mid-transcode and its job is recovered by another, one is stopped
and drains, and no job is lost."""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from contentforge.storage import open_storage
from tests import factories as f
from tests import media_factories as media
from tests.containers import engine as eng

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
PROJECT = "cftest"
#: Seconds: the workers' lease in the test (30 in production), so a killed worker's job comes back soon.
LEASE_SECONDS = 6
#: Seconds a stopped worker waits for its running job before releasing it (30 in production).
GRACE_SECONDS = 2
#: Longest wait for all jobs of a phase to finish, in seconds (two 2-core-machine transcodes and retries).
PHASE_SECONDS = 240
#: The worker services of compose.yaml, how many containers of each the test runs, and the job
#: types of their pools (`contentforge worker --pool light|heavy`). Three heavy ones: one is
#: killed, one stopped, and the last one still takes the jobs they leave.
WORKERS = {"worker-light": 2, "worker-heavy": 3}
POOL_OF = {"metadata": "worker-light", "thumbnail": "worker-light", "optimize": "worker-light",
           "transcode": "worker-heavy", "transcript": "worker-heavy"}


def _compose_cli() -> list[str]:
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.fail("docker-compose is not installed (scripts/bootstrap dev installs Debian's docker-compose)")


class Stack:
    def __init__(self, engine: eng.Engine, override: Path) -> None:
        self.engine = engine
        self.files = ["-p", PROJECT, "-f", str(REPO / "compose.yaml"), "-f", str(override)]
        self.build_output = ""

    def compose(self, *args: str, check: bool = True, timeout: float = 1800):
        return eng.run([*_compose_cli(), *self.files, *args], env=self.engine.env, check=check, timeout=timeout)

    def port(self, service: str, port: int) -> int:
        out = self.compose("port", service, str(port)).stdout.strip()
        return int(out.rsplit(":", 1)[1])

    def worker_containers(self, service: str) -> dict[str, str]:
        """Running containers of one worker service: {hostname (12-char id): name}."""
        out = self.engine.docker("ps", "--filter", f"label=com.docker.compose.project={PROJECT}",
                                 "--filter", f"label=com.docker.compose.service={service}",
                                 "--format", "{{.ID}} {{.Names}}").stdout
        return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def _override(tmp: Path) -> Path:
    """Test-only settings on top of compose.yaml: host network for builds, loopback ports, short lease."""
    worker = {
        "restart": "no",
        "environment": {
            "CONTENTFORGE_WORKER_PROCESSES": "1",
            "CONTENTFORGE_WORKER_THREADS": "1",
            "CONTENTFORGE_LEASE_SECONDS": str(LEASE_SECONDS),
            "CONTENTFORGE_SWEEP_INTERVAL_SECONDS": "1",
            "CONTENTFORGE_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        },
    }
    doc = {
        "services": {
            "migrate": {"build": {"context": str(REPO), "network": "host"}},
            "s3": {"build": {"context": str(REPO / "deploy/s3"), "network": "host"},
                   "ports": ["127.0.0.1::5000"]},
            "postgres": {"ports": ["127.0.0.1::5432"]},
            **{service: copy.deepcopy(worker) for service in WORKERS},
        },
    }
    path = tmp / "compose.test.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[eng.Engine]:
    """A dockerd of our own with the base images built locally; stopped (by PID) at the end."""
    try:
        e = eng.start_engine()
    except eng.EngineUnavailable as exc:
        pytest.skip(f"no Docker engine can run on this machine: {exc}")
    try:
        t0 = time.monotonic()
        eng.ensure_base_images(e, tmp_path_factory.mktemp("base"))
        try:
            eng.container_runs(e)
        except eng.EngineUnavailable as exc:
            pytest.skip(f"no Docker engine can run on this machine: {exc}")
        print(f"\nbase images ready in {time.monotonic() - t0:.0f} s")
        yield e
    finally:
        e.stop()


@pytest.fixture(scope="module")
def stack(engine: eng.Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """compose.yaml built (the project image once) and up with two light and three heavy workers."""
    s = Stack(engine, _override(tmp_path_factory.mktemp("compose")))
    t0 = time.monotonic()
    built = s.compose("build")
    s.build_output = built.stdout + built.stderr
    print(f"compose build in {time.monotonic() - t0:.0f} s")
    try:
        scale = [arg for service, n in WORKERS.items() for arg in ("--scale", f"{service}={n}")]
        s.compose("up", "-d", "--no-build", *scale, timeout=600)
        yield s
    finally:
        logs = s.compose("logs", "--no-color", "--tail=60", check=False).stdout
        print(logs[-20000:])
        s.compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=300)


def _wait(what: str, timeout: float, probe):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _jobs(conn: psycopg.Connection, ids: list[uuid.UUID]) -> list[dict]:
    return conn.execute("SELECT id, job_type, status, attempts, worker_id, error_message FROM asset_processing_jobs"
                        " WHERE id = ANY(%s)", (ids,)).fetchall()


def _enqueue(conn: psycopg.Connection, asset: uuid.UUID, job_types: list[str]) -> dict[str, uuid.UUID]:
    rows = conn.execute("SELECT e.job_type, e.job_id FROM public.enqueue_asset_jobs(asset_id => %s, job_types => %s) e",
                        (asset, job_types)).fetchall()
    return {r["job_type"]: r["job_id"] for r in rows}


def _host(worker_id: str | None) -> str:
    return (worker_id or "").split(":", 1)[0]


def test_compose_stack_processes_media_survives_a_kill_and_drains_on_stop(stack: Stack, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         request: pytest.FixtureRequest) -> None:
    """Light and heavy workers process a photo and videos, each job in its pool; a killed heavy
    worker's transcode is recovered, a stopped one drains."""
    engine = stack.engine
    # The compose stack's S3 credentials (compose.yaml), for our uploads from the host.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "contentforge")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "contentforge-secret")
    # (c) One build of the project image for migrate, worker and scheduler.
    built_services = re.findall(r"^Building (\S+)\s*$", stack.build_output, flags=re.M)  # compose's own lines
    assert sorted(built_services) == ["migrate", "s3"], built_services
    # (b) and (f): a writable home and espeak-ng in the image, as the app user.
    probe = engine.docker("run", "--rm", "--network=none", "--entrypoint", "sh", "contentforge:latest", "-c",
                          'id -un && touch "$HOME/.cache/probe" && echo "$XDG_CACHE_HOME" && espeak-ng --version').stdout
    assert probe.splitlines()[0] == "contentforge"
    assert "/home/contentforge/.cache" in probe and "eSpeak NG" in probe

    pools = {service: _wait(f"{n} running {service} containers", 120,
                            lambda service=service, n=n: (w := stack.worker_containers(service)) and len(w) == n and w)
             for service, n in WORKERS.items()}
    workers = pools["worker-heavy"]  # the ones killed and stopped below
    every_worker = {host: name for pool in pools.values() for host, name in pool.items()}
    pg_port, s3_port = stack.port("postgres", 5432), stack.port("s3", 5000)
    conn = psycopg.connect(f"postgresql://contentforge:contentforge@127.0.0.1:{pg_port}/contentforge",
                           autocommit=True, row_factory=dict_row)
    request.addfinalizer(conn.close)  # also when an assertion fails (else a ResourceWarning hits a later test)
    storage = open_storage(f"s3://contentforge/media?endpoint_url=http://127.0.0.1:{s3_port}&region=us-east-1")
    tenant = f.tenant(conn)
    user = f.user(conn)

    def upload(path: Path, **kw) -> uuid.UUID:
        asset = f.asset(conn, tenant, user, original_filename=path.name, file_size=path.stat().st_size, **kw)
        key = conn.execute("SELECT storage_path FROM assets WHERE id = %s", (asset,)).fetchone()["storage_path"]
        storage.put_file(key, path, kw.get("mime_type", "image/jpeg"))
        return asset

    photo = upload(media.photo(tmp_path, size=(1600, 1200)))
    video_kw = {"file_type": "video", "mime_type": "video/mp4"}
    clip1 = upload(media.video(tmp_path, "clip1.mp4", size=(1280, 720), seconds=8, rate=25), **video_kw)
    clip2 = upload(media.video(tmp_path, "clip2.mp4", size=(1280, 720), seconds=8, rate=25), **video_kw)

    # (f) The demo's sample video, made inside the image (its espeak-ng speaks the sentence).
    out = tmp_path / "from-image"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    engine.docker("run", "--rm", "--network=none", "-v", f"{out}:/out", "--entrypoint", "python", "contentforge:latest",
                  "-c", "import shutil, tempfile; from pathlib import Path; from cli.samples import video; "
                  "shutil.copy(video(Path(tempfile.mkdtemp())), '/out/lesson.mp4')")
    lesson = upload(out / "lesson.mp4", **video_kw)

    # Phase 1: real media across the containers; the worker running the first transcode is killed.
    jobs1 = {**{f"photo.{k}": v for k, v in _enqueue(conn, photo, ["metadata", "thumbnail"]).items()},
             **{f"clip1.{k}": v for k, v in _enqueue(conn, clip1, ["metadata", "thumbnail", "transcode"]).items()},
             "lesson.transcript": _enqueue(conn, lesson, ["transcript"])["transcript"]}
    transcode = jobs1["clip1.transcode"]
    running = _wait("the transcode to start", PHASE_SECONDS, lambda: conn.execute(
        "SELECT worker_id FROM asset_processing_jobs WHERE id = %s AND status = 'running'", (transcode,)).fetchone())
    victim = _host(running["worker_id"])
    assert victim in workers, (victim, workers)
    engine.docker("kill", workers[victim])
    t_kill = time.monotonic()

    def phase_done(ids: list[uuid.UUID]):
        rows = _jobs(conn, ids)
        return rows if all(r["status"] in ("completed", "failed", "cancelled") for r in rows) else None

    rows = {r["id"]: r for r in _wait("phase 1 jobs to finish", PHASE_SECONDS, lambda: phase_done(list(jobs1.values())))}
    print(f"killed worker's transcode recovered and finished {time.monotonic() - t_kill:.0f} s after the kill")
    assert {r["status"] for r in rows.values()} == {"completed"}, rows
    recovered = rows[transcode]
    assert recovered["attempts"] == 2, recovered
    assert _host(recovered["worker_id"]) not in ("", victim), recovered
    hosts = {_host(r["worker_id"]) for r in rows.values()}
    assert len(hosts) >= 2 and hosts <= set(every_worker), (hosts, every_worker)
    # Each job ran in the pool of its type: a light worker never took a transcode, nor a heavy one a thumbnail.
    for r in rows.values():
        assert _host(r["worker_id"]) in pools[POOL_OF[r["job_type"]]], (r, pools)
    variants = conn.execute("SELECT id, variants, processing_status FROM assets WHERE id = ANY(%s)",
                            ([photo, clip1],)).fetchall()
    for a in variants:
        assert a["processing_status"] == "ready" and a["variants"], a
        for v in a["variants"].values():
            assert storage.exists(v["key"]), v
    text = conn.execute("SELECT output_data->>'text' AS text FROM asset_processing_jobs WHERE id = %s",
                        (jobs1["lesson.transcript"],)).fetchone()["text"].lower()
    assert "welcome" in text and "speech" in text, text
    kill_state = json.loads(engine.docker("inspect", "--format", "{{json .State}}", workers[victim]).stdout)
    assert kill_state["Status"] == "exited" and kill_state["ExitCode"] == 137, kill_state

    # Phase 2: the worker running the second transcode is stopped (SIGTERM): it drains and exits 0.
    jobs2 = _enqueue(conn, clip2, ["transcode", "thumbnail"])
    running = _wait("the second transcode to start", PHASE_SECONDS, lambda: conn.execute(
        "SELECT worker_id FROM asset_processing_jobs WHERE id = %s AND status = 'running'",
        (jobs2["transcode"],)).fetchone())
    stopped = _host(running["worker_id"])
    assert stopped in workers and stopped != victim, (stopped, victim)
    engine.docker("stop", "-t", "60", workers[stopped])
    stop_state = json.loads(engine.docker("inspect", "--format", "{{json .State}}", workers[stopped]).stdout)
    assert stop_state["ExitCode"] == 0, stop_state
    logs = engine.docker("logs", workers[stopped]).stdout + engine.docker("logs", workers[stopped]).stderr
    rows = {r["id"]: r for r in _wait("phase 2 jobs to finish", PHASE_SECONDS, lambda: phase_done(list(jobs2.values())))}
    assert {r["status"] for r in rows.values()} == {"completed"}, rows
    for r in rows.values():
        assert _host(r["worker_id"]) in pools[POOL_OF[r["job_type"]]], (r, pools)
    assert '"draining"' in logs and '"worker process stopped"' in logs, logs[-3000:]
    finisher = _host(rows[jobs2["transcode"]]["worker_id"])
    if finisher == stopped:
        print("stopped worker finished its transcode within the grace period, then exited")
    else:
        # Released at shutdown, then taken by the one worker left.
        print("stopped worker released its transcode at shutdown; the last worker finished it")
        assert "job released at shutdown" in logs, logs[-3000:]
        assert finisher in workers and finisher not in (victim, stopped)
    # Nothing lost: every job of the run completed.
    total = conn.execute("SELECT status, count(*) AS n FROM asset_processing_jobs GROUP BY status").fetchall()
    assert [(r["status"], r["n"]) for r in total] == [("completed", len(jobs1) + len(jobs2))], total
    conn.close()
