"""Several hosts on one machine, built from network namespaces, and partitions between them.

One "infra" namespace runs a PostgreSQL 15 of its own (initdb into a temporary folder), a
redis-server and moto's S3 server, all listening on the infra address of a private /24 bridged
inside that namespace; each worker namespace runs a real ``contentforge worker`` (its own hostname,
so worker ids name the host) reaching them over a veth link. The test process reaches the infra
services over one more veth link from the root namespace. A partition is a pair of iptables DROP
rules inside a worker's namespace (packets to and from the infra address, optionally one port):
exactly what a cut cable or a dead switch port looks like to both sides, with no reset or error.

Everything made here carries a unique prefix (namespaces, links, the temporary folder) and is
removed by :meth:`Cluster.close`, processes by the ids of the process groups started here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: Ports of the infra services (inside the infra namespace; nothing else listens there).
PORTS = {"postgres": 5432, "redis": 6379, "s3": 5000}
BUCKET = "contentforge"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=check)


def unavailable() -> str | None:
    """Why namespaces cannot be built here, or None when they can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "building network namespaces needs root"
    for tool in ("ip", "iptables", "runuser", "unshare", "redis-server"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not (PG_BIN / "postgres").exists():
        return f"PostgreSQL 15 is not installed at {PG_BIN}"
    probe = f"cfprobe{os.getpid()}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


def _wait_port(host: str, port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout} s: {exc}") from exc
            time.sleep(0.1)


@dataclass
class Host:
    name: str
    ns: str
    ip: str
    link: str  # its interface inside the namespace
    proc: subprocess.Popen[bytes] | None = None
    cuts: list[str] = field(default_factory=list)


class Cluster:
    """An infra host and ``workers`` worker hosts; ``start()`` builds and starts them, ``close()`` removes all."""

    def __init__(self, workers: int = 2, *, lease_seconds: int = 6, threads: int = 2,
                 extra_env: dict[str, str] | None = None) -> None:
        self.prefix = f"cf{os.getpid() % 100000}{secrets.token_hex(1)}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.tmp.chmod(0o755)  # PostgreSQL runs as the postgres user below it
        self.net = self._free_subnet()
        self.infra_ip = f"{self.net}.1"
        self.root_ip = f"{self.net}.254"
        self.lease_seconds = lease_seconds
        self.threads = threads
        self.extra_env = extra_env or {}
        self.infra = Host("infra", f"{self.prefix}-infra", self.infra_ip, "br0")
        self.workers = [Host(f"w{i}", f"{self.prefix}-w{i}", f"{self.net}.{10 + i}", f"{self.prefix}w{i}")
                        for i in range(1, workers + 1)]
        self._services: list[subprocess.Popen[bytes]] = []
        self._namespaces: list[str] = []
        self._root_link = f"{self.prefix}h"

    # --- addresses -------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{self.infra_ip}:{PORTS['postgres']}/contentforge"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.infra_ip}:{PORTS['redis']}/0"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.infra_ip}:{PORTS['s3']}"

    @property
    def storage_url(self) -> str:
        return f"s3://{BUCKET}/cf?endpoint_url={self.s3_endpoint}&region=us-east-1"

    @staticmethod
    def _free_subnet() -> str:
        used = _run("ip", "-4", "-o", "addr").stdout + _run("ip", "-4", "route").stdout
        for _ in range(100):
            net = f"10.217.{secrets.randbelow(250) + 1}"
            if f"{net}." not in used:
                return net
        raise RuntimeError("no free 10.217.x.0/24 subnet for the test hosts")

    # --- building --------------------------------------------------------------------------
    def start(self) -> Cluster:
        try:
            self._network()
            self._postgres()
            self._redis()
            self._s3()
            self._schema()
            for host in self.workers:
                self.start_worker(host)
        except BaseException:
            self.close()
            raise
        return self

    def _ns(self, ns: str, *args: str) -> None:
        _run("ip", "-n", ns, *args)

    def _network(self) -> None:
        infra = self.infra.ns
        _run("ip", "netns", "add", infra)
        self._namespaces.append(infra)
        self._ns(infra, "link", "set", "lo", "up")
        self._ns(infra, "link", "add", "br0", "type", "bridge")
        self._ns(infra, "addr", "add", f"{self.infra_ip}/24", "dev", "br0")
        self._ns(infra, "link", "set", "br0", "up")
        # The test process's own link into the infra host.
        _run("ip", "link", "add", self._root_link, "type", "veth", "peer", "name", f"{self._root_link}b")
        _run("ip", "link", "set", f"{self._root_link}b", "netns", infra)
        self._ns(infra, "link", "set", f"{self._root_link}b", "master", "br0", "up")
        _run("ip", "addr", "add", f"{self.root_ip}/24", "dev", self._root_link)
        _run("ip", "link", "set", self._root_link, "up")
        for host in self.workers:
            _run("ip", "netns", "add", host.ns)
            self._namespaces.append(host.ns)
            self._ns(host.ns, "link", "set", "lo", "up")
            _run("ip", "link", "add", host.link, "type", "veth", "peer", "name", f"{host.link}b")
            _run("ip", "link", "set", host.link, "netns", host.ns)
            _run("ip", "link", "set", f"{host.link}b", "netns", infra)
            self._ns(infra, "link", "set", f"{host.link}b", "master", "br0", "up")
            self._ns(host.ns, "addr", "add", f"{host.ip}/24", "dev", host.link)
            self._ns(host.ns, "link", "set", host.link, "up")

    def _spawn(self, name: str, ns: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed right after the start
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env, cwd=ROOT)
        log.close()
        return proc

    def _postgres(self) -> None:
        data = self.tmp / "pg"
        data.mkdir()
        sock = self.tmp / "pgsock"
        sock.mkdir()
        for d in (data, sock):
            shutil.chown(d, "postgres", "postgres")
        _run("runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
             "-A", "trust", "-E", "UTF8", "--no-sync")
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.net}.0/24 trust\n")
        # Short server-side keepalives: the backend of a partitioned host's session (the relay's
        # election lock) is dropped within seconds, as an operator sets them for such failures.
        self._services.append(self._spawn("postgres", self.infra.ns, [
            "runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(data),
            "-c", f"listen_addresses={self.infra_ip}", "-c", f"port={PORTS['postgres']}",
            "-c", f"unix_socket_directories={sock}", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=64MB",
            "-c", "tcp_keepalives_idle=2", "-c", "tcp_keepalives_interval=1", "-c", "tcp_keepalives_count=3",
            "-c", "tcp_user_timeout=5000"]))
        _wait_port(self.infra_ip, PORTS["postgres"], "PostgreSQL")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"postgresql://postgres@{self.infra_ip}:{PORTS['postgres']}/postgres",
                                     autocommit=True, connect_timeout=3) as c:
                    c.execute("CREATE DATABASE contentforge")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _redis(self) -> None:
        folder = self.tmp / "redis"
        folder.mkdir()
        self._services.append(self._spawn("redis", self.infra.ns, [
            "redis-server", "--bind", self.infra_ip, "--port", str(PORTS["redis"]), "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--dir", str(folder)]))
        _wait_port(self.infra_ip, PORTS["redis"], "Redis")

    def _s3(self) -> None:
        self._services.append(self._spawn("s3", self.infra.ns, [
            sys.executable, "-m", "moto.server", "-H", self.infra_ip, "-p", str(PORTS["s3"])],
            env={**os.environ, **AWS_ENV}))
        _wait_port(self.infra_ip, PORTS["s3"], "moto's S3 server")
        import boto3

        boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test").create_bucket(Bucket=BUCKET)

    def _schema(self) -> None:
        from contentforge.api import set_test_job_types
        from schema import migrate

        migrate(self.database_url)
        set_test_job_types(self.database_url, True)

    def worker_env(self, host: Host) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTENTFORGE_", "AWS_"))}
        env.update(AWS_ENV)
        env.update({
            "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "STORAGE_URL": self.storage_url,
            "CONTENTFORGE_DATA_DIR": str(self.tmp / host.name),
            "CONTENTFORGE_LEASE_SECONDS": str(self.lease_seconds),
            "CONTENTFORGE_SWEEP_INTERVAL_SECONDS": "1", "CONTENTFORGE_RETRY_BASE_SECONDS": "0.5",
            "CONTENTFORGE_RETRY_MAX_SECONDS": "2", "CONTENTFORGE_SHUTDOWN_GRACE_SECONDS": "2",
            "CONTENTFORGE_METRICS_PORT": "0", "CONTENTFORGE_ALLOW_TEST_JOBS": "true",
            "CONTENTFORGE_LOG_FORMAT": "json", "CONTENTFORGE_WORKER_PROCESSES": "1",
            "CONTENTFORGE_WORKER_THREADS": str(self.threads),
        })
        env.update(self.extra_env)
        return env

    def start_worker(self, host: Host) -> None:
        """Start `contentforge worker` on ``host``, with the host's name as its hostname."""
        host.proc = self._spawn(host.name, host.ns, [
            "unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', host.name,
            sys.executable, "-m", "cli", "worker"], env=self.worker_env(host))

    # --- partitions ------------------------------------------------------------------------
    def cut(self, host: Host, service: str | None = None) -> None:
        """Drop every packet between ``host`` and the infra host (only ``service``'s port when given)."""
        port = [] if service is None else ["-p", "tcp"]
        out = [*port, "--dport", str(PORTS[service])] if service else []
        back = [*port, "--sport", str(PORTS[service])] if service else []
        _run("ip", "netns", "exec", host.ns, "iptables", "-A", "OUTPUT", "-d", self.infra_ip, *out, "-j", "DROP")
        _run("ip", "netns", "exec", host.ns, "iptables", "-A", "INPUT", "-s", self.infra_ip, *back, "-j", "DROP")
        host.cuts.append(service or "everything")

    def heal(self, host: Host) -> None:
        """Remove every rule of ``host``: it reaches the infra host again."""
        _run("ip", "netns", "exec", host.ns, "iptables", "-F")
        host.cuts.clear()

    # --- looking -----------------------------------------------------------------------------
    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row, connect_timeout=5)

    def storage(self) -> Any:
        from contentforge.storage import open_storage

        for key, value in AWS_ENV.items():
            os.environ.setdefault(key, value)
        return open_storage(self.storage_url)

    def log(self, host: Host) -> str:
        return (self.tmp / f"{host.name}.log").read_text(errors="replace")

    # --- tearing down ------------------------------------------------------------------------
    def close(self) -> None:
        for proc in [h.proc for h in self.workers if h.proc] + self._services[::-1]:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        for ns in self._namespaces[::-1]:
            _run("ip", "netns", "del", ns, check=False)
        _run("ip", "link", "del", self._root_link, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- the checks, shared by the test and bench/bench_partitions.py ----------------------------
def make_assets(conn: psycopg.Connection[Any], n: int) -> list[uuid.UUID]:
    """``n`` image assets of one new tenant (noop jobs accept any asset)."""
    from tests import factories as f

    user = f.user(conn)
    tenant = f.tenant(conn)
    f.member(conn, tenant, user, "author")
    return [f.asset(conn, tenant, user) for _ in range(n)]


def enqueue_noops(conn: psycopg.Connection[Any], assets: list[uuid.UUID], *, sleep_seconds: float,
                  output_bytes: int = 4096) -> list[uuid.UUID]:
    from psycopg.types.json import Jsonb

    return [conn.execute("SELECT enqueue_asset_job(asset_id => %s, job_type => 'noop', params => %s) AS id",
                         (a, Jsonb({"sleep_seconds": sleep_seconds, "output_bytes": output_bytes}))).fetchone()["id"]
            for a in assets]


def unfinished(conn: psycopg.Connection[Any], jobs: list[uuid.UUID]) -> int:
    return conn.execute("SELECT count(*) AS n FROM asset_processing_jobs WHERE id = ANY(%s) "
                        "AND status IN ('pending', 'running')", (jobs,)).fetchone()["n"]


@dataclass
class Verdict:
    jobs: int = 0
    completed: int = 0
    lost: list[str] = field(default_factory=list)  # not completed (failed, cancelled, gone)
    completed_twice: list[str] = field(default_factory=list)  # more than one job.completed event
    pointing_at_loser: list[str] = field(default_factory=list)  # asset names a key not of the winning attempt
    wrong_bytes: list[str] = field(default_factory=list)  # the named file is not the winner's bytes
    retried: int = 0  # jobs that needed more than one attempt
    swept: int = 0  # files removed by the sweep (losing attempts' files)
    orphans: list[str] = field(default_factory=list)  # stored output files no row names, after the sweep

    @property
    def ok(self) -> bool:
        return not (self.lost or self.completed_twice or self.pointing_at_loser or self.wrong_bytes or self.orphans)

    def summary(self) -> str:
        return (f"{self.jobs} jobs: {self.completed} completed ({self.retried} after more than one attempt); "
                f"lost {len(self.lost)}, completed twice {len(self.completed_twice)}, asset pointing at a "
                f"losing attempt {len(self.pointing_at_loser)}, wrong bytes {len(self.wrong_bytes)}; "
                f"sweep removed {self.swept}, orphans after it {len(self.orphans)}")


def verdict(cluster: Cluster, jobs: list[uuid.UUID]) -> Verdict:
    """Check the run's jobs against the invariants, sweep the store (grace 0), and look for orphans."""
    import datetime as dt

    from contentforge.output_keys import is_sweepable, output_key
    from contentforge.storage_sweep import sweep_outputs

    storage = cluster.storage()
    v = Verdict(jobs=len(jobs))
    with cluster.connect() as conn:
        rows = conn.execute(
            "SELECT j.id, j.status, j.attempts, j.tenant_id, j.asset_id, j.claim_token, j.output_data, "
            "a.variants -> 'noop.bin' AS variant, "
            "(SELECT count(*) FROM webhook_events e WHERE e.job_id = j.id AND e.event_type = 'job.completed') AS done "
            "FROM asset_processing_jobs j JOIN assets a ON a.id = j.asset_id WHERE j.id = ANY(%s)", (jobs,)).fetchall()
        seen = {r["id"] for r in rows}
        v.lost += [str(j) for j in jobs if j not in seen]
        scratch = cluster.tmp / "check.bin"
        for r in rows:
            if r["status"] != "completed":
                v.lost.append(f"{r['id']} {r['status']}")
                continue
            v.completed += 1
            v.retried += r["attempts"] > 1
            if r["done"] != 1:
                v.completed_twice.append(f"{r['id']}: {r['done']} job.completed events")
            winner = output_key(r["tenant_id"], r["asset_id"], r["claim_token"], "noop.bin")
            if not r["variant"] or r["variant"]["key"] != winner:
                v.pointing_at_loser.append(f"{r['id']}: {r['variant']} (winner {winner})")
                continue
            storage.get_file(winner, scratch)
            if hashlib.sha256(scratch.read_bytes()).hexdigest() != r["output_data"].get("sha256"):
                v.wrong_bytes.append(str(r["id"]))
        v.swept = sweep_outputs(conn, storage, dt.timedelta(0)).removed
        named = {e["key"] for r in conn.execute("SELECT variants FROM assets").fetchall()
                 for e in r["variants"].values()}
    v.orphans = sorted(k for k in storage.list() if is_sweepable(k) and k not in named)
    return v
