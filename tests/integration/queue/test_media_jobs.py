"""A media job end to end: original downloaded from storage, outputs uploaded to deterministic keys,
the asset's variants and metadata written, and the CLI's enqueue and jobs commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

from contentforge.settings import Settings
from contentforge.storage import open_storage
from tests import factories as f
from tests import media_factories as media
from tests.integration.queue.conftest import World, wait_status, worker_env


def _photo_asset(conn: psycopg.Connection, world: World, settings: Settings, tmp_path: Path):
    src = media.photo(tmp_path, size=(640, 480))
    asset = f.asset(conn, world.tenant, world.user, original_filename="photo.jpg")
    key = conn.execute("SELECT storage_path FROM assets WHERE id = %s", (asset,)).fetchone()["storage_path"]
    assert settings.storage_url
    open_storage(settings.storage_url).put_file(key, src, "image/jpeg")
    return asset


def test_thumbnail_and_metadata_jobs_write_to_the_asset(in_process, world: World, conn: psycopg.Connection,
                                                        settings: Settings, tmp_path: Path) -> None:
    """Thumbnails land under {tenant}/{asset}/variants/ and in assets.variants; metadata merges into the asset."""
    from contentforge import api

    asset = _photo_asset(conn, world, settings, tmp_path)
    jobs = api.enqueue_many(conn, asset, ["metadata", "thumbnail"])
    in_process()
    thumb = wait_status(conn, jobs["thumbnail"], "completed", timeout=30)
    wait_status(conn, jobs["metadata"], "completed", timeout=30)
    row = conn.execute("SELECT variants, metadata, processing_status FROM assets WHERE id = %s", (asset,)).fetchone()
    assert row["processing_status"] == "ready"
    assert row["variants"], "thumbnail variants recorded"
    storage = open_storage(settings.storage_url or "")
    for name, v in row["variants"].items():
        assert v["key"] == f"{world.tenant}/{asset}/variants/{name}"
        assert storage.exists(v["key"])
    assert {o["name"] for o in thumb["output_data"]["outputs"]} == set(row["variants"])
    assert row["metadata"].get("width") == 640 or row["metadata"]


def test_missing_original_fails_permanently(in_process, world: World, conn: psycopg.Connection) -> None:
    """A job whose original is not in storage fails at once, saying the original is missing."""
    from contentforge import api

    job_id = api.enqueue(conn, world.asset, "thumbnail")
    in_process()
    row = wait_status(conn, job_id, "failed", timeout=15)
    assert row["attempts"] == 1
    assert row["error_message"].startswith("the asset's original file is missing from storage")


def test_cli_enqueue_prints_the_job_id_and_jobs_list_shows_it(world: World, conn: psycopg.Connection,
                                                               settings: Settings) -> None:
    """`contentforge enqueue` prints a job id that `contentforge jobs list --json` then reports."""
    env = worker_env(settings)
    out = subprocess.run([sys.executable, "-m", "cli", "enqueue", str(world.asset), "noop",
                          "--params", '{"tag": "5"}', "--priority", "7"], env=env, capture_output=True, text=True,
                         check=True)
    job_id = out.stdout.strip()
    listed = subprocess.run([sys.executable, "-m", "cli", "jobs", "list", "--tenant", str(world.tenant),
                             "--status", "pending", "--json"], env=env, capture_output=True, text=True, check=True)
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["priority"]) for r in rows] == [(job_id, 7)]
    bad = subprocess.run([sys.executable, "-m", "cli", "enqueue", str(world.asset), "transcode"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert 'job type "transcode" does not apply to image assets' in bad.stderr
