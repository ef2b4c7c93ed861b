"""A private Docker engine for the container test, from Debian's packages, and the base images
Docker Hub would give, built locally with debootstrap.

The engine runs with its own data root, exec root, pid file and socket, and no default bridge
(builds use the host's network, compose creates its own networks). Its data root is kept under
``CACHE_DIR`` between runs when no other run holds it, so a second run reuses the base images and
the layer cache; without the cache every run starts from nothing and still works.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Kept between runs: the debootstrapped root file system and the engine's data root.
CACHE_DIR = Path(os.environ.get("CONTENTFORGE_CONTAINER_CACHE", "/var/cache/contentforge-test"))
#: Where the engine's images live in the test; what the Dockerfile and compose.yaml name.
DEBIAN_SUITE = "bookworm"
DEBIAN_BASE_TAG = "debian:bookworm-slim"
IMAGES = Path(__file__).resolve().parent / "images"
#: Stand-ins for the Docker Hub images, in build order (each FROM the Debian base).
STAND_INS = {
    "python:3.11-slim-bookworm": IMAGES / "python",
    "postgres:15-bookworm": IMAGES / "postgres",
    "redis:7-bookworm": IMAGES / "redis",
}
#: The machine's CA bundle: copied into the base so TLS downloads inside builds verify.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
#: Longest wait, in seconds, for another run holding the cached data root: a warm run takes about
#: a minute or two, a run with a cold private data root seven to nine.
CACHE_WAIT_SECONDS = 600
#: Longest wait for the engine's API after start, in seconds.
ENGINE_START_SECONDS = 60


class EngineUnavailable(Exception):
    """No Docker engine can run here; the message says why (the test is skipped with it)."""


def run(cmd: Sequence[str | os.PathLike[str]], *, env: dict[str, str] | None = None, check: bool = True,
        timeout: float | None = 1800, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=input is None, timeout=timeout,
                       input=input)
    if check and r.returncode != 0:
        out = r.stdout if isinstance(r.stdout, str) else r.stdout.decode(errors="replace")
        err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode(errors="replace")
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {r.returncode}\n{out[-4000:]}\n{err[-4000:]}")
    return r


def debian_mirror() -> tuple[str, str]:
    """The machine's Debian mirror URI and its keyring, read from its own apt configuration."""
    stanzas = APT_SOURCES.read_text().split("\n\n") if APT_SOURCES.exists() else []
    for stanza in stanzas:
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        suites = fields.get("suites", "").split()
        if fields.get("uris") and any("-" not in s for s in suites):
            return fields["uris"].split()[0], fields.get("signed-by", "")
    legacy = Path("/etc/apt/sources.list")
    for line in legacy.read_text().splitlines() if legacy.exists() else []:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb" and "-" not in parts[2]:
            uri = next(p for p in parts[1:] if "://" in p)
            return uri, ""
    raise AssertionError(f"no Debian mirror found in {APT_SOURCES} or {legacy}")


def _apt_sources_for_base(uri: str) -> str:
    """The base's apt sources: the machine's own file when it is for bookworm, else one stanza."""
    if APT_SOURCES.exists() and DEBIAN_SUITE in APT_SOURCES.read_text():
        return APT_SOURCES.read_text()
    return f"Types: deb\nURIs: {uri}\nSuites: {DEBIAN_SUITE} {DEBIAN_SUITE}-updates\nComponents: main\n"


def rootfs_key() -> str:
    """What the base depends on: suite, mirror, CA bundle, apt sources, and the month (so a cached
    base picks up Debian's updates at least monthly)."""
    uri, _ = debian_mirror()
    return hashlib.sha256(f"{DEBIAN_SUITE} {uri} {time.strftime('%Y-%m')} ".encode() + CA_BUNDLE.read_bytes()
                          + _apt_sources_for_base(uri).encode()).hexdigest()[:16]


def base_rootfs_tar(workdir: Path) -> Path:
    """A tarball of a minimal Debian bookworm with the machine's CA bundle and apt sources.

    Taken from the cache when a previous run left one with the same ``rootfs_key()``; made with
    debootstrap otherwise (a few minutes).
    """
    uri, keyring = debian_mirror()
    cached = CACHE_DIR / f"rootfs-{DEBIAN_SUITE}-{rootfs_key()}.tar"
    if cached.exists():
        return cached
    rootfs = workdir / "rootfs"
    cmd = ["debootstrap", "--variant=minbase", "--include=ca-certificates"]
    if keyring:
        cmd.append(f"--keyring={keyring}")
    run([*cmd, DEBIAN_SUITE, rootfs, uri])
    shutil.copyfile(CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(_apt_sources_for_base(uri))
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (rootfs / junk).glob("*"):
            if p.is_file():
                p.unlink()
    tar = workdir / "rootfs.tar"
    run(["tar", "-C", rootfs, "--numeric-owner", "-cf", tar, "."])
    shutil.rmtree(rootfs)
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        for stale in CACHE_DIR.glob(f"rootfs-{DEBIAN_SUITE}-*.tar"):
            stale.unlink()
        shutil.move(tar, cached)
        return cached
    except OSError:
        return tar


@dataclass
class Engine:
    """A dockerd of our own: started, used through DOCKER_HOST, stopped by its PID."""

    root: Path
    data_root: Path
    proc: subprocess.Popen[bytes] | None = None
    lock_fd: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    docker_cli: str = "docker"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    def docker(self, *args: str | os.PathLike[str], check: bool = True, timeout: float | None = 1800,
               input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return run([self.docker_cli, *args], env=self.env, check=check, timeout=timeout, input=input)

    def log_tail(self, lines: int = 15) -> str:
        log = self.root / "dockerd.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def stop(self) -> None:
        """Stop every container, then the daemon (SIGTERM to its PID, SIGKILL after 30 s)."""
        if self.proc and self.proc.poll() is None:
            r = self.docker("ps", "-aq", check=False, timeout=60)
            ids = r.stdout.split() if r.returncode == 0 else []
            if ids:
                self.docker("rm", "-f", "-v", *ids, check=False, timeout=120)
            self.docker("network", "prune", "-f", check=False, timeout=60)
            self.docker("volume", "prune", "-f", check=False, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
        # The daemon leaves its network namespace bind-mounted under the exec root.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(f"{self.root}/")), reverse=True):
            run(["umount", "--lazy", point], check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        if not str(self.data_root).startswith(str(CACHE_DIR)):
            # A private data root (the cache was busy or not writable): nothing of it is kept.
            run(["rm", "-rf", self.data_root], check=False)


def _client_for(dockerd: str) -> str:
    """The docker client shipped beside the daemon (Debian's), else the one on PATH."""
    for candidate in ("/usr/bin/docker", str(Path(dockerd).parent / "docker")):
        if Path(candidate).exists():
            return candidate
    found = shutil.which("docker")
    if not found:
        raise AssertionError("no docker client installed (scripts/bootstrap dev installs docker.io)")
    return found


def _lock(fd: int, wait: float) -> None:
    """Take the cache's lock, waiting up to ``wait`` seconds for another run; OSError if still held."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(2)


def start_engine(data_root: Path | None = None) -> Engine:
    """Start dockerd from Debian's docker.io; raise EngineUnavailable when none can run here.

    ``data_root`` gives a private data root (deleted at stop); by default the cached one is used
    when no other run holds it, else a private one.
    """
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
    if dockerd is None:
        raise AssertionError("dockerd is not installed (scripts/bootstrap dev installs Debian's docker.io)")
    if os.geteuid() != 0:
        raise EngineUnavailable(f"dockerd needs root (namespaces, cgroups, iptables); this run is uid {os.geteuid()}")
    root = Path(tempfile.mkdtemp(prefix="cfdock-"))
    lock_fd: int | None = None
    if data_root is None:
        data_root = root / "data"
        try:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(CACHE_DIR / "engine.lock", os.O_CREAT | os.O_RDWR, 0o600)
            _lock(lock_fd, CACHE_WAIT_SECONDS)
            data_root = CACHE_DIR / "docker"
        except OSError:
            if lock_fd is not None:
                os.close(lock_fd)
            lock_fd = None
    engine = Engine(root=root, data_root=data_root, lock_fd=lock_fd, docker_cli=_client_for(dockerd))
    engine.env = {**os.environ, "DOCKER_HOST": f"unix://{engine.socket}", "DOCKER_BUILDKIT": "0",
                  "COMPOSE_DOCKER_CLI_BUILD": "0", "DOCKER_CONFIG": str(root / "client-config")}
    cmd = [dockerd, f"--data-root={data_root}", f"--exec-root={root / 'exec'}", f"--pidfile={root / 'dockerd.pid'}",
           f"--host=unix://{engine.socket}", "--bridge=none", "--iptables=true", "--ip-masq=true",
           f"--config-file={root / 'daemon.json'}"]
    (root / "daemon.json").write_text("{}")
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - the daemon writes to it until stop()
    engine.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + ENGINE_START_SECONDS
    while time.monotonic() < deadline:
        if engine.proc.poll() is not None:
            why = engine.log_tail()
            engine.stop()
            raise EngineUnavailable(f"dockerd exited with {engine.proc.returncode} at start:\n{why}")
        if engine.socket.exists() and engine.docker("version", check=False, timeout=30).returncode == 0:
            return engine
        time.sleep(0.5)
    why = engine.log_tail()
    engine.stop()
    raise EngineUnavailable(f"dockerd did not answer within {ENGINE_START_SECONDS} s:\n{why}")


def ensure_base_images(engine: Engine, workdir: Path, tags: Sequence[str] = tuple(STAND_INS)) -> None:
    """debian:bookworm-slim from debootstrap, then the stand-ins of STAND_INS (``tags``) built FROM it."""
    key = rootfs_key()
    have = engine.docker("image", "inspect", "--format", '{{index .Config.Labels "org.contentforge.rootfs"}}',
                         DEBIAN_BASE_TAG, check=False)
    if have.returncode != 0 or have.stdout.strip() != key:
        if have.returncode == 0:
            # Everything built on the old base would be rebuilt anyway: free its space first.
            engine.docker("image", "prune", "--all", "--force", timeout=600)
        tar = base_rootfs_tar(workdir)
        with open(tar, "rb") as fh:
            engine.docker("import", "--change", "CMD [\"bash\"]", "--change", "ENV LANG=C.UTF-8",
                          "--change", f"LABEL org.contentforge.rootfs={key}", "-", DEBIAN_BASE_TAG, input=fh.read())
    for tag in tags:
        engine.docker("build", "--network=host", "-t", tag, STAND_INS[tag])


def container_runs(engine: Engine) -> None:
    """Raise EngineUnavailable when the engine cannot start a container (no namespaces, cgroups...)."""
    r = engine.docker("run", "--rm", "--network=none", DEBIAN_BASE_TAG, "true", check=False, timeout=120)
    if r.returncode != 0:
        raise EngineUnavailable(f"the engine started but cannot run a container: {r.stderr.strip()[-2000:]}")
