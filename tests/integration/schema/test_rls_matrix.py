"""Row-level security, acting as PostgREST does: roles anon, member, author, editor, admin, owner of
tenant A (and an outsider), against rows of tenant A and tenant B, for SELECT/INSERT/UPDATE/DELETE."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
import pytest

from tests import factories as f
from tests.integration.schema.api import api, attempt

ROLES = ["member", "author", "editor", "admin", "owner"]
ACTORS = ["anon", "outsider", *ROLES]


@dataclass
class World:
    url: str
    a: uuid.UUID
    b: uuid.UUID
    users: dict[str, uuid.UUID]
    b_owner: uuid.UUID
    rows: dict[str, dict[str, uuid.UUID]]  # table -> {"a": id, "b": id}


@pytest.fixture
def world(db_url: str, supabase_roles: None) -> World:
    """Two tenants; one user per role in A; one row per table in A (written by A's author) and in B,
    where B's content is a private draft so nothing of B is public."""
    with psycopg.connect(db_url, autocommit=True, row_factory=psycopg.rows.dict_row) as c:
        a, b = f.tenant(c), f.tenant(c)
        users = {r: f.user(c) for r in ROLES}
        users["outsider"] = f.user(c)
        for r in ROLES:
            f.member(c, a, users[r], r)
        b_owner = f.user(c)
        f.member(c, b, b_owner, "owner")
        rows: dict[str, dict[str, uuid.UUID]] = {}
        for key, tenant, creator, status, vis in (("a", a, users["author"], "draft", "public"),
                                                 ("b", b, b_owner, "draft", "private")):
            content = f.content(c, tenant, creator, status=status, visibility=vis)
            asset = f.asset(c, tenant, creator)
            coll = f.insert(c, "content_collections", tenant_id=tenant, creator_id=creator, name="C",
                            slug=f"c-{key}", collection_type="course")
            cat = f.insert(c, "content_categories", tenant_id=tenant, name="Cat", slug=f"cat-{key}")
            tag = f.insert(c, "content_tags", tenant_id=tenant, name="Tag", slug=f"tag-{key}")
            comment = f.insert(c, "content_comments", tenant_id=tenant, content_id=content, author_id=creator,
                               author_name="x", body="hello", status="pending")
            job = c.execute("SELECT enqueue_asset_job(%s, 'noop') AS id", (asset,)).fetchone()["id"]
            rows_for = {
                "content": content, "assets": asset, "content_collections": coll,
                "content_categories": cat, "content_tags": tag, "content_comments": comment,
                "asset_processing_jobs": job,
                "content_assets": f.insert(c, "content_assets", tenant_id=tenant, content_id=content,
                                           asset_id=asset, usage_type="attachment"),
                "content_collection_items": f.insert(c, "content_collection_items", tenant_id=tenant,
                                                     collection_id=coll, content_id=content, sort_order=1),
                "content_categorizations": f.insert(c, "content_categorizations", tenant_id=tenant,
                                                    content_id=content, tag_id=tag),
                "comment_likes": f.insert(c, "comment_likes", tenant_id=tenant, comment_id=comment, user_id=creator),
                "editing_sessions": f.insert(c, "editing_sessions", tenant_id=tenant, content_id=content,
                                             user_id=creator, user_name="x"),
                "search_queries": f.insert(c, "search_queries", tenant_id=tenant, query="q", user_id=creator),
                "user_content_progress": f.insert(c, "user_content_progress", tenant_id=tenant,
                                                  content_id=content, user_id=creator),
                "content_recommendations": f.insert(c, "content_recommendations", tenant_id=tenant,
                                                    content_id=content, user_id=creator,
                                                    recommendation_type="similar"),
            }
            for table, rid in rows_for.items():
                rows.setdefault(table, {})[key] = rid
        return World(db_url, a, b, users, b_owner, rows)


def actor_conn(w: World, actor: str):
    return api(w.url, None if actor == "anon" else w.users[actor])


TENANT_TABLES = ["content", "assets", "content_collections", "content_categories", "content_tags",
                 "content_comments", "asset_processing_jobs", "content_assets", "content_collection_items",
                 "content_categorizations", "comment_likes", "editing_sessions", "search_queries",
                 "user_content_progress", "content_recommendations", "content_changes",
                 "content_versions", "content_engagement", "collection_item_prerequisites"]


@pytest.mark.parametrize("actor", ACTORS)
def test_no_actor_of_tenant_a_sees_or_changes_tenant_b(world: World, actor: str) -> None:
    """Whatever their role in A, nobody reads, updates or deletes a single row of tenant B."""
    with actor_conn(world, actor) as c:
        for table in TENANT_TABLES:
            n = attempt(c, f"SELECT 1 FROM public.{table} WHERE tenant_id = %s", (world.b,))
            assert n in (0, "42"), (table, n)
            assert attempt(c, f"UPDATE public.{table} SET tenant_id = tenant_id WHERE tenant_id = %s", (world.b,)) in (0, "42"), table
            assert attempt(c, f"DELETE FROM public.{table} WHERE tenant_id = %s", (world.b,)) in (0, "42"), table
        assert attempt(c, "SELECT 1 FROM public.tenants WHERE id = %s", (world.b,)) in (0, "42")


def test_anon_writes_nothing_anywhere(world: World) -> None:
    """anon cannot insert, update or delete in any table (permission denied)."""
    with actor_conn(world, "anon") as c:
        for table in [*TENANT_TABLES, "tenants", "tenant_memberships", "user_profiles", "block_types"]:
            assert attempt(c, f"DELETE FROM public.{table}") == "42", table
            assert attempt(c, f"UPDATE public.{table} SET id = id") == "42", table


# Expected outcome per actor for tenant A's row: True = visible / affected, False = not.
SELECT_A = {
    # A's content is the author's draft: the author and editors+ see it, members do not.
    "content": {"anon": False, "outsider": False, "member": False, "author": True, "editor": True, "admin": True, "owner": True},
    "assets": {"anon": False, "outsider": False, "member": True, "author": True, "editor": True, "admin": True, "owner": True},
    "content_collections": {"anon": False, "outsider": False, "member": False, "author": True, "editor": True, "admin": True, "owner": True},
    # Terms not labelling any public content: members only.
    "content_categories": {"anon": False, "outsider": False, **dict.fromkeys(ROLES, True)},
    "content_tags": {"anon": False, "outsider": False, **dict.fromkeys(ROLES, True)},
    # A pending comment: its author (the author) and moderators (editor+).
    "content_comments": {"anon": False, "outsider": False, "member": False, "author": True, "editor": True, "admin": True, "owner": True},
    "asset_processing_jobs": {"anon": False, "outsider": False, "member": True, "author": True, "editor": True, "admin": True, "owner": True},
    "editing_sessions": {"anon": False, "outsider": False, "member": False, "author": True, "editor": True, "admin": True, "owner": True},
    "search_queries": {"anon": False, "outsider": False, "member": False, "author": True, "editor": False, "admin": True, "owner": True},
    "user_content_progress": {"anon": False, "outsider": False, "member": False, "author": True, "editor": False, "admin": False, "owner": False},
    "content_recommendations": {"anon": False, "outsider": False, "member": False, "author": True, "editor": False, "admin": False, "owner": False},
}


@pytest.mark.parametrize("table", sorted(SELECT_A))
def test_select_matrix(world: World, table: str) -> None:
    """Each actor sees tenant A's row exactly when its role allows."""
    seen = {}
    for actor in ACTORS:
        with actor_conn(world, actor) as c:
            r = attempt(c, f"SELECT 1 FROM public.{table} WHERE id = %s", (world.rows[table]["a"],))
            seen[actor] = r == 1
    assert seen == SELECT_A[table]


UPDATE_A = {
    # Editors+ change anything of the tenant; the author changes its own rows; members nothing.
    "content": ("title = title || '!'", {"author", "editor", "admin", "owner"}),
    "assets": ("original_filename = 'x.jpg'", {"author", "editor", "admin", "owner"}),
    "content_collections": ("name = 'N'", {"author", "editor", "admin", "owner"}),
    "content_categories": ("name = 'N'", {"editor", "admin", "owner"}),
    "content_tags": ("name = 'N'", {"editor", "admin", "owner"}),
    "content_comments": ("body = 'edited'", {"author", "editor", "admin", "owner"}),
    "asset_processing_jobs": ("status = 'completed', completed_at = now()", set()),
    "content_assets": ("usage_type = 'cover'", {"author", "editor", "admin", "owner"}),
    "content_collection_items": ("notes = 'n'", {"author", "editor", "admin", "owner"}),
    "user_content_progress": ("progress_percentage = 100", set()),
}


@pytest.mark.parametrize("table", sorted(UPDATE_A))
def test_update_matrix(world: World, table: str) -> None:
    """Each actor can change tenant A's row exactly when its role allows."""
    assignment, allowed = UPDATE_A[table]
    changed = set()
    for actor in ACTORS:
        with actor_conn(world, actor) as c:
            if attempt(c, f"UPDATE public.{table} SET {assignment} WHERE id = %s", (world.rows[table]["a"],)) == 1:
                changed.add(actor)
    assert changed == allowed


DELETE_A = {
    "content": {"author", "editor", "admin", "owner"},  # a draft: its author may delete it
    "content_categories": {"editor", "admin", "owner"},
    "content_tags": {"editor", "admin", "owner"},
    "asset_processing_jobs": set(),
    "search_queries": set(),
}


@pytest.mark.parametrize("table", sorted(DELETE_A))
def test_delete_matrix(world: World, table: str) -> None:
    """Only the allowed roles delete tenant A's row (tried from the weakest role up; the first
    allowed role deletes it, so the expectation is the weakest allowed role)."""
    deleted_by = None
    for actor in ACTORS:
        with actor_conn(world, actor) as c:
            if attempt(c, f"DELETE FROM public.{table} WHERE id = %s", (world.rows[table]["a"],)) == 1:
                deleted_by = actor
                break
    allowed = DELETE_A[table]
    expected = next((a for a in ACTORS if a in allowed), None)
    assert deleted_by == expected


def _content_row(w: World, creator: uuid.UUID, slug: str) -> dict:
    return {"tenant_id": w.a, "creator_id": creator, "content_type": "article", "title": "T", "slug": slug}


@pytest.mark.parametrize("actor", ACTORS)
def test_insert_content_needs_author_and_self_as_creator(world: World, actor: str) -> None:
    """Authors and above insert content as themselves; nobody inserts it in another's name or tenant."""
    uid = world.users.get(actor)
    with actor_conn(world, actor) as c:
        own = attempt(c, "INSERT INTO content (tenant_id, creator_id, content_type, title, slug) "
                         "VALUES (%s, %s, 'article', 'T', %s)", (world.a, uid, f"own-{actor}"))
        spoofed = attempt(c, "INSERT INTO content (tenant_id, creator_id, content_type, title, slug) "
                             "VALUES (%s, %s, 'article', 'T', %s)", (world.a, world.b_owner, f"spoof-{actor}"))
        other_tenant = attempt(c, "INSERT INTO content (tenant_id, creator_id, content_type, title, slug) "
                                  "VALUES (%s, %s, 'article', 'T', %s)", (world.b, uid, f"b-{actor}"))
    assert (own == 1) == (actor in {"author", "editor", "admin", "owner"})
    assert spoofed != 1 and other_tenant != 1


@pytest.mark.parametrize("actor", ACTORS)
def test_insert_taxonomy_needs_editor(world: World, actor: str) -> None:
    """Editors and above create tags and categories; other roles cannot."""
    with actor_conn(world, actor) as c:
        tag = attempt(c, "INSERT INTO content_tags (tenant_id, name, slug) VALUES (%s, 'n', %s)", (world.a, f"t-{actor}"))
    assert (tag == 1) == (actor in {"editor", "admin", "owner"})


@pytest.mark.parametrize("actor", ACTORS)
def test_memberships_are_managed_by_admins(world: World, actor: str) -> None:
    """Admins and owners add members; only owners grant the owner role."""
    newcomer = None
    with psycopg.connect(world.url, autocommit=True, row_factory=psycopg.rows.dict_row) as c:
        newcomer = f.user(c)
        other = f.user(c)
    with actor_conn(world, actor) as c:
        add = attempt(c, "INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (%s, %s, 'editor')", (world.a, newcomer))
        own = attempt(c, "INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (%s, %s, 'owner')", (world.a, other))
    assert (add == 1) == (actor in {"admin", "owner"})
    assert (own == 1) == (actor == "owner")


@pytest.mark.parametrize("actor", ACTORS)
def test_members_see_their_tenant_and_own_membership(world: World, actor: str) -> None:
    """Every member reads its tenant row and its own membership; admins see all memberships."""
    with actor_conn(world, actor) as c:
        if actor == "anon":
            assert attempt(c, "SELECT 1 FROM tenants") == "42"
            assert attempt(c, "SELECT 1 FROM tenant_memberships") == "42"
            return
        tenants = c.execute("SELECT id FROM tenants").fetchall()
        memberships = c.execute("SELECT user_id FROM tenant_memberships").fetchall()
    if actor == "outsider":
        assert tenants == [] and memberships == []
        return
    assert [t["id"] for t in tenants] == [world.a]
    assert len(memberships) == (5 if actor in ("admin", "owner") else 1)


def test_published_public_content_is_readable_by_anon_without_tenant(world: World) -> None:
    """anon reads published, public, free content with no tenant setting, and no draft or paid item."""
    with psycopg.connect(world.url, autocommit=True, row_factory=psycopg.rows.dict_row) as c:
        pub = f.content(c, world.a, world.users["author"], status="published")
        f.content(c, world.a, world.users["author"], status="published", access_level="paid", price_cents=500)
        f.content(c, world.a, world.users["author"], status="published", visibility="members")
    with actor_conn(world, "anon") as c:
        ids = [r["id"] for r in c.execute("SELECT id FROM content")]
    assert ids == [pub]


def test_partitions_cannot_be_read_directly(world: World) -> None:
    """Reading an engagement partition directly is denied to API roles (defect 13)."""
    with psycopg.connect(world.url, autocommit=True) as c:
        part = c.execute("SELECT app_private.engagement_partition_name(now())").fetchone()[0]
    for actor in ("anon", "owner"):
        with actor_conn(world, actor) as c:
            assert attempt(c, f"SELECT * FROM public.{part}") == "42"
