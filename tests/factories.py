"""Rows for tests, with overridable defaults. All functions take an autocommit connection."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

_seq = itertools.count(1)


def user(conn: psycopg.Connection, **kw: Any) -> uuid.UUID:
    uid = kw.pop("id", uuid.uuid4())
    n = next(_seq)
    conn.execute(
        "INSERT INTO auth.users (id, email, raw_user_meta_data) VALUES (%s, %s, %s)",
        (uid, kw.pop("email", f"user{n}@example.test"), Jsonb(kw.pop("meta", {"full_name": f"User {n}"}))),
    )
    return uid


def tenant(conn: psycopg.Connection, **kw: Any) -> uuid.UUID:
    n = next(_seq)
    row = conn.execute(
        "INSERT INTO tenants (name, slug) VALUES (%s, %s) RETURNING id",
        (kw.pop("name", f"Tenant {n}"), kw.pop("slug", f"tenant-{n}")),
    ).fetchone()
    return row["id"] if isinstance(row, dict) else row[0]


def member(conn: psycopg.Connection, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str = "member") -> None:
    conn.execute(
        "INSERT INTO tenant_memberships (tenant_id, user_id, role, joined_at) VALUES (%s, %s, %s, now())",
        (tenant_id, user_id, role),
    )


def _insert(conn: psycopg.Connection, table: str, values: dict[str, Any]) -> uuid.UUID:
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    params = [Jsonb(v) if isinstance(v, (dict, list)) else v for v in values.values()]
    row = conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks}) RETURNING id", params).fetchone()  # type: ignore[arg-type]
    return row["id"] if isinstance(row, dict) else row[0]


def content(conn: psycopg.Connection, tenant_id: uuid.UUID, creator_id: uuid.UUID | None, **kw: Any) -> uuid.UUID:
    n = next(_seq)
    values = {
        "tenant_id": tenant_id,
        "creator_id": creator_id,
        "content_type": "article",
        "title": f"Article {n}",
        "slug": f"article-{n}",
        "status": "published",
        "published_at": kw.pop("published_at", None),
    }
    values.update(kw)
    if values["published_at"] is None:
        values.pop("published_at")
    return _insert(conn, "content", values)


def asset(conn: psycopg.Connection, tenant_id: uuid.UUID, creator_id: uuid.UUID | None, **kw: Any) -> uuid.UUID:
    n = next(_seq)
    values = {
        "tenant_id": tenant_id,
        "creator_id": creator_id,
        "original_filename": f"file{n}.jpg",
        "file_type": "image",
        "mime_type": "image/jpeg",
        "file_size": 1000,
        "storage_path": f"{tenant_id}/{uuid.uuid4()}/original",
    }
    values.update(kw)
    return _insert(conn, "assets", values)


def insert(conn: psycopg.Connection, table: str, **values: Any) -> uuid.UUID:
    return _insert(conn, table, values)
