"""Connection strings with their secrets hidden, safe to print and log.

Parsed, never pattern-matched: PostgreSQL URLs and keyword strings (``host=… password=…``, and
``?password=`` in a URL) with psycopg's conninfo parser (libpq's own), Redis URLs
(``redis://:pw@host``, ``?password=``) with redis-py's URL parser. What cannot be parsed is not
shown at all.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

HIDDEN = "***"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def redact(url: str) -> str:
    """``url`` (a PostgreSQL or Redis connection string) with any password replaced by ``***``."""
    if url.startswith(_REDIS_SCHEMES):
        return _redact_redis(url)
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "<a connection string that could not be parsed>"
    if info.get("password") is None:
        return url
    if url.startswith(_POSTGRES_SCHEMES):
        # Keep a URL a URL when the parser confirms the rewritten one hides the password.
        shown = _url_without_password(url)
        try:
            if conninfo_to_dict(shown).get("password") == HIDDEN:
                return shown
        except psycopg.Error:
            pass
    info["password"] = HIDDEN
    return make_conninfo(**info)


def _url_without_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{HIDDEN}@{hosts}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"]
    if "@" not in parts.netloc:
        query.append(("password", HIDDEN))
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))


def _redact_redis(url: str) -> str:
    from redis.connection import parse_url

    try:
        kw = parse_url(url)
    except ValueError:
        return "<a Redis URL that could not be parsed>"
    scheme = url.split("://", 1)[0]
    user = kw.get("username") or ""
    auth = ""
    if kw.get("password") is not None:
        auth = f"{quote(user)}:{HIDDEN}@"
    elif user:
        auth = f"{quote(user)}@"
    if scheme == "unix":
        return f"unix://{auth}{kw.get('path', '')}?db={kw.get('db', 0)}"
    return f"{scheme}://{auth}{kw.get('host', '')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
