"""The HTTP status PostgREST answers for a PostgreSQL error, from PostgREST's documented table.

Source: PostgREST's "Errors" reference, section "HTTP Status Codes" and "RAISE errors with HTTP
Status Codes" (https://docs.postgrest.org/en/stable/references/errors.html). Rows are tried in the
documented order: exact codes before the class wildcard they refine, and ``PTxyz`` answers xyz.
"""

from __future__ import annotations

#: (SQLSTATE or class prefix ending in "*", HTTP status), in the documentation's order.
TABLE: list[tuple[str, int]] = [
    ("08*", 503), ("09*", 500), ("0L*", 403), ("0P*", 403),
    ("23503", 409), ("23505", 409),
    ("25006", 405), ("25*", 500),
    ("28*", 403), ("2D*", 500), ("38*", 500), ("39*", 500), ("3B*", 500), ("40*", 500),
    ("53*", 503), ("54*", 413), ("55*", 500), ("57*", 500), ("58*", 500),
    ("F0*", 500), ("HV*", 500),
    ("P0001", 400), ("P0*", 500), ("XX*", 500),
    ("42883", 404), ("42P01", 404),
]


def http_status(sqlstate: str, *, authenticated: bool) -> int:
    """PostgREST's HTTP status for ``sqlstate``; 42501 is 403 when authenticated, else 401."""
    if sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    if sqlstate == "42501":
        return 403 if authenticated else 401
    for code, status in TABLE:
        if code.endswith("*") and sqlstate.startswith(code[:-1]):
            return status
        if code == sqlstate:
            return status
    return 400  # "other"
