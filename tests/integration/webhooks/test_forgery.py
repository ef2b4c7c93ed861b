"""No server-side request forgery: refused destinations are refused before any connection."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import psycopg
import pytest

from contentforge.settings import Settings
from tests.integration.webhooks.conftest import Tenant, add_endpoint, finish_job
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.webhooks

_connects: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and _connects is not None:
        address = args[1]
        _connects.append(f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address))


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only inside connections_seen()


@contextlib.contextmanager
def connections_seen() -> Iterator[list[str]]:
    """Every address a socket of this process tries to connect to (Python's socket.connect audit event)."""
    global _connects
    _connects = []
    try:
        yield _connects
    finally:
        _connects = None


@pytest.fixture
def strict(db_url: str) -> Iterator[object]:
    """A dispatcher with the production address rules (plain http allowed, so the address decides)."""
    from workers.webhook_dispatcher import Dispatcher

    d = Dispatcher(Settings(DATABASE_URL=db_url, webhook_allow_http=True, webhook_retry_base_seconds=0,
                            webhook_retry_max_seconds=0), db_url)
    yield d
    d.close()


@pytest.mark.parametrize(("host", "reason"), [
    ("127.0.0.1", "a loopback address"),
    ("[::1]", "a loopback address"),
    ("169.254.169.254", "a cloud metadata address"),
    ("10.0.0.1", "a private address"),
    ("localhost", "a loopback address"),
    ("[::ffff:127.0.0.1]", "a loopback address"),
])
def test_forbidden_address_refused_before_connecting(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver,
                                                     strict, host: str, reason: str) -> None:
    """The resolved address is checked at delivery time; no socket connects to it."""
    receiver.start()
    add_endpoint(conn, tenant.id, f"http://{host}:{receiver.port}/hook", ["asset.ready"])
    finish_job(conn, tenant.asset)
    with connections_seen() as seen:
        assert strict.run_once() == 1
    attempt = conn.execute("SELECT succeeded, status_code, error FROM webhook_delivery_attempts").fetchone()
    assert attempt["succeeded"] is False and attempt["status_code"] is None
    assert attempt["error"].startswith("refused: ") and reason in attempt["error"], attempt["error"]
    # The only connection made is the dispatcher's own to PostgreSQL: none to the endpoint's port.
    assert [a for a in seen if a.endswith(f":{receiver.port}") or a.startswith(("10.", "169.254."))] == [], seen
    assert receiver.received == []


def test_metadata_address_refused_even_where_private_is_allowed(conn: psycopg.Connection, tenant: Tenant, dispatcher) -> None:
    """The loopback-allowing test settings still refuse 169.254.169.254, without a connection."""
    add_endpoint(conn, tenant.id, "http://169.254.169.254/latest/meta-data/", ["asset.ready"])
    finish_job(conn, tenant.asset)
    with connections_seen() as seen:
        dispatcher.run_once()
    assert not any(a.startswith("169.254") for a in seen), seen
    assert "a cloud metadata address" in conn.execute("SELECT error FROM webhook_delivery_attempts").fetchone()["error"]


def test_plain_http_refused_unless_allowed(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver, db_url: str) -> None:
    """Without the operator's http setting an http:// endpoint is refused, even on an allowed address."""
    from workers.webhook_dispatcher import Dispatcher

    receiver.start()
    add_endpoint(conn, tenant.id, receiver.url, ["asset.ready"])
    finish_job(conn, tenant.asset)
    d = Dispatcher(Settings(DATABASE_URL=db_url, webhook_allow_private_addresses=True), db_url)
    try:
        d.run_once()
    finally:
        d.close()
    assert "plain http is not allowed" in conn.execute("SELECT error FROM webhook_delivery_attempts").fetchone()["error"]
    assert receiver.received == []


def test_redirect_to_loopback_is_not_followed(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver, dispatcher) -> None:
    """A 302 pointing at another loopback service is a failed attempt; the target sees nothing."""
    target = Receiver().start()
    try:
        receiver.redirect = f"http://127.0.0.1:{target.port}/internal-admin"
        receiver.start()
        add_endpoint(conn, tenant.id, receiver.url, ["asset.ready"])
        finish_job(conn, tenant.asset)
        assert dispatcher.run_once() == 1
    finally:
        target.stop()
    assert len(receiver.received) == 1 and target.received == []
    attempt = conn.execute("SELECT succeeded, status_code, error FROM webhook_delivery_attempts").fetchone()
    assert attempt["succeeded"] is False and attempt["status_code"] == 302
    assert "not followed" in attempt["error"]


def test_response_body_is_read_up_to_the_limit(conn: psycopg.Connection, tenant: Tenant, dispatcher) -> None:
    """A receiver answering megabytes has only the first bytes read and logged."""
    import http.server
    import threading

    from workers.webhook_post import RESPONSE_BODY_LIMIT_BYTES

    class Big(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(500)
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"x" * 65536)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Big)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        add_endpoint(conn, tenant.id, f"http://127.0.0.1:{server.server_address[1]}/", ["asset.ready"])
        finish_job(conn, tenant.asset)
        assert dispatcher.run_once() == 1
    finally:
        server.shutdown()
        server.server_close()
    excerpt = conn.execute("SELECT response_excerpt FROM webhook_delivery_attempts").fetchone()["response_excerpt"]
    assert excerpt == "x" * min(RESPONSE_BODY_LIMIT_BYTES, 1000)  # the log keeps 1,000 characters


def test_endpoint_url_must_be_http_or_https(conn: psycopg.Connection, tenant: Tenant) -> None:
    """file://, gopher:// and URLs with credentials are refused at registration (22023)."""
    for url in ("file:///etc/passwd", "gopher://127.0.0.1/", "https://user:pw@example.com/"):
        with pytest.raises(psycopg.Error) as exc:
            add_endpoint(conn, tenant.id, url)
        assert exc.value.sqlstate == "22023", url
