"""Where the services are: the configured URLs, or embedded defaults when none is set."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from contentforge.settings import Settings


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """Yield the PostgreSQL URL: DATABASE_URL, or an embedded server under data_dir while in use."""
    if settings.database_url:
        yield settings.database_url
        return
    from contentforge.embedded import embedded_postgres

    with embedded_postgres(settings.data_dir) as url:
        yield url


def session_database(settings: Settings, url: str) -> tuple[str, str]:
    """The URL for what needs a PostgreSQL session (``url`` is the one :func:`database` yielded),
    and the name of the setting it came from, for messages."""
    if settings.database_session_url:
        return settings.database_session_url, "DATABASE_SESSION_URL"
    return url, "DATABASE_URL" if settings.database_url else "the embedded PostgreSQL"


@contextlib.contextmanager
def broker(settings: Settings) -> Iterator[str]:
    """Yield the Redis URL: REDIS_URL, or an embedded Redis under data_dir while in use."""
    if settings.redis_url:
        yield settings.redis_url
        return
    from contentforge.embedded import embedded_redis

    with embedded_redis(settings.data_dir) as url:
        yield url


def storage_url(settings: Settings) -> str:
    """STORAGE_URL, or a local directory under data_dir."""
    if settings.storage_url:
        return settings.storage_url
    return (settings.data_dir.resolve() / "storage").as_uri()
