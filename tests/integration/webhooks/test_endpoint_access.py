"""Endpoints are managed by their tenant's admins through PostgREST-style calls, and by operators."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.integration.schema.api import api
from tests.integration.webhooks.conftest import Tenant, add_endpoint, drain, finish_job, make_tenant
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.webhooks
REPO = Path(__file__).resolve().parents[3]


def _sqlstate(conn: psycopg.Connection, query: str, params: tuple) -> str | None:
    try:
        conn.execute(query, params)
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


def test_upload_service_registers_with_sql_alone_and_gets_verified_asset_ready(
        conn: psycopg.Connection, tenant: Tenant, receiver: Receiver, db_url: str, dispatcher) -> None:
    """An admin registers an endpoint through the API roles; the author's upload ends in a verified asset.ready."""
    with api(db_url, tenant.admin) as admin:
        row = admin.execute("SELECT * FROM create_webhook_endpoint(%s, %s, ARRAY['asset.ready'])",
                            (tenant.id, receiver.url)).fetchone()
        assert row["secret"].startswith("whsec_")
        assert admin.execute("SELECT url FROM webhook_endpoints").fetchall() == [{"url": receiver.url}]
    receiver.secrets = [row["secret"]]
    receiver.start()
    with api(db_url, tenant.author) as author:
        asset = author.execute(
            """INSERT INTO assets (tenant_id, creator_id, original_filename, file_type, mime_type, file_size, storage_path)
               VALUES (%s, %s, 'up.png', 'image', 'image/png', 10, %s) RETURNING id""",
            (tenant.id, tenant.author, f"{tenant.id}/upload/original")).fetchone()["id"]
        author.execute("SELECT enqueue_asset_job(%s, 'noop')", (asset,))
    conn.execute("SELECT app_private.claim_job('w', 30)")
    conn.execute("SELECT app_private.complete_job(j.id, 'w', '{}') FROM asset_processing_jobs j WHERE j.asset_id = %s", (asset,))
    drain(dispatcher)
    [got] = receiver.received
    assert got.verified_with == 0
    assert got.event["type"] == "asset.ready" and got.event["data"]["asset_id"] == str(asset)
    with api(db_url, tenant.admin) as admin:
        log = admin.execute("SELECT attempt, succeeded, status_code, latency_ms FROM webhook_delivery_attempts").fetchall()
        assert [(r["attempt"], r["succeeded"], r["status_code"]) for r in log] == [(1, True, 200)]
        assert admin.execute("SELECT status FROM webhook_deliveries").fetchall() == [{"status": "succeeded"}]


def test_other_tenants_admin_can_neither_see_nor_change(conn: psycopg.Connection, tenant: Tenant, db_url: str) -> None:
    """Tenant B's admin sees no row of A's endpoint or log and gets 'not found' (PT404) for every change."""
    other = make_tenant(conn)
    endpoint, _ = add_endpoint(conn, tenant.id, "https://hooks.example.com/a")
    finish_job(conn, tenant.asset)
    event = conn.execute("SELECT id FROM webhook_events LIMIT 1").fetchone()["id"]
    with api(db_url, other.admin) as b:
        for table in ("webhook_endpoints", "webhook_events", "webhook_deliveries", "webhook_delivery_attempts"):
            assert b.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == 0, table
        assert _sqlstate(b, "SELECT update_webhook_endpoint(%s, url => 'https://evil.example/')", (endpoint,)) == "PT404"
        assert _sqlstate(b, "SELECT update_webhook_endpoint(%s, enabled => false)", (endpoint,)) == "PT404"
        assert _sqlstate(b, "SELECT rotate_webhook_secret(%s)", (endpoint,)) == "PT404"
        assert _sqlstate(b, "SELECT delete_webhook_endpoint(%s)", (endpoint,)) == "PT404"
        assert _sqlstate(b, "SELECT replay_webhook_events(endpoint_id => %s, since => now() - interval '1 day')", (endpoint,)) == "PT404"
        assert _sqlstate(b, "SELECT replay_webhook_events(event_id => %s)", (event,)) == "PT404"
        assert _sqlstate(b, "SELECT * FROM create_webhook_endpoint(%s, 'https://evil.example/')", (tenant.id,)) == "42501"
        # A made-up id gives the same answer as another tenant's: nothing leaks.
        assert _sqlstate(b, "SELECT rotate_webhook_secret(gen_random_uuid())", ()) == "PT404"
        assert _sqlstate(b, "UPDATE webhook_endpoints SET url = 'https://evil.example/'", ()) == "42501"
    row = conn.execute("SELECT url, enabled FROM webhook_endpoints WHERE id = %s", (endpoint,)).fetchone()
    assert row == {"url": "https://hooks.example.com/a", "enabled": True}


def test_members_below_admin_cannot_manage(conn: psycopg.Connection, tenant: Tenant, db_url: str) -> None:
    """An author of the tenant itself sees no endpoint and cannot create one."""
    add_endpoint(conn, tenant.id, "https://hooks.example.com/a")
    with api(db_url, tenant.author) as author:
        assert author.execute("SELECT count(*) AS n FROM webhook_endpoints").fetchone()["n"] == 0
        assert _sqlstate(author, "SELECT * FROM create_webhook_endpoint(%s, 'https://x.example/')", (tenant.id,)) == "42501"
    with api(db_url) as anon:
        assert _sqlstate(anon, "SELECT * FROM create_webhook_endpoint(%s, 'https://x.example/')", (tenant.id,)) == "42501"
        assert _sqlstate(anon, "SELECT count(*) FROM webhook_endpoints", ()) == "42501"


def test_secrets_are_never_readable_through_the_api(conn: psycopg.Connection, tenant: Tenant, db_url: str) -> None:
    """The secret table is out of the API's reach, even for the tenant's admin."""
    add_endpoint(conn, tenant.id, "https://hooks.example.com/a")
    with api(db_url, tenant.admin) as admin:
        assert _sqlstate(admin, "SELECT * FROM app_private.webhook_secrets", ()) == "42501"
        assert "secret" not in admin.execute("SELECT * FROM webhook_endpoints").fetchone()


def test_bad_parameters_are_22023(conn: psycopg.Connection, tenant: Tenant, db_url: str) -> None:
    """Unknown event types, a bad overlap and an empty replay are 22023 (PostgREST: 400)."""
    endpoint, _ = add_endpoint(conn, tenant.id, "https://hooks.example.com/a")
    with api(db_url, tenant.admin) as admin:
        assert _sqlstate(admin, "SELECT * FROM create_webhook_endpoint(%s, 'https://x.example/', ARRAY['asset.gone'])", (tenant.id,)) == "22023"
        assert _sqlstate(admin, "SELECT rotate_webhook_secret(%s, -1)", (endpoint,)) == "22023"
        assert _sqlstate(admin, "SELECT replay_webhook_events()", ()) == "22023"


def test_operator_cli_manages_endpoints(conn: psycopg.Connection, tenant: Tenant, db_url: str) -> None:
    """`webhooks add`, `rotate`, `update --disable` and `remove` work for an operator's login."""
    env = {**os.environ, "DATABASE_URL": db_url, "CONTENTFORGE_LOG_FORMAT": "json"}

    def cli(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "cli", "webhooks", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, check=True).stdout

    out = cli("add", "--tenant", str(tenant.id), "--url", "https://hooks.example.com/x", "--event", "asset.ready")
    endpoint = out.split()[1]
    assert "whsec_" in out
    assert cli("rotate", endpoint).startswith("whsec_")
    cli("update", endpoint, "--disable")
    assert conn.execute("SELECT enabled, disabled_reason FROM webhook_endpoints").fetchone() == {
        "enabled": False, "disabled_reason": "disabled by request"}
    cli("update", endpoint, "--enable")
    assert conn.execute("SELECT enabled FROM webhook_endpoints").fetchone()["enabled"] is True
    cli("remove", endpoint)
    assert conn.execute("SELECT count(*) AS n FROM webhook_endpoints").fetchone()["n"] == 0
    bad = subprocess.run([sys.executable, "-m", "cli", "webhooks", "rotate", endpoint], env=env, cwd=REPO,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not found" in bad.stderr


def test_endpoints_per_tenant_are_bounded(conn: psycopg.Connection, tenant: Tenant, db_url: str) -> None:
    """An admin can register 10 endpoints, not 11 (22023); another tenant is unaffected."""
    with api(db_url, tenant.admin) as admin:
        for i in range(10):
            admin.execute("SELECT * FROM create_webhook_endpoint(%s, %s)", (tenant.id, f"https://hooks.example.com/{i}"))
        assert _sqlstate(admin, "SELECT * FROM create_webhook_endpoint(%s, 'https://hooks.example.com/x')", (tenant.id,)) == "22023"
    other = make_tenant(conn)
    add_endpoint(conn, other.id, "https://hooks.example.com/other")
