"""A media job end to end: original downloaded from storage, outputs uploaded to deterministic keys,
the asset's variants and metadata written, and the CLI's enqueue and jobs commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

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
    """Thumbnails land under their attempt's keys and in assets.variants; metadata merges into the asset."""
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
        assert v["key"] == f"{world.tenant}/{asset}/attempts/{thumb['claim_token']}/variants/{name}"
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


def _media_asset(conn: psycopg.Connection, world: World, settings: Settings, src: Path, kind: str,
                 mime: str):
    asset = f.asset(conn, world.tenant, world.user, original_filename=src.name, file_type=kind,
                    mime_type=mime)
    key = conn.execute("SELECT storage_path FROM assets WHERE id = %s", (asset,)).fetchone()["storage_path"]
    assert settings.storage_url
    open_storage(settings.storage_url).put_file(key, src, mime)
    return asset


def test_video_without_audio_ends_ready(in_process, world: World, conn: psycopg.Connection,
                                        settings: Settings, tmp_path: Path) -> None:
    """A video with no soundtrack completes every job: video-only renditions, a transcript that
    records no speech, and the asset ends ready (it ended failed before)."""
    from contentforge import api

    src = media.video(tmp_path, "screen.mp4", seconds=2, audio=False)
    asset = _media_asset(conn, world, settings, src, "video", "video/mp4")
    jobs = api.enqueue_many(conn, asset, ["metadata", "thumbnail", "transcode", "transcript"])
    in_process()
    for job in jobs.values():
        wait_status(conn, job, "completed", timeout=120)
    transcript = conn.execute("SELECT output_data FROM asset_processing_jobs WHERE id = %s",
                              (jobs["transcript"],)).fetchone()["output_data"]
    assert transcript["has_speech"] is False and transcript["segments"] == 0
    row = conn.execute("SELECT processing_status, transcript_text, variants FROM assets WHERE id = %s",
                       (asset,)).fetchone()
    assert row["processing_status"] == "ready"
    assert row["transcript_text"] == ""
    assert {"transcript.vtt", "transcript.json"} <= set(row["variants"])
    rendition = tmp_path / "storage" / row["variants"]["video_240p.mp4"]["key"]
    probed = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "json",
                             str(rendition)], capture_output=True, text=True, check=True)
    assert [s["codec_type"] for s in json.loads(probed.stdout)["streams"]] == ["video"]


# whisper.tokenizer reads its vocabulary with open(...).read() and never closes the file.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.slow
def test_worker_uses_the_operators_speech_engine(in_process, world: World, conn: psycopg.Connection,
                                                 settings: Settings, tmp_path: Path) -> None:
    """CONTENTFORGE_TRANSCRIPT_ENGINE / _MODEL choose the engine a worker transcribes with when
    the job names none (they were ignored before: faster-whisper always ran)."""
    from contentforge import api

    pytest.importorskip("whisper")
    checkpoint = media.random_whisper_checkpoint(tmp_path)
    src = media.speech_video(tmp_path, "talk.mp4")
    asset = _media_asset(conn, world, settings, src, "video", "video/mp4")
    job = api.enqueue(conn, asset, "transcript", params={"language": "en"})
    in_process(transcript_engine="openai-whisper", transcript_model=str(checkpoint))
    row = wait_status(conn, job, "completed", timeout=120)
    assert row["output_data"]["engine"] == "openai-whisper"
    assert row["output_data"]["model"] == str(checkpoint)
