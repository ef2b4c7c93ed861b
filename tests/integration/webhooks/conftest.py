"""Fixtures for events and webhooks: a tenant with an admin and an asset, a verifying receiver on
loopback, settings that allow that loopback receiver, and a dispatcher run in this process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from contentforge.settings import Settings
from tests import factories as f
from tests.integration.webhooks.receiver import Receiver


@dataclass
class Tenant:
    id: uuid.UUID
    admin: uuid.UUID
    author: uuid.UUID
    asset: uuid.UUID


def make_tenant(conn: psycopg.Connection) -> Tenant:
    admin, author = f.user(conn), f.user(conn)
    tenant = f.tenant(conn)
    f.member(conn, tenant, admin, "admin")
    f.member(conn, tenant, author, "author")
    return Tenant(tenant, admin, author, f.asset(conn, tenant, author))


@pytest.fixture
def tenant(conn: psycopg.Connection) -> Tenant:
    return make_tenant(conn)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Loopback http allowed (the receiver), retries due at once so tests step them one by one."""
    return Settings(DATABASE_URL=db_url, webhook_allow_http=True, webhook_allow_private_addresses=True,
                    webhook_retry_base_seconds=0, webhook_retry_max_seconds=0, webhook_dispatch_threads=2,
                    log_format="json")


@pytest.fixture
def dispatcher(settings: Settings, db_url: str) -> Iterator[Any]:
    from workers.webhook_dispatcher import Dispatcher

    d = Dispatcher(settings, db_url)
    yield d
    d.close()


def add_endpoint(conn: psycopg.Connection, tenant_id: uuid.UUID, url: str, events: list[str] | None = None) -> tuple[uuid.UUID, str]:
    row = conn.execute("SELECT endpoint_id, secret FROM create_webhook_endpoint(%s, %s, %s)",
                       (tenant_id, url, events or [])).fetchone()
    return row["endpoint_id"], row["secret"]


def finish_job(conn: psycopg.Connection, asset: uuid.UUID, job_type: str = "noop", *, fail: bool = False) -> uuid.UUID:
    """Enqueue a job and run it to its end through the worker-side SQL functions (no media)."""
    job = conn.execute("SELECT enqueue_asset_job(%s, %s) AS id", (asset, job_type)).fetchone()["id"]
    claimed = conn.execute("SELECT id FROM app_private.claim_job('test-worker', 30)").fetchone()
    assert claimed["id"] == job
    if fail:
        conn.execute("SELECT app_private.fail_job(%s, 'test-worker', 'broken input', NULL, false, 0)", (job,))
    else:
        conn.execute("SELECT app_private.complete_job(%s, 'test-worker', '{\"ok\": true}')", (job,))
    return job


def drain(dispatcher: Any, rounds: int = 20) -> int:
    """Run dispatcher batches until one finds nothing due; return how many attempts were made."""
    total = 0
    for _ in range(rounds):
        n = dispatcher.run_once()
        if n == 0:
            return total
        total += n
    raise AssertionError(f"deliveries still due after {rounds} rounds")
