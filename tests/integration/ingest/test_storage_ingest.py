"""Processing that starts in Supabase Storage: the storage.objects trigger on the stand-in's storage
schema, and the worker reading the original from moto's S3 server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from contentforge.settings import Settings
from tests import factories as f
from tests import media_factories as media
from tests.conftest import SUPABASE_DIR, url_for

PNG_META = {"eTag": "\"abc\"", "size": 0, "mimetype": "image/png", "cacheControl": "max-age=3600",
            "contentLength": 0, "httpStatusCode": 200}


@pytest.fixture
def storage_db(supabase_db: str) -> str:
    """A Supabase stand-in with a storage schema, migrated as the project's owner role; superuser URL."""
    from schema import migrate

    with psycopg.connect(url_for(supabase_db), autocommit=True) as conn:
        conn.execute((SUPABASE_DIR / "storage.sql").read_text())
    migrate(url_for(supabase_db, user="supabase_admin_standin"))
    return url_for(supabase_db)


@pytest.fixture
def db(storage_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(storage_db, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def world(db: psycopg.Connection) -> dict[str, Any]:
    """A tenant with an author; buckets 'uploads' (ruled: tenant from the path) and 'avatars' (no rule)."""
    author = f.user(db)
    tenant = f.tenant(db)
    f.member(db, tenant, author, "author")
    db.execute("INSERT INTO storage.buckets (id, name) VALUES ('uploads', 'uploads'), ('avatars', 'avatars')")
    db.execute("""INSERT INTO app_private.storage_ingest_rules (bucket_id, path_prefix, job_types, params, priority)
                  VALUES ('uploads', '', '{metadata,thumbnail,transcode}', '{"thumbnail": {"widths": [160]}}', 7)""")
    return {"tenant": tenant, "author": author}


@contextlib.contextmanager
def storage_service(storage_db: str, user: uuid.UUID | None) -> Iterator[psycopg.Connection]:
    """A connection as Supabase's storage service writes rows: its own role, the uploader's JWT set."""
    with psycopg.connect(url_for(_dbname(storage_db), user="supabase_storage_admin"), autocommit=True,
                         row_factory=dict_row) as conn:
        if user:
            conn.execute("SELECT set_config('request.jwt.claims', %s, false)", (json.dumps({"sub": str(user)}),))
        yield conn


def _dbname(url: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(url)["dbname"]


def upload(conn: psycopg.Connection, bucket: str, name: str, owner: uuid.UUID | None, *, version: str = "v1") -> uuid.UUID:
    """The service's first write: the row, without metadata yet (the bytes are still on their way)."""
    return conn.execute("INSERT INTO storage.objects (bucket_id, name, owner, owner_id, version) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                        (bucket, name, owner, str(owner) if owner else None, version)).fetchone()["id"]


def finish_upload(conn: psycopg.Connection, object_id: uuid.UUID, metadata: dict[str, Any] | None = None,
                  version: str | None = None) -> None:
    """The service's second write: the metadata (and for a new upload to the same name, the version)."""
    conn.execute("UPDATE storage.objects SET metadata = %s, version = coalesce(%s, version), updated_at = now() WHERE id = %s",
                 (json.dumps(metadata or PNG_META), version, object_id))


def jobs(db: psycopg.Connection) -> list[dict[str, Any]]:
    return db.execute("SELECT job_type, priority, input_params, asset_id FROM asset_processing_jobs ORDER BY created_at, job_type").fetchall()


def test_object_version_written_twice_makes_one_asset_and_one_set_of_jobs(storage_db: str, db: psycopg.Connection,
                                                                          world: dict[str, Any]) -> None:
    """Row then metadata, metadata again, and the same version re-inserted: one asset, one set of jobs."""
    name = f"{world['tenant']}/photos/cat.png"
    with storage_service(storage_db, world["author"]) as svc:
        oid = upload(svc, "uploads", name, world["author"])
        assert db.execute("SELECT count(*) AS n FROM assets").fetchone()["n"] == 0  # no metadata yet: waits
        finish_upload(svc, oid)
        finish_upload(svc, oid, {**PNG_META, "lastModified": "later"})
        svc.execute("DELETE FROM storage.objects WHERE id = %s", (oid,))
        again = upload(svc, "uploads", name, world["author"])
        finish_upload(svc, again)
    [asset] = db.execute("SELECT * FROM assets").fetchall()
    assert (asset["tenant_id"], asset["creator_id"], asset["storage_bucket"], asset["storage_path"]) == (
        world["tenant"], world["author"], "uploads", name)
    assert (asset["file_type"], asset["mime_type"], asset["original_filename"]) == ("image", "image/png", "cat.png")
    got = jobs(db)
    # transcode does not apply to images: the rule's other two types, at the rule's priority and params.
    assert [(j["job_type"], j["priority"]) for j in got] == [("metadata", 7), ("thumbnail", 7)]
    assert got[1]["input_params"] == {"widths": [160], "source_version": "v1"}
    # Room to wait for bytes that are not readable yet (about half an hour with the default backoff).
    assert {r["max_attempts"] for r in db.execute("SELECT max_attempts FROM asset_processing_jobs")} == {10}


def test_new_version_makes_new_jobs(storage_db: str, db: psycopg.Connection, world: dict[str, Any]) -> None:
    """A new upload to the same name (new version) gets new jobs on the same asset, while the old ones wait."""
    with storage_service(storage_db, world["author"]) as svc:
        oid = upload(svc, "uploads", f"{world['tenant']}/a.png", world["author"])
        finish_upload(svc, oid)
        finish_upload(svc, oid, version="v2")
    got = jobs(db)
    assert len(got) == 4 and len({j["asset_id"] for j in got}) == 1
    assert sorted((j["job_type"], j["input_params"]["source_version"]) for j in got) == [
        ("metadata", "v1"), ("metadata", "v2"), ("thumbnail", "v1"), ("thumbnail", "v2")]


def test_bucket_without_rule_does_nothing(storage_db: str, db: psycopg.Connection, world: dict[str, Any]) -> None:
    """An upload into a bucket no rule names makes no asset, no job and no ingest record."""
    with storage_service(storage_db, world["author"]) as svc:
        finish_upload(svc, upload(svc, "avatars", f"{world['tenant']}/me.png", world["author"]))
    assert db.execute("SELECT (SELECT count(*) FROM assets) + (SELECT count(*) FROM asset_processing_jobs) "
                      "+ (SELECT count(*) FROM app_private.storage_object_ingests) AS n").fetchone()["n"] == 0


def test_path_of_a_tenant_the_uploader_is_not_an_author_of_is_skipped(storage_db: str, db: psycopg.Connection,
                                                                     world: dict[str, Any]) -> None:
    """An outsider writing under a tenant's folder makes nothing for that tenant; the reason is kept."""
    outsider = f.user(db)
    with storage_service(storage_db, outsider) as svc:
        finish_upload(svc, upload(svc, "uploads", f"{world['tenant']}/sneaky.png", outsider))
        finish_upload(svc, upload(svc, "uploads", "not-a-tenant/x.png", outsider))
    assert db.execute("SELECT count(*) AS n FROM assets").fetchone()["n"] == 0
    reasons = [r["skipped_reason"] for r in db.execute("SELECT skipped_reason FROM app_private.storage_object_ingests")]
    assert len(reasons) == 2 and all("uploader is an author" in r for r in reasons)


def test_a_failing_ingest_never_blocks_the_upload(storage_db: str, db: psycopg.Connection, world: dict[str, Any]) -> None:
    """A rule with a fixed tenant and an unknown owner still ingests (creator unknown), and the upload row stays."""
    db.execute("""INSERT INTO app_private.storage_ingest_rules (bucket_id, path_prefix, tenant_id, job_types)
                  VALUES ('uploads', 'shared/', %s, '{metadata}')""", (world["tenant"],))
    with storage_service(storage_db, None) as svc:
        finish_upload(svc, upload(svc, "uploads", "shared/doc.pdf", None), {**PNG_META, "mimetype": "application/pdf"})
    [asset] = db.execute("SELECT tenant_id, creator_id, file_type FROM assets").fetchall()
    assert asset == {"tenant_id": world["tenant"], "creator_id": None, "file_type": "document"}
    assert [j["job_type"] for j in jobs(db)] == ["metadata"]


# --- the worker reads the original through S3 -------------------------------------------------
@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server on 127.0.0.1, holding the bytes Supabase Storage would."""
    from moto.server import ThreadedMotoServer

    from tests.integration.webhooks.receiver import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)


def test_worker_reads_from_s3_and_retries_until_readable(storage_db: str, db: psycopg.Connection, world: dict[str, Any],
                                                         s3_endpoint: str, aws_env: None, tmp_path: Path) -> None:
    """The job runs before the bytes exist: a retry, not a failure; once uploaded, it completes from S3."""
    import boto3

    from workers.actors import run_claimed
    from workers.runtime import Runtime, worker_id

    db.execute("UPDATE app_private.storage_ingest_rules SET job_types = '{metadata}'")
    name = f"{world['tenant']}/in/photo.jpg"
    with storage_service(storage_db, world["author"]) as svc:
        finish_upload(svc, upload(svc, "uploads", name, world["author"]), {**PNG_META, "mimetype": "image/jpeg"})
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="uploads")

    settings = Settings(DATABASE_URL=storage_db, STORAGE_URL=(tmp_path / "out").as_uri(), retry_base_seconds=0,
                        retry_max_seconds=0, supabase_s3_endpoint_url=s3_endpoint, log_format="json")
    rt = Runtime(settings, storage_db)
    try:
        me = worker_id()
        job = rt.store.claim(me)
        assert job is not None and job.job_type == "metadata"
        assert run_claimed(rt, job, me) == "retry"
        row = db.execute("SELECT status, error_message FROM asset_processing_jobs").fetchone()
        assert row["status"] == "pending" and "is not readable yet" in row["error_message"]

        photo = media.photo(tmp_path)
        s3.upload_file(str(photo), "uploads", name)
        job = rt.store.claim(me)
        assert run_claimed(rt, job, me) == "completed"
    finally:
        rt.close()
    asset = db.execute("SELECT processing_status, metadata FROM assets").fetchone()
    assert asset["processing_status"] == "ready"
    assert asset["metadata"]["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()


def test_rules_refuse_test_only_job_types(db: psycopg.Connection, world: dict[str, Any]) -> None:
    """A rule naming noop (test-only) is refused when written, with SQLSTATE 22023."""
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="for tests only"):
        db.execute("""INSERT INTO app_private.storage_ingest_rules (bucket_id, path_prefix, job_types)
                      VALUES ('avatars', 'x/', '{noop}')""")


def test_rule_without_priority_takes_each_job_types_priority(storage_db: str, db: psycopg.Connection,
                                                              world: dict[str, Any]) -> None:
    """A rule with no priority gives each job its type's fleet priority (0014's rule for operators)."""
    db.execute("UPDATE app_private.storage_ingest_rules SET priority = NULL")
    db.execute("UPDATE app_private.job_types SET priority = 9 WHERE job_type = 'thumbnail'")
    with storage_service(storage_db, world["author"]) as svc:
        finish_upload(svc, upload(svc, "uploads", f"{world['tenant']}/a.png", world["author"]))
    assert {j["job_type"]: j["priority"] for j in jobs(db)} == {"metadata": 5, "thumbnail": 9}


def test_file_no_rule_type_applies_to_is_ready(storage_db: str, db: psycopg.Connection, world: dict[str, Any]) -> None:
    """A PDF under a rule of image/video job types becomes a ready asset with no jobs, not a stuck upload."""
    db.execute("UPDATE app_private.storage_ingest_rules SET job_types = '{thumbnail,transcode}'")
    with storage_service(storage_db, world["author"]) as svc:
        oid = upload(svc, "uploads", f"{world['tenant']}/doc.pdf", world["author"])
        finish_upload(svc, oid, {**PNG_META, "mimetype": "application/pdf"})
    [asset] = db.execute("SELECT processing_status FROM assets").fetchall()
    assert asset["processing_status"] == "ready" and jobs(db) == []


def test_api_caller_cannot_claim_an_object_name_of_a_ruled_bucket(storage_db: str, db: psycopg.Connection,
                                                                  world: dict[str, Any]) -> None:
    """An author cannot create an asset naming an object of a ruled bucket (it would block that upload)."""
    from tests.integration.schema.api import api, attempt

    with api(storage_db, world["author"]) as conn:
        outcome = attempt(conn, "INSERT INTO assets (tenant_id, creator_id, original_filename, file_type, mime_type, "
                                "file_size, storage_bucket, storage_path) VALUES (%s, %s, 'x.png', 'image', "
                                "'image/png', 1, 'uploads', %s)",
                          (world["tenant"], world["author"], f"{world['tenant']}/x.png"))
    assert outcome == "42"  # insufficient_privilege (42501)
    with storage_service(storage_db, world["author"]) as svc:
        finish_upload(svc, upload(svc, "uploads", f"{world['tenant']}/x.png", world["author"]))
    assert db.execute("SELECT count(*) AS n FROM assets").fetchone()["n"] == 1
