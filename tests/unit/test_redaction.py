"""Passwords never reach logs or error messages, whatever form the connection string takes; the
parsers of psycopg (libpq's conninfo) and redis-py are the oracles of what the string says."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict
from redis.connection import parse_url

from contentforge.db import redact

POSTGRES = [
    "postgresql://app:s3cret@db.example:5432/content",
    "host=db.example port=5432 user=app password=s3cret dbname=content",
    "host=db.example password = 's3cret' dbname=content",
    "postgresql://app@db.example/content?password=s3cret&sslmode=require",
]
REDIS = [
    "redis://:s3cret@cache.example:6380/2",
    "rediss://worker:s3cret@cache.example/0",
    "redis://cache.example:6379/0?password=s3cret",
]


@pytest.mark.parametrize("url", POSTGRES)
def test_postgres_passwords_are_hidden_and_the_rest_kept(url: str) -> None:
    """Every PostgreSQL form loses its password and keeps host, database and user as libpq reads them."""
    shown = redact(url)
    assert "s3cret" not in shown
    before, after = conninfo_to_dict(url), conninfo_to_dict(shown)
    assert after.pop("password") == "***"
    before.pop("password")
    assert after == before


@pytest.mark.parametrize("url", REDIS)
def test_redis_passwords_are_hidden_and_the_address_kept(url: str) -> None:
    """Every Redis form loses its password and keeps host, port and database as redis-py reads them."""
    shown = redact(url)
    assert "s3cret" not in shown
    before, after = parse_url(url), parse_url(shown)
    assert after["password"] == "***"
    assert (after["host"], after["port"], after["db"]) == (before["host"], before.get("port", 6379), before.get("db", 0))


def test_unparseable_strings_are_not_shown() -> None:
    """A string the parser rejects is replaced, not echoed (it may hold a password)."""
    assert "s3cret" not in redact("host='unterminated password=s3cret")
