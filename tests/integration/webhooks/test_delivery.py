"""Delivery to a real receiver on loopback that verifies every request with `standardwebhooks`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from contentforge.settings import Settings
from tests.integration.webhooks.conftest import Tenant, add_endpoint, drain, finish_job
from tests.integration.webhooks.receiver import Receiver, free_port

pytestmark = pytest.mark.webhooks
REPO = Path(__file__).resolve().parents[3]


def test_every_event_arrives_verified(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver, dispatcher) -> None:
    """Each event of a finished job arrives once, verified by the reference library, id = event id."""
    _, secret = add_endpoint(conn, tenant.id, receiver.url)
    receiver.secrets = [secret]
    receiver.start()
    finish_job(conn, tenant.asset)
    assert drain(dispatcher) == 3
    got = receiver.received
    assert [r.verified_with for r in got] == [0, 0, 0], [r.error for r in got]
    events = {str(r["id"]): r["event_type"] for r in conn.execute("SELECT id, event_type FROM webhook_events")}
    assert {r.msg_id: r.event["type"] for r in got} == events
    assert {r.event["id"] for r in got} == set(events)
    assert all(r.path == "/hooks/contentforge" for r in got)
    ready = next(r.event for r in got if r.event["type"] == "asset.ready")
    assert ready["data"]["asset_id"] == str(tenant.asset) and ready["tenant_id"] == str(tenant.id)


def test_endpoint_gets_only_its_event_types(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver, dispatcher) -> None:
    """An endpoint subscribed to asset.ready receives that event alone."""
    _, secret = add_endpoint(conn, tenant.id, receiver.url, ["asset.ready"])
    receiver.secrets = [secret]
    receiver.start()
    finish_job(conn, tenant.asset)
    drain(dispatcher)
    assert [r.event["type"] for r in receiver.received] == ["asset.ready"]


def test_down_then_500_three_times_then_accepted(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver,
                                                 dispatcher) -> None:
    """Refused connection, three 500s, then 200: five attempts logged, one webhook-id throughout."""
    _, secret = add_endpoint(conn, tenant.id, receiver.url, ["asset.ready"])
    receiver.secrets = [secret]
    finish_job(conn, tenant.asset)
    assert dispatcher.run_once() == 1  # receiver not started: connection refused
    receiver.script = [500, 500, 500]
    receiver.start()
    drain(dispatcher)
    got = receiver.received
    assert len(got) == 4 and len({r.msg_id for r in got}) == 1
    assert all(r.verified_with == 0 for r in got)
    log = conn.execute("""SELECT attempt, succeeded, status_code, error FROM webhook_delivery_attempts
                          ORDER BY attempted_at, attempt""").fetchall()
    assert [(r["attempt"], r["succeeded"], r["status_code"]) for r in log] == [
        (1, False, None), (2, False, 500), (3, False, 500), (4, False, 500), (5, True, 200)]
    assert "Connection" in log[0]["error"] or "refused" in log[0]["error"].lower()
    d = conn.execute("SELECT status, attempts, last_status_code FROM webhook_deliveries").fetchone()
    assert d == {"status": "succeeded", "attempts": 5, "last_status_code": 200}
    assert conn.execute("SELECT failing_since FROM webhook_endpoints").fetchone()["failing_since"] is None


def test_retries_back_off_exponentially(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver, db_url: str) -> None:
    """With a 10 s base, failed attempts are due again after 5-15 s, then 10-30 s (jitter 0.5-1.5)."""
    from workers.webhook_dispatcher import Dispatcher

    add_endpoint(conn, tenant.id, receiver.url, ["asset.ready"])
    receiver.script = [500] * 5
    receiver.start()
    finish_job(conn, tenant.asset)
    d = Dispatcher(Settings(DATABASE_URL=db_url, webhook_allow_http=True, webhook_allow_private_addresses=True,
                            webhook_retry_base_seconds=10, webhook_retry_max_seconds=3600), db_url)
    try:
        delays = []
        for _ in range(2):
            assert d.run_once() == 1
            delays.append(conn.execute("SELECT extract(epoch FROM due_at - updated_at)::float8 AS s FROM webhook_deliveries").fetchone()["s"])
            conn.execute("UPDATE webhook_deliveries SET due_at = now()")  # let the next attempt be due
    finally:
        d.close()
    assert 5 <= delays[0] <= 15 and 10 <= delays[1] <= 30, delays


def test_gives_up_after_the_retry_window(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver, db_url: str) -> None:
    """A delivery failing past the retry window is failed for good; the log keeps every attempt."""
    from workers.webhook_dispatcher import Dispatcher

    add_endpoint(conn, tenant.id, receiver.url, ["asset.ready"])
    receiver.script = [503] * 10
    receiver.start()
    finish_job(conn, tenant.asset)
    assert Settings(DATABASE_URL=db_url).webhook_retry_hours >= 24
    d = Dispatcher(Settings(DATABASE_URL=db_url, webhook_allow_http=True, webhook_allow_private_addresses=True,
                            webhook_retry_base_seconds=0, webhook_retry_max_seconds=0), db_url)
    try:
        assert d.run_once() == 1
        conn.execute("UPDATE webhook_deliveries SET window_started_at = now() - interval '25 hours'")
        assert d.run_once() == 1
        assert d.run_once() == 0
    finally:
        d.close()
    assert conn.execute("SELECT status FROM webhook_deliveries").fetchone()["status"] == "failed"
    assert conn.execute("SELECT count(*) AS n FROM webhook_delivery_attempts").fetchone()["n"] == 2


def test_endpoint_failing_for_days_is_disabled_and_visible(conn: psycopg.Connection, tenant: Tenant, dispatcher) -> None:
    """An endpoint failing for longer than the limit is disabled with a reason; `webhooks list` shows it."""
    endpoint, _ = add_endpoint(conn, tenant.id, f"http://127.0.0.1:{free_port()}/down")
    finish_job(conn, tenant.asset)
    conn.execute("UPDATE webhook_endpoints SET failing_since = now() - interval '6 days'")
    drain(dispatcher)
    row = conn.execute("SELECT enabled, disabled_reason FROM webhook_endpoints").fetchone()
    assert row["enabled"] is False and "every delivery failed since" in row["disabled_reason"]
    env = {**os.environ, "DATABASE_URL": dispatcher.database_url, "CONTENTFORGE_LOG_FORMAT": "json"}
    out = subprocess.run([sys.executable, "-m", "cli", "webhooks", "list"], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert str(endpoint) in out and "DISABLED (every delivery failed since" in out
    # Nothing more is attempted while it is disabled.
    assert dispatcher.run_once() == 0


def test_secret_rotation_signs_with_both_during_the_overlap(conn: psycopg.Connection, tenant: Tenant,
                                                            receiver: Receiver, dispatcher) -> None:
    """After a rotation both secrets verify; after the overlap only the new one does."""
    endpoint, old = add_endpoint(conn, tenant.id, receiver.url, ["job.completed"])
    new = conn.execute("SELECT rotate_webhook_secret(%s, 3600) AS s", (endpoint,)).fetchone()["s"]
    assert new.startswith("whsec_") and new != old
    receiver.start()
    finish_job(conn, tenant.asset)
    for secret in (old, new):
        receiver.secrets = [secret]
        receiver.received.clear()
        conn.execute("SELECT replay_webhook_events(endpoint_id => %s, since => now() - interval '1 hour')", (endpoint,))
        drain(dispatcher)
        assert [r.verified_with for r in receiver.received] == [0], secret
    newest = conn.execute("SELECT rotate_webhook_secret(%s, 0) AS s", (endpoint,)).fetchone()["s"]
    for secret, verified in ((old, None), (new, None), (newest, 0)):
        receiver.secrets = [secret]
        receiver.received.clear()
        conn.execute("SELECT replay_webhook_events(endpoint_id => %s, since => now() - interval '1 hour')", (endpoint,))
        drain(dispatcher)
        assert [r.verified_with for r in receiver.received] == [verified], secret


def test_replay_one_event_sends_the_same_id(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver, dispatcher) -> None:
    """Replaying a delivered event posts it again with the same webhook-id; the CLI replays too."""
    _, secret = add_endpoint(conn, tenant.id, receiver.url, ["asset.ready"])
    receiver.secrets = [secret]
    receiver.start()
    finish_job(conn, tenant.asset)
    drain(dispatcher)
    event = conn.execute("SELECT id FROM webhook_events WHERE event_type = 'asset.ready'").fetchone()["id"]
    assert conn.execute("SELECT replay_webhook_events(event_id => %s) AS n", (event,)).fetchone()["n"] == 1
    drain(dispatcher)
    env = {**os.environ, "DATABASE_URL": dispatcher.database_url, "CONTENTFORGE_LOG_FORMAT": "json"}
    out = subprocess.run([sys.executable, "-m", "cli", "webhooks", "replay", "--event", str(event)],
                         env=env, cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "1 deliver" in out
    drain(dispatcher)
    assert [r.msg_id for r in receiver.received] == [str(event)] * 3
    assert all(r.verified_with == 0 for r in receiver.received)
    log = json.loads(subprocess.run([sys.executable, "-m", "cli", "webhooks", "deliveries", "--event",
                                     str(event), "--json"], env=env, cwd=REPO, capture_output=True, text=True,
                                    check=True).stdout)
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("succeeded", 1, 200)]


def test_killed_worker_and_killed_dispatcher_lose_nothing(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver,
                                                          db_url: str, dispatcher) -> None:
    """A worker killed right after its completion commits, then a dispatcher killed mid-POST: the
    event still arrives, with one webhook-id on every attempt."""
    _, secret = add_endpoint(conn, tenant.id, receiver.url, ["job.completed"])
    receiver.secrets = [secret]
    job = conn.execute("SELECT enqueue_asset_job(%s, 'noop') AS id", (tenant.asset,)).fetchone()["id"]
    worker = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys, psycopg\n"
        "c = psycopg.connect(sys.argv[1], autocommit=True)\n"
        "j = c.execute(\"SELECT id FROM app_private.claim_job('doomed', 30)\").fetchone()[0]\n"
        "c.execute(\"SELECT app_private.complete_job(%s, 'doomed', '{}')\", (j,))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"), db_url])
    assert worker.returncode == -signal.SIGKILL
    assert conn.execute("SELECT status FROM asset_processing_jobs WHERE id = %s", (job,)).fetchone()["status"] == "completed"

    receiver.hold = threading.Event()
    receiver.start()
    env = {**os.environ, "DATABASE_URL": db_url, "CONTENTFORGE_LOG_FORMAT": "json",
           "CONTENTFORGE_WEBHOOK_ALLOW_HTTP": "true", "CONTENTFORGE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "webhooks", "dispatch"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        receiver.wait_for(lambda got: len(got) == 1, timeout=30)
        proc.kill()  # the dispatcher dies holding the delivery, its POST unanswered
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        receiver.hold.set()
    receiver.hold = None
    row = conn.execute("SELECT status, attempts FROM webhook_deliveries").fetchone()
    assert row == {"status": "delivering", "attempts": 1}
    assert dispatcher.run_once() == 0  # its lease still holds
    conn.execute("UPDATE webhook_deliveries SET due_at = now()")  # the lease runs out
    assert drain(dispatcher) == 1
    got = receiver.received
    assert len(got) == 2 and {r.msg_id for r in got} == {str(next(iter(
        conn.execute("SELECT id FROM webhook_events WHERE event_type = 'job.completed'")))["id"])}
    assert all(r.verified_with == 0 for r in got)
    assert conn.execute("SELECT status FROM webhook_deliveries").fetchone()["status"] == "succeeded"


def test_dispatcher_loop_delivers_on_notification(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver,
                                                  dispatcher) -> None:
    """A running dispatcher wakes on the event's notification and posts it."""
    _, secret = add_endpoint(conn, tenant.id, receiver.url, ["asset.ready"])
    receiver.secrets = [secret]
    receiver.start()
    stop, ready = threading.Event(), threading.Event()
    t = threading.Thread(target=dispatcher.run, args=(stop, ready), daemon=True)
    t.start()
    try:
        assert ready.wait(10)
        finish_job(conn, tenant.asset)
        got = receiver.wait_for(lambda got: len(got) == 1)
    finally:
        stop.set()
        t.join(10)
    assert got[0].verified_with == 0 and got[0].event["type"] == "asset.ready"


def test_a_slow_receiver_does_not_hold_other_tenants_deliveries(conn: psycopg.Connection, tenant: Tenant,
                                                                receiver: Receiver, dispatcher) -> None:
    """While tenant A's receiver keeps its request waiting, tenant B's event is delivered."""
    from tests.integration.webhooks.conftest import make_tenant

    other = make_tenant(conn)
    slow, fast = receiver, Receiver()
    try:
        _, secret_a = add_endpoint(conn, tenant.id, slow.url, ["asset.ready"])
        _, secret_b = add_endpoint(conn, other.id, fast.url, ["asset.ready"])
        slow.secrets, fast.secrets = [secret_a], [secret_b]
        slow.hold = threading.Event()
        slow.start()
        fast.start()
        stop, ready = threading.Event(), threading.Event()
        t = threading.Thread(target=dispatcher.run, args=(stop, ready), daemon=True)
        t.start()
        try:
            assert ready.wait(10)
            finish_job(conn, tenant.asset)
            slow.wait_for(lambda got: len(got) == 1)  # A's attempt is now in flight, held
            finish_job(conn, other.asset)
            got = fast.wait_for(lambda got: len(got) == 1)
            assert got[0].verified_with == 0 and len(slow.received) == 1
        finally:
            slow.hold.set()
            stop.set()
            t.join(15)
    finally:
        fast.stop()
    assert conn.execute("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'succeeded'").fetchone()["n"] == 2


def test_one_tenant_holds_at_most_its_share_of_deliveries_in_flight(conn: psycopg.Connection, tenant: Tenant) -> None:
    """Tenant A's backlog of 6 due deliveries takes at most 4 claims at once, and tenant B's newer delivery
    is claimed in the same batch; while A's 4 are in flight no dispatcher claims more of A's."""
    from tests.integration.webhooks.conftest import make_tenant

    other = make_tenant(conn)
    add_endpoint(conn, tenant.id, "https://a.example/h", ["job.completed"])
    add_endpoint(conn, other.id, "https://b.example/h", ["job.completed"])
    for _ in range(6):
        finish_job(conn, tenant.asset)
    finish_job(conn, other.asset)  # due after all of A's
    claim = "SELECT tenant_id FROM app_private.claim_webhook_deliveries(%s, 8, 60, 4)"
    first = [r["tenant_id"] for r in conn.execute(claim, ("d1",)).fetchall()]
    assert sorted(map(str, first)) == sorted([str(tenant.id)] * 4 + [str(other.id)])
    assert conn.execute(claim, ("d2",)).fetchall() == []  # A's other 2 wait for a free share
