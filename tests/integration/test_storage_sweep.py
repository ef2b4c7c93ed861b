"""The storage sweep removes output files no row points at, after the grace period, on both backends."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import psycopg
import pytest

from contentforge.output_keys import is_sweepable, output_key
from contentforge.storage import Storage
from contentforge.storage_sweep import sweep_outputs
from tests import factories as f

HOUR = dt.timedelta(hours=1)


def test_sweepable_keys_are_output_keys_only() -> None:
    """Attempt keys and legacy variant keys are judged; originals and foreign keys never are."""
    t, a, tok = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert is_sweepable(output_key(t, a, tok, "thumb_320.webp"))
    assert is_sweepable(output_key(t, a, tok, "hls/720p/seg_001.ts"))
    assert is_sweepable(f"{t}/{a}/variants/thumb_320.webp")
    for key in (f"{t}/{a}/original", f"{t}/originals/talk.mp4", f"{t}/{a}/attempts/{tok}/original",
                f"{t}/{a}/attempts/not-a-token/variants/x", "other/tool/file", f"x{t}/{a}/variants/y"):
        assert not is_sweepable(key), key


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"bytes of an output")
    return path


def test_sweep_removes_unused_outputs_after_the_grace(conn: psycopg.Connection, storage: Storage, blob: Path) -> None:
    """Losing attempts, replaced results and deleted assets' files go; the current, running and foreign files stay."""
    conn.execute("UPDATE app_private.job_types SET enabled = true WHERE test_only")
    user = f.user(conn)
    tenant = f.tenant(conn)
    f.member(conn, tenant, user, "author")
    asset = f.asset(conn, tenant, user)
    gone = f.asset(conn, tenant, user)
    original = conn.execute("SELECT storage_path FROM assets WHERE id = %s", (asset,)).fetchone()["storage_path"]

    current = output_key(tenant, asset, uuid.uuid4(), "noop.bin")
    conn.execute("UPDATE assets SET variants = %s WHERE id = %s",
                 (json.dumps({"noop.bin": {"key": current}}), asset))
    conn.execute("SELECT enqueue_asset_job(asset_id => %s, job_type => 'noop')", (asset,))
    conn.execute("SELECT * FROM app_private.claim_job('w', 30)")
    running_token = conn.execute("SELECT claim_token FROM asset_processing_jobs WHERE asset_id = %s",
                                 (asset,)).fetchone()["claim_token"]
    running = output_key(tenant, asset, running_token, "noop.bin")
    garbage = {
        output_key(tenant, asset, uuid.uuid4(), "noop.bin"),          # an attempt that lost
        output_key(tenant, asset, uuid.uuid4(), "hls/720p/seg_1.ts"),  # a replaced result
        f"{tenant}/{asset}/variants/noop.bin",                         # a legacy key nobody names
        output_key(tenant, gone, uuid.uuid4(), "noop.bin"),            # an asset deleted since
        f"{tenant}/{gone}/variants/thumb_320.webp",
    }
    kept = {current, running, original, f"{tenant}/{gone}/original", "other/tool/file.bin"}
    for key in garbage | kept:
        storage.put_file(key, blob)
    conn.execute("DELETE FROM assets WHERE id = %s", (gone,))

    young = sweep_outputs(conn, storage, HOUR)
    assert (young.removed, young.too_young, young.in_use) == (0, len(garbage), 2)
    assert set(storage.list()) == garbage | kept

    later = dt.datetime.now(dt.UTC) + 2 * HOUR
    swept = sweep_outputs(conn, storage, HOUR, now=later)
    assert (swept.removed, swept.in_use, swept.candidates) == (len(garbage), 2, len(garbage) + 2)
    assert set(storage.list()) == kept
    assert sweep_outputs(conn, storage, HOUR, now=later).removed == 0, "a second run finds nothing more"


def test_a_finished_attempts_files_go_once_nothing_points_at_them(conn: psycopg.Connection, storage: Storage,
                                                                  blob: Path) -> None:
    """A file of a job that is no longer running, and that no variant names, is garbage (the attempt lost)."""
    user = f.user(conn)
    tenant = f.tenant(conn)
    asset = f.asset(conn, tenant, user)
    conn.execute("UPDATE app_private.job_types SET enabled = true WHERE test_only")
    conn.execute("SELECT enqueue_asset_job(asset_id => %s, job_type => 'noop')", (asset,))
    conn.execute("SELECT * FROM app_private.claim_job('w', 30)")
    token = conn.execute("SELECT claim_token FROM asset_processing_jobs").fetchone()["claim_token"]
    key = output_key(tenant, asset, token, "noop.bin")
    storage.put_file(key, blob)
    later = dt.datetime.now(dt.UTC) + 2 * HOUR
    assert sweep_outputs(conn, storage, HOUR, now=later).in_use == 1
    conn.execute("SELECT app_private.complete_job(id, 'w', '{}') FROM asset_processing_jobs")
    assert sweep_outputs(conn, storage, HOUR, now=later).removed == 1
    assert storage.list() == []


def test_listing_reports_write_times(storage: Storage, blob: Path) -> None:
    """list_objects gives each object's write time by the store's clock, in UTC."""
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    storage.put_file("t/a/variants/x", blob)
    [obj] = storage.list_objects("t")
    assert obj.key == "t/a/variants/x"
    assert before < obj.modified < dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
