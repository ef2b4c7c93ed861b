"""POST one webhook to an address checked at delivery time: no server-side request forgery.

The host is resolved when the attempt is made and every address it resolves to is checked; the
connection then goes to the checked address itself (so a DNS answer that changes between the
check and the connect cannot redirect it), with the host name kept for the Host header and TLS.
Refused: plain http unless allowed, loopback, private, link-local, multicast, reserved and other
non-public addresses unless allowed, and cloud metadata addresses always. Redirects are not
followed (a 3xx is a failed attempt); the response body is read up to a small limit; the whole
attempt, connect to last byte, is bounded by :data:`WEBHOOK_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Longest a receiver may take for one attempt, connect to last byte read, in seconds (what the big
#: webhook senders allow; a slow receiver must answer first and work afterwards).
WEBHOOK_TIMEOUT_SECONDS = 10.0
#: Most bytes of a receiver's response body read and kept for the delivery log: enough for an error
#: message, too little for a hostile receiver to make the dispatcher hold much memory.
RESPONSE_BODY_LIMIT_BYTES = 4096

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata services (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba): refused even where private
#: addresses are allowed, since they hand out credentials.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200"))


class RefusedDestination(Exception):
    """The endpoint's URL or resolved address is not one the dispatcher may connect to."""


@dataclass(frozen=True)
class AddressPolicy:
    allow_http: bool = False
    allow_private: bool = False


@dataclass(frozen=True)
class PostResult:
    status_code: int | None
    latency_ms: int
    error: str | None
    body_excerpt: str
    #: The address actually connected to ("ip:port"), None when no connection was made.
    connected_to: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def refusal(address: IPAddress, policy: AddressPolicy) -> str | None:
    """Why ``address`` may not be connected to under ``policy``, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if policy.allow_private:
        return None
    for label, flag in (("a loopback", address.is_loopback), ("a link-local", address.is_link_local),
                        ("a multicast", address.is_multicast), ("a private", address.is_private),
                        ("a reserved", address.is_reserved)):
        if flag:
            return f"{label} address"
    if not address.is_global:
        return "not a public address"
    return None


def resolve(url: str, policy: AddressPolicy) -> tuple[str, int, str, list[tuple[int, tuple]]]:
    """Check ``url`` and resolve its host now: (host, port, path, [(family, sockaddr), ...]).

    Raises :class:`RefusedDestination` when the scheme, the URL or any resolved address is refused.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise RefusedDestination(f"scheme {parts.scheme!r} is not allowed; use https")
    if parts.scheme == "http" and not policy.allow_http:
        raise RefusedDestination("plain http is not allowed (the operator setting CONTENTFORGE_WEBHOOK_ALLOW_HTTP)")
    if parts.username or parts.password:
        raise RefusedDestination("credentials in the URL are not allowed")
    host = parts.hostname
    if not host:
        raise RefusedDestination("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise RefusedDestination(f"bad port: {exc}") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedDestination(f"cannot resolve {host!r}: {exc}") from None
    targets: list[tuple[int, tuple]] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        reason = refusal(address, policy)
        if reason:
            # One refused address refuses the host: the attacker picks which address we try.
            raise RefusedDestination(f"{host} resolves to {address}, {reason}")
        targets.append((family, sockaddr))
    if not targets:
        raise RefusedDestination(f"{host!r} resolves to no address")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return host, port, path, targets


def post(url: str, body: bytes, headers: dict[str, str], policy: AddressPolicy,
         timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> PostResult:
    """POST ``body`` to ``url`` once; never raises for the receiver's or the network's faults."""
    started = time.monotonic()

    def result(code: int | None, error: str | None, excerpt: str = "", to: str | None = None) -> PostResult:
        return PostResult(code, int((time.monotonic() - started) * 1000), error, excerpt, to)

    try:
        host, port, path, targets = resolve(url, policy)
    except RefusedDestination as exc:
        return result(None, f"refused: {exc}")
    family, sockaddr = targets[0]
    connected_to = f"{sockaddr[0]}:{sockaddr[1]}"
    sock = socket.socket(family, socket.SOCK_STREAM)
    # The whole attempt is bounded: at the deadline the socket is shut down, which ends any
    # blocking connect, send or receive at once (a per-call timeout alone lets a receiver that
    # drips one byte at a time hold the attempt for ever).
    watchdog = threading.Timer(timeout, _shutdown, args=(sock,))
    watchdog.daemon = True
    watchdog.start()
    conn: http.client.HTTPConnection | None = None
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        stream: socket.socket = sock
        if url.lower().startswith("https"):
            stream = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = stream  # talk over the checked connection; Host header from the URL
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        excerpt = response.read(RESPONSE_BODY_LIMIT_BYTES).decode("utf-8", "replace")
        error = None
        if 300 <= response.status < 400:
            error = f"redirect to {response.getheader('location', '?')!r} not followed"
        elif not 200 <= response.status < 300:
            error = f"HTTP {response.status}"
        return result(response.status, error, excerpt, connected_to)
    except (OSError, http.client.HTTPException) as exc:
        late = time.monotonic() - started >= timeout
        what = f"timed out after {timeout:g} s" if late else f"{exc.__class__.__name__}: {exc}".strip()
        return result(None, what, "", connected_to)
    finally:
        watchdog.cancel()
        if conn is not None:
            conn.close()
        sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
