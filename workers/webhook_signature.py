"""Standard Webhooks signing: the headers of one delivery attempt.

``webhook-signature`` is ``v1,`` + base64 HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``
keyed with the base64-decoded part of a ``whsec_`` secret; during a secret rotation's overlap every
live secret signs and the signatures are space-separated (https://www.standardwebhooks.com/).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
USER_AGENT = "contentforge-webhooks/1"


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` under ``secret``."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("webhook secrets start with whsec_")
    key = base64.b64decode(secret[len(SECRET_PREFIX):])
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signed_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The request headers of one attempt: id, timestamp, every live secret's signature."""
    if not secrets:
        raise ValueError("an endpoint without a live secret cannot be signed for")
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets),
    }
