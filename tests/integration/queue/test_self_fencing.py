"""Self-fencing: a worker cut off from PostgreSQL stops its job, killing ffmpeg, before the lease could expire."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from contentforge import api
from contentforge.settings import Settings
from contentforge.storage import open_storage
from tests import factories as f
from tests import media_factories as media
from tests.integration.queue.conftest import World, job, wait_for, wait_status
from tests.processes import children_named
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


def _ffmpeg_children() -> list[int]:
    return children_named("ffmpeg")


def test_a_worker_cut_off_from_postgresql_stops_its_transcode_before_the_lease_expires(
        in_process, conn: psycopg.Connection, world: World, settings: Settings, tmp_path: Path) -> None:
    """PostgreSQL stops answering mid-transcode: the job is stopped and ffmpeg gone while the row's lease still runs.

    The proxy keeps the connections open and acknowledged, so no renewal fails: each one just never
    returns (the heartbeat thread hangs in it). Before self-fencing the job ran on until it ended,
    and a renewal only counted as failed once it raised.
    """
    clip = media.video(tmp_path, size=(640, 360), seconds=60, rate=25)
    asset = f.asset(conn, world.tenant, world.user, original_filename="clip.mp4", file_type="video",
                    mime_type="video/mp4")
    key = conn.execute("SELECT storage_path FROM assets WHERE id = %s", (asset,)).fetchone()["storage_path"]
    open_storage(settings.storage_url or "").put_file(key, clip, "video/mp4")
    job_id = api.enqueue(conn, asset, "transcode", params={"renditions": [360], "preset": "medium"})

    target = conninfo_to_dict(settings.database_url or "")
    proxy = TcpProxy(str(target.get("host", "127.0.0.1")), int(target.get("port", 5432)))
    try:
        proxied = make_conninfo(settings.database_url or "", host="127.0.0.1", port=str(proxy.port))
        worker = in_process(relay=False, database_url=proxied, lease_seconds=6)
        worker.actor.send()
        wait_status(conn, job_id, "running", timeout=30)
        wait_for(_ffmpeg_children, 60, "the transcode's ffmpeg to start")
        [active] = worker.runtime.leases.active()

        proxy.pause()
        wait_for(lambda: active.stopped.is_set() and not _ffmpeg_children(), 30, "the job to stop and ffmpeg to go")
        gone_at = dt.datetime.now(dt.UTC)
        row = job(conn, job_id)
        assert row["status"] == "running", "the worker recorded nothing while cut off"
        assert gone_at < row["lease_expires_at"], "ffmpeg was gone before the lease could expire"
        assert active.reason.startswith("self-fenced"), active.reason
    finally:
        proxy.resume()
    wait_for(lambda: conn.execute("SELECT count(*) AS n FROM app_private.reclaim_expired_jobs()").fetchone()["n"],
             30, "the expired lease to be reclaimed")
    assert job(conn, job_id)["status"] == "pending", "the job goes back to the queue, not lost"
    proxy.close()
