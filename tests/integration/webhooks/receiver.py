"""A webhook receiver on loopback that verifies every delivery with the `standardwebhooks` package
(the reference implementation from PyPI, not our own signing code)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: Index in Receiver.secrets of the secret that verified the delivery; None when none did.
    verified_with: int | None
    error: str | None
    at: float

    @property
    def msg_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records and verifies each POST. ``script`` holds status codes to answer first (then 200);
    ``redirect`` answers 302 to that location; ``hold`` (when set) keeps each request waiting
    until it is set.

    The port is bound when the receiver is made and stays bound (not listening: connections are
    refused until ``start``), so no other receiver can be given it meanwhile. (Picking a free port
    and binding it only at ``start`` let two receivers of one test get the same port: the kernel
    hands out a port again as soon as the probe that found it is closed.)"""

    port: int = 0
    secrets: list[str] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    redirect: str | None = None
    hold: threading.Event | None = None
    received: list[Received] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reserved: socket.socket | None = None

    def __post_init__(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self._reserved, self.port = sock, sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/contentforge"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified, error = None, None
                for i, secret in enumerate(list(receiver.secrets)):
                    try:
                        Webhook(secret).verify(body, headers)
                        verified = i
                        break
                    except WebhookVerificationError as exc:
                        error = str(exc)
                with receiver._lock:
                    receiver.received.append(Received(self.path, headers, body, verified, error, time.monotonic()))
                    code = receiver.script.pop(0) if receiver.script else 200
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                if receiver.redirect:
                    self.send_response(302)
                    self.send_header("location", receiver.redirect)
                    self.end_headers()
                    return
                self.send_response(code)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"receiver says no")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            request_queue_size = 64  # the default 5 drops SYNs under concurrent posts (1 s stalls)

        server = Server(("127.0.0.1", self.port), Handler, bind_and_activate=False)
        if self._reserved is not None:  # serve on the socket bound since the receiver was made
            server.socket.close()
            server.socket, self._reserved = self._reserved, None
            server.server_name, server.server_port = "127.0.0.1", self.port
        else:  # started again after stop()
            server.server_bind()
        server.server_activate()
        self._server = server
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = list(self.received)
            if predicate(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met after {timeout} s; got {len(got)} request(s)")
            time.sleep(0.02)
