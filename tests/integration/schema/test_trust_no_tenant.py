"""Issue 12 through the API the way PostgREST calls it: tenants hold no fleet-wide knob, job
parameters follow their job type's schema, test-only job types are off, "does not exist" is an
HTTP 404 that tells nothing about other tenants, search takes named arguments, search_language is
text, and unlisted content is reachable by its link but not listable."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from contentforge.api import set_test_job_types
from tests import factories as f
from tests.integration.schema.api import api, attempt
from tests.integration.schema.postgrest_status import http_status


@dataclass
class Two:
    url: str
    a: uuid.UUID
    b: uuid.UUID
    author: uuid.UUID  # author of A
    member: uuid.UUID  # plain member of A
    b_owner: uuid.UUID
    image_a: uuid.UUID
    video_a: uuid.UUID
    image_b: uuid.UUID


@pytest.fixture
def two(db_url: str, supabase_roles: None) -> Two:
    """Tenants A and B, an author and a member of A, B's owner, and assets in each."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        a, b = f.tenant(c), f.tenant(c)
        author, member, b_owner = f.user(c), f.user(c), f.user(c)
        f.member(c, a, author, "author")
        f.member(c, a, member, "member")
        f.member(c, b, b_owner, "owner")
        return Two(db_url, a, b, author, member, b_owner,
                   f.asset(c, a, author), f.asset(c, a, author, file_type="video", original_filename="v.mp4"),
                   f.asset(c, b, b_owner))


def refusal(conn: psycopg.Connection[Any], query: str, params: Any = None) -> tuple[str, str]:
    """Run ``query`` expecting an error; return its SQLSTATE and message."""
    with pytest.raises(psycopg.Error) as info:
        conn.execute(query, params)
    return info.value.sqlstate or "", info.value.diag.message_primary or ""


def enqueue_sql(job_type: str = "noop", priority: int | None = None) -> str:
    arg = "" if priority is None else f", priority => {priority}"
    return f"SELECT enqueue_asset_job(asset_id => %s, job_type => '{job_type}', params => %s{arg}) AS id"


def claim(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as c:
        return c.execute("SELECT * FROM app_private.claim_job('w', 30)").fetchone()


# --- 1. priority ----------------------------------------------------------------------------------
def test_api_priority_does_not_run_a_tenant_ahead_of_another(two: Two) -> None:
    """An author enqueueing at priority 10 through the API is claimed after another tenant's older job."""
    with psycopg.connect(two.url, autocommit=True) as c:  # tenant B's upload service (an operator login)
        b_job = c.execute("SELECT enqueue_asset_job(%s, 'metadata')", (two.image_b,)).fetchone()[0]
    with api(two.url, two.author) as c:
        a_job = c.execute(enqueue_sql("metadata", 10), (two.image_a, Jsonb({}))).fetchone()["id"]
    assert claim(two.url)["id"] == b_job
    a_row = claim(two.url)
    assert a_row["id"] == a_job
    assert (a_row["priority"], a_row["tenant_priority"]) == (5, 10)


def test_api_priority_orders_the_tenants_own_jobs(two: Two) -> None:
    """Within one tenant, the caller's priority decides which of its jobs runs first."""
    with api(two.url, two.author) as c:
        c.execute(enqueue_sql("metadata", 2), (two.image_a, Jsonb({})))
        urgent = c.execute(enqueue_sql("thumbnail", 9), (two.image_a, Jsonb({}))).fetchone()["id"]
    assert claim(two.url)["id"] == urgent


def test_operators_set_fleet_priority_per_job_type_and_per_job(two: Two) -> None:
    """The job type's priority (operator) puts thumbnails ahead; an operator's own enqueue sets it per job."""
    with psycopg.connect(two.url, autocommit=True) as c:
        c.execute("UPDATE app_private.job_types SET priority = 8 WHERE job_type = 'thumbnail'")
    with api(two.url, two.author) as c:
        c.execute(enqueue_sql("metadata", 10), (two.image_a, Jsonb({})))
        thumb = c.execute(enqueue_sql("thumbnail", 1), (two.image_a, Jsonb({}))).fetchone()["id"]
    assert claim(two.url)["id"] == thumb
    with psycopg.connect(two.url, autocommit=True) as c:
        job = c.execute("SELECT enqueue_asset_job(%s, 'optimize', priority => 9)", (two.image_b,)).fetchone()[0]
        assert c.execute("SELECT priority FROM asset_processing_jobs WHERE id = %s", (job,)).fetchone()[0] == 9


# --- 2. params -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("job_type", "params", "words"), [
    ("transcode", {"renditions": [144, 240, 360, 480, 720, 1080, 1440, 2160, 1000]},
     ["renditions", "MAX_RENDITIONS_PER_JOB", "4"]),
    ("transcode", {"renditions": [4320]}, ["renditions", "2160", "MAX_RENDITION_HEIGHT"]),
    ("thumbnail", {"sizes": [320]}, ["sizes", "animation, formats, source_version, storyboard, widths"]),
    ("thumbnail", {"widths": [100000]}, ["widths", "4096", "MAX_VARIANT_WIDTH"]),
    ("thumbnail", {"widths": [320.0]}, ["widths", "integer"]),
    ("transcript", {"engine": "openai-whisper"}, ["engine", "allowed: language"]),
    ("transcript", {"model": "large-v3"}, ["model", "allowed: language"]),
    ("transcript", {"language": "english"}, ["language", "MAX_LANGUAGE_CODE_LENGTH"]),
    ("transcode", {"hls": "yes"}, ["hls", "true or false"]),
])
def test_params_outside_the_schema_are_refused_at_enqueue(two: Two, job_type: str, params: dict[str, Any],
                                                          words: list[str]) -> None:
    """Through the API, a parameter outside its job type's schema is SQLSTATE 22023 (HTTP 400) naming
    the field and the limit."""
    with api(two.url, two.author) as c:
        state, message = refusal(c, enqueue_sql(job_type), (two.video_a, Jsonb(params)))
    assert state == "22023"
    assert http_status(state, authenticated=True) == 400
    for word in words:
        assert word in message, message


def test_params_inside_the_schema_are_accepted(two: Two) -> None:
    """Parameters within the schema pass."""
    with api(two.url, two.author) as c:
        c.execute(enqueue_sql("transcode"), (two.video_a, Jsonb({"renditions": [720, 360], "hls": True,
                                                                 "preset": "fast", "loudness_lufs": -23})))
        c.execute(enqueue_sql("transcript"), (two.video_a, Jsonb({"language": "en"})))


# --- 3. test-only job types ----------------------------------------------------------------------
def test_test_only_job_types_are_refused_until_an_operator_turns_them_on(two: Two) -> None:
    """noop is refused (22023) by SQL for authors and operators alike while the switch is off."""
    set_test_job_types(two.url, False)
    with api(two.url, two.author) as c:
        state, message = refusal(c, enqueue_sql(), (two.image_a, Jsonb({"sleep_seconds": 60})))
    assert (state, "for tests only" in message) == ("22023", True)
    with psycopg.connect(two.url, autocommit=True) as c:
        state, _ = refusal(c, "SELECT enqueue_asset_job(%s, 'noop')", (two.image_a,))
    assert state == "22023"
    set_test_job_types(two.url, True)
    with api(two.url, two.author) as c:
        assert c.execute(enqueue_sql(), (two.image_a, Jsonb({}))).fetchone()["id"]


# --- 9 and 10. not found, and nothing about other tenants -----------------------------------------
def test_missing_and_foreign_assets_get_the_same_404(two: Two) -> None:
    """Enqueueing for a missing asset and for another tenant's asset both answer PT404 (HTTP 404),
    and the message names neither tenant."""
    with api(two.url, two.author) as c:
        missing = refusal(c, enqueue_sql("metadata"), (uuid.uuid4(), Jsonb({})))
        foreign = refusal(c, enqueue_sql("metadata"), (two.image_b, Jsonb({})))
    assert missing[0] == foreign[0] == "PT404"
    assert http_status(missing[0], authenticated=True) == 404
    assert foreign[1] == f"asset {two.image_b} does not exist"
    assert str(two.b) not in foreign[1] and str(two.a) not in foreign[1]


def test_missing_and_foreign_jobs_get_the_same_404(two: Two) -> None:
    """cancel and retry answer PT404 for a missing job and for another tenant's job alike."""
    with psycopg.connect(two.url, autocommit=True) as c:
        b_job = c.execute("SELECT enqueue_asset_job(%s, 'metadata')", (two.image_b,)).fetchone()[0]
    with api(two.url, two.author) as c:
        for fn in ("cancel_asset_job", "retry_asset_job"):
            missing = refusal(c, f"SELECT {fn}(%s)", (uuid.uuid4(),))
            foreign = refusal(c, f"SELECT {fn}(%s)", (b_job,))
            assert missing[0] == foreign[0] == "PT404"
            assert str(two.b) not in foreign[1]


def test_member_without_author_rights_gets_403_without_a_tenant_id(two: Two) -> None:
    """A member who can see the asset but not process it gets 42501 (HTTP 403), no tenant id."""
    with api(two.url, two.member) as c:
        state, message = refusal(c, enqueue_sql("metadata"), (two.image_a, Jsonb({})))
    assert (state, http_status(state, authenticated=True)) == ("42501", 403)
    assert str(two.a) not in message


def test_track_engagement_on_unreadable_content_is_404_like_missing(two: Two) -> None:
    """track_engagement answers PT404 for missing content and for a private item of another tenant."""
    with psycopg.connect(two.url, autocommit=True) as c:
        hidden = f.content(c, two.b, two.b_owner, status="draft", visibility="private")
    with api(two.url) as c:
        missing = refusal(c, "SELECT track_engagement(%s, 'view', p_session_id => 's')", (uuid.uuid4(),))
        foreign = refusal(c, "SELECT track_engagement(%s, 'view', p_session_id => 's')", (hidden,))
    assert missing[0] == foreign[0] == "PT404"
    assert http_status(missing[0], authenticated=False) == 404


# --- 11. search_content by name, without a tenant ---------------------------------------------------
def test_search_content_takes_named_arguments_without_a_tenant(two: Two) -> None:
    """A named-argument call with only p_query searches the JWT's tenant, as PostgREST's RPC does."""
    with psycopg.connect(two.url, autocommit=True) as c:
        hit = f.content(c, two.a, two.author, title="Kayak trips", published_at="2024-01-01")
    claims = {"sub": str(two.member), "role": "authenticated", "app_metadata": {"tenant_id": str(two.a)}}
    with api(two.url, two.member) as c:
        c.execute("SELECT set_config('request.jwt.claims', %s, false)", (json.dumps(claims),))
        rows = c.execute("SELECT content_id FROM search_content(p_query => 'kayak')").fetchall()
        assert [r["content_id"] for r in rows] == [hit]
        rows = c.execute("SELECT content_id FROM search_content(p_query => 'kayak', p_language => 'simple')").fetchall()
        assert [r["content_id"] for r in rows] == [hit]
        state, _ = refusal(c, "SELECT * FROM search_content(p_query => 'kayak', p_language => 'klingon')")
        assert http_status(state, authenticated=True) == 400


# --- 12. search_language as text -----------------------------------------------------------------
#: The reg* types pg_upgrade cannot carry in user columns (Supabase lint 0018, unsupported_reg_types;
#: pg_upgrade's own check_for_reg_data_type_usage: regclass, regrole and regtype are fine).
UNSUPPORTED_REG_TYPES = ["regcollation", "regconfig", "regdictionary", "regnamespace", "regoper",
                         "regoperator", "regproc", "regprocedure"]


def test_no_column_uses_a_reg_type_that_blocks_pg_upgrade(conn: psycopg.Connection) -> None:
    """No table column of our schemas has a reg* type that pg_upgrade refuses."""
    rows = conn.execute(
        """SELECT c.relname || '.' || a.attname AS col FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN ('public', 'app', 'app_private') AND c.relkind IN ('r', 'p', 'm')
             AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid::regtype::text = ANY (%s)""",
        (UNSUPPORTED_REG_TYPES,)).fetchall()
    assert rows == []


def test_search_language_is_validated_and_used(two: Two) -> None:
    """An unknown search_language is refused (23514, HTTP 400); a known one stems like PostgreSQL's own."""
    with api(two.url, two.author) as c:
        state, _ = refusal(c, "INSERT INTO content (tenant_id, creator_id, content_type, title, slug, search_language) "
                              "VALUES (%s, %s, 'article', 'x', 'x', 'klingon')", (two.a, two.author))
        assert (state, http_status(state, authenticated=True)) == ("23514", 400)
        row = c.execute("INSERT INTO content (tenant_id, creator_id, content_type, title, slug, search_language) "
                        "VALUES (%s, %s, 'article', 'Die Häuser', 'haus', 'german') "
                        "RETURNING search_vector = setweight(to_tsvector('german', 'Die Häuser'), 'A') AS same",
                        (two.a, two.author)).fetchone()
    assert row["same"]


# --- 13. unlisted: by link, not listed ------------------------------------------------------------
def test_unlisted_content_is_not_listable_but_fetchable_by_slug(two: Two) -> None:
    """anon and outsiders cannot list unlisted items; get_content_by_slug returns one by its link."""
    with psycopg.connect(two.url, autocommit=True) as c:
        item = f.content(c, two.a, two.author, visibility="unlisted", published_at="2024-01-01", slug="secret-plan")
        outsider = f.user(c)
    with api(two.url) as c:
        assert c.execute("SELECT id FROM content WHERE visibility = 'unlisted'").fetchall() == []
        rows = c.execute("SELECT id FROM get_content_by_slug(%s, 'secret-plan')", (two.a,)).fetchall()
        assert [r["id"] for r in rows] == [item]
    with api(two.url, outsider) as c:
        assert c.execute("SELECT id FROM content WHERE visibility = 'unlisted'").fetchall() == []
    with api(two.url, two.member) as c:
        assert [r["id"] for r in c.execute("SELECT id FROM content WHERE visibility = 'unlisted'")] == [item]


def test_unlisted_collections_are_not_listable_but_fetchable_by_slug(two: Two) -> None:
    """anon cannot list unlisted collections; get_collection_by_slug returns one by its link."""
    with psycopg.connect(two.url, autocommit=True, row_factory=dict_row) as c:
        coll = f.insert(c, "content_collections", tenant_id=two.a, creator_id=two.author, name="C", slug="hidden-course",
                        collection_type="course", status="published", visibility="unlisted",
                        published_at="2024-01-01")
    with api(two.url) as c:
        assert c.execute("SELECT id FROM content_collections WHERE visibility = 'unlisted'").fetchall() == []
        rows = c.execute("SELECT id FROM get_collection_by_slug(%s, 'hidden-course')", (two.a,)).fetchall()
        assert [r["id"] for r in rows] == [coll]


def test_an_asset_cannot_name_another_tenants_key(two: Two) -> None:
    """An author's asset whose original key lies under another tenant's prefix is refused (a worker would
    download that tenant's file into the author's tenant, and cleanup would delete it); its own prefix works."""
    foreign = f"{two.b}/{uuid.uuid4()}/original"
    with api(two.url, two.author) as conn:
        refused = attempt(conn, "INSERT INTO assets (tenant_id, creator_id, original_filename, file_type, mime_type, "
                                "file_size, storage_path) VALUES (%s, %s, 'x.jpg', 'image', 'image/jpeg', 1, %s)",
                          (two.a, two.author, foreign))
        own = attempt(conn, "INSERT INTO assets (tenant_id, creator_id, original_filename, file_type, mime_type, "
                            "file_size, storage_path) VALUES (%s, %s, 'x.jpg', 'image', 'image/jpeg', 1, %s)",
                      (two.a, two.author, f"{two.a}/{uuid.uuid4()}/original"))
    assert (refused, own) == ("23", 1)
