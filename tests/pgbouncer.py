"""A real PgBouncer on loopback, in front of the test PostgreSQL, for the connection-pooler tests.

Debian's ``pgbouncer`` (installed by ``scripts/bootstrap dev``) is started with a config and auth
file of its own in a temporary folder, on a free loopback port, in the pool mode asked for. Every
database of the server is reachable through it (a ``*`` fallback entry), so a test's own database
is reachable with the same name::

    with pgbouncer("transaction") as bouncer:
        pooled = bouncer.url(db_url)      # same database and user, through the pooler

PgBouncer refuses to run as root: under root it is started with ``-u nobody`` (the folder is
made readable for that user).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg.conninfo

#: Longest wait for PgBouncer to accept connections after it was started, in seconds.
STARTUP_WAIT_SECONDS = 15.0


def pgbouncer_binary() -> str | None:
    """Path of the pgbouncer executable (Debian puts it in /usr/sbin, not on every PATH)."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


@dataclass(frozen=True)
class PgBouncer:
    port: int
    pool_mode: str
    folder: Path

    def url(self, server_url: str) -> str:
        """``server_url`` (any database and user of the test server) rewritten to go through the pooler."""
        info = psycopg.conninfo.conninfo_to_dict(server_url)
        info.update(host="127.0.0.1", port=str(self.port))
        info.pop("hostaddr", None)
        return psycopg.conninfo.make_conninfo(**info)

    def log(self) -> str:
        """What PgBouncer has logged so far."""
        return (self.folder / "pgbouncer.log").read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _config(server_url: str, port: int, pool_mode: str, folder: Path, pool_size: int) -> str:
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    host = str(info.get("host") or "127.0.0.1")
    if host.startswith("/"):
        raise RuntimeError(f"the test PostgreSQL must listen on TCP for PgBouncer, not {host}")
    server = f"host={host} port={info.get('port') or 5432}"
    user = str(info.get("user") or "postgres")
    password = str(info.get("password") or "")
    (folder / "userlist.txt").write_text(f"{_quote(user)} {_quote(password)}\n")
    return "\n".join([
        "[databases]",
        f"* = {server}",  # fallback: any database name goes to the database of the same name
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {folder / 'userlist.txt'}",
        f"pool_mode = {pool_mode}",
        f"default_pool_size = {pool_size}",
        "max_client_conn = 500",
        # Defaults otherwise, as a new user would run it: a session pool resets a server connection
        # (DISCARD ALL) before the next client; a transaction pool hands it on as it is.
        "ignore_startup_parameters = extra_float_digits",
        "",
    ])


@contextlib.contextmanager
def pgbouncer(pool_mode: str, server_url: str, *, pool_size: int = 20) -> Iterator[PgBouncer]:
    """Run PgBouncer in ``pool_mode`` (transaction, session) in front of ``server_url``'s server."""
    binary = pgbouncer_binary()
    if binary is None:
        raise RuntimeError("pgbouncer is not installed: run scripts/bootstrap dev (Debian package pgbouncer)")
    folder = Path(tempfile.mkdtemp(prefix="cf-pgbouncer-"))
    port = _free_port()
    ini = folder / "pgbouncer.ini"
    ini.write_text(_config(server_url, port, pool_mode, folder, pool_size))
    args = [binary]
    if os.geteuid() == 0:  # PgBouncer will not run as root
        args += ["-u", "nobody"]
        folder.chmod(0o755)
        for f in folder.iterdir():
            f.chmod(0o644)
    args.append(str(ini))
    with (folder / "pgbouncer.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    bouncer = PgBouncer(port, pool_mode, folder)
    try:
        deadline = time.monotonic() + STARTUP_WAIT_SECONDS
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {proc.returncode}:\n{bouncer.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not listen on port {port}:\n{bouncer.log()}") from None
                time.sleep(0.05)
        yield bouncer
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
