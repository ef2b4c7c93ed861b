"""The wake-up path of an idle worker (issue 16): the relay's first nudge on a NOTIFY waits for no
query, a nudge and its wake-up are one Redis command, and a consumer whose fetch emptied the queue
sleeps on its wake-up channel instead of fetching again. Real PostgreSQL and Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import dramatiq
import psycopg
import pytest

from contentforge.settings import Settings
from tests.integration.queue.conftest import World, enqueue
from workers.broker import ACTOR_NAME, WakingRedisBroker, close_broker, make_broker, queue_size
from workers.relay import Relay


@pytest.fixture
def broker(settings: Settings) -> Iterator[WakingRedisBroker]:
    b = make_broker(settings.redis_url or "")
    try:
        yield b
    finally:
        b.flush(settings.queue_name)
        close_broker(b)


def _count_commands(broker: WakingRedisBroker) -> list[str]:
    """Record the name of every command the broker's client sends from now on (to real Redis)."""
    sent: list[str] = []
    execute = broker.client.execute_command

    def counting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return execute(*args, **options)

    broker.client.execute_command = counting  # type: ignore[method-assign]
    return sent


def _nudge_message(queue: str) -> dramatiq.Message:
    return dramatiq.Message(queue_name=queue, actor_name=ACTOR_NAME, args=(), kwargs={}, options={})


def test_a_nudge_and_its_wake_up_are_one_redis_command(settings: Settings, broker: WakingRedisBroker) -> None:
    """Enqueueing a nudge with its wake-up sends one command to Redis, and a subscriber of the queue's channel is woken."""
    pubsub = broker.client.pubsub()
    pubsub.subscribe(broker.wake_channel(settings.queue_name))
    try:
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"
        broker.enqueue(_nudge_message(settings.queue_name))  # Redis now holds the script (else: load, retry)
        assert pubsub.get_message(timeout=2)["type"] == "message"
        sent = _count_commands(broker)
        broker.enqueue(_nudge_message(settings.queue_name))
        assert len(sent) == 1
        assert queue_size(broker, settings.queue_name) == 2
        assert pubsub.get_message(timeout=2)["type"] == "message"
    finally:
        pubsub.close()


def test_nudges_sent_together_are_fetched_and_acked_by_dramatiq(settings: Settings,
                                                                broker: WakingRedisBroker) -> None:
    """Several nudges sent in one command are stored as Dramatiq stores messages: its consumer fetches and acks them."""
    queue = settings.queue_name
    broker.declare_queue(queue)
    assert broker.nudge(queue, 3) == 3
    consumer = broker.consume(queue, prefetch=4, timeout=100)
    try:
        got = [next(consumer) for _ in range(3)]
        assert all(m is not None and m.actor_name == ACTOR_NAME for m in got)
        for m in got:
            consumer.ack(m)
        assert queue_size(broker, queue) == 0
        assert broker.client.hlen(f"{broker.namespace}:{queue}.msgs") == 0
    finally:
        consumer.close()


def test_only_if_idle_sends_nothing_while_a_nudge_waits(settings: Settings, broker: WakingRedisBroker) -> None:
    """A nudge sent only if the queue is idle is not sent while another nudge waits there."""
    assert broker.nudge(settings.queue_name, 1, only_if_idle=True) == 1
    assert broker.nudge(settings.queue_name, 1, only_if_idle=True) == 0
    assert queue_size(broker, settings.queue_name) == 1


def test_a_notification_nudges_before_any_query(conn: psycopg.Connection, world: World, settings: Settings,
                                                broker: WakingRedisBroker) -> None:
    """On a NOTIFY (one pool takes every job type) the nudge is in Redis before the relay sends PostgreSQL anything."""
    relay = Relay(database_url=settings.database_url or "", broker=broker, queue_name=settings.queue_name,
                  lease_seconds=3, sweep_interval=1, retention_days=7)
    try:
        relay.top_up()  # a relay that has run reads the pools at every top-up
        enqueue(conn, world.asset)
        waiting_at_first_query: list[int] = []
        run = relay.store.run

        def observed(fn: Any, **kw: Any) -> Any:
            if not waiting_at_first_query:
                waiting_at_first_query.append(queue_size(broker, settings.queue_name))
            return run(fn, **kw)

        relay.store.run = observed  # type: ignore[method-assign]
        assert relay.notified() == 1
        assert waiting_at_first_query == [1]
    finally:
        relay.store.close()


def test_a_consumer_that_emptied_the_queue_waits_for_a_wake_up(settings: Settings,
                                                               broker: WakingRedisBroker) -> None:
    """After a fetch that returned fewer nudges than it asked for, the consumer sleeps until a wake-up, without fetching again."""
    queue = settings.queue_name
    broker.declare_queue(queue)
    broker.enqueue(_nudge_message(queue))
    consumer = broker.consume(queue, prefetch=4, timeout=300)
    fetches = 0
    fetch = broker.do_fetch

    def counting(*args: Any) -> Any:
        nonlocal fetches
        fetches += 1
        return fetch(*args)

    broker.do_fetch = counting  # type: ignore[method-assign]
    try:
        first = next(consumer)
        assert first is not None and fetches == 1
        assert next(consumer) is None  # slept the safety poll: no wake-up came
        assert fetches == 1
        # A nudge sent while it sleeps wakes it, and it fetches at once.
        threading.Timer(0.05, lambda: broker.enqueue(_nudge_message(queue))).start()
        assert next(consumer) is None  # the safety poll's fetch finds nothing; then woken
        assert next(consumer) is not None
    finally:
        consumer.close()


def test_a_consumer_with_a_full_prefetch_waits_for_an_ack_instead_of_polling(
        settings: Settings, broker: WakingRedisBroker) -> None:
    """A consumer whose prefetch is full comes back to Dramatiq once, when a thread acks, not at every poll meanwhile."""
    queue = settings.queue_name
    broker.declare_queue(queue)
    broker.nudge(queue, 2)
    consumer = broker.consume(queue, prefetch=1, timeout=30_000)
    try:
        first = next(consumer)
        assert first is not None
        threading.Timer(0.3, lambda: consumer.ack(first)).start()
        returns = 0
        while (second := next(consumer)) is None:
            returns += 1
        assert returns == 1
        consumer.ack(second)
    finally:
        consumer.close()
