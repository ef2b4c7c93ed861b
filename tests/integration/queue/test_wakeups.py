"""Idle workers sleep on their queue's Redis wake-up channel instead of polling (issue 16): a nudge
whose wake-up is lost waits for the relay's sweep, which wakes the queue again; the safety poll is
set far beyond the test so that only a wake-up can make the worker look."""

from __future__ import annotations

import dramatiq

from tests.integration.queue.conftest import World, enqueue, job, wait_status
from workers.broker import ACTOR_NAME, close_broker, make_broker
from workers.relay import Relay

#: Safety poll of the workers in these tests: longer than any test runs.
NEVER_MS = 600_000


def test_lost_wake_up_is_recovered_by_the_sweep(in_process, settings, conn, world: World) -> None:
    """A nudge sent without its wake-up is fetched once the relay's sweep publishes one."""
    w = in_process(threads=1, relay=False, worker_poll_ms=NEVER_MS)
    job_id = enqueue(conn, world.asset)  # its NOTIFY reaches no relay: none is running
    # The nudge reaches Redis, its wake-up is dropped (as Redis pub/sub may drop one).
    w.broker.enqueue(dramatiq.Message(queue_name=settings.queue_name, actor_name=ACTOR_NAME, args=(),
                                      kwargs={}, options={}), wake=False)
    assert w.broker.client.llen(f"{w.broker.namespace}:{settings.queue_name}") == 1  # not fetched
    assert job(conn, job_id)["status"] == "pending"
    relay = Relay(database_url=settings.database_url, broker=make_broker(settings.redis_url),
                  queue_name=settings.queue_name, lease_seconds=settings.lease_seconds,
                  sweep_interval=settings.sweep_interval_seconds, retention_days=settings.job_retention_days)
    try:
        swept = relay.sweep()
        assert swept["nudged"] == 0  # the waiting nudge counts: only the wake-up was missing
        wait_status(conn, job_id, "completed")
    finally:
        relay.store.close()
        close_broker(relay.broker)


def test_idle_worker_is_woken_by_the_relay(in_process, conn, world: World) -> None:
    """With a safety poll that never comes, a job enqueued for idle workers runs: the relay's nudge
    wakes them."""
    in_process(threads=2, worker_poll_ms=NEVER_MS)
    job_id = enqueue(conn, world.asset)
    wait_status(conn, job_id, "completed")
