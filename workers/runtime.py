"""What the actor needs in one worker process, made once when the process starts.

Settings, the job row store, the media limits and speech engine of every job, storage (ours and
Supabase Storage's), the threads' scratch directories and the leases of the jobs running here.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
import redis

from contentforge.db import PREPARED_AFTER_RUNS
from contentforge.logging import get_logger
from contentforge.services import storage_url
from contentforge.settings import Settings
from contentforge.storage import Storage, StorageKeyMissing, open_storage
from workers.claim import JobStore
from workers.fence import LeaseRenewer, connection_timeouts, renew_timeout
from workers.job_options import media_limits, speech_defaults
from workers.lease import Leases
from workers.pools import process_gate
from workers.scratch import Scratch
from workers.supabase_source import SupabaseSource

log = get_logger(__name__)


#: How long the row store's connections wait on a silent network (connect, unacknowledged data,
#: keepalives) before they give up and reconnect: the 5 s connect timeout the store always had, not
#: the whole lease (a claim retries for only 5 s).
STORE_NETWORK_WAIT_SECONDS = 5.0


class Runtime:
    """Everything the actor needs in one worker process."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        # Prepared statements only when the supervisor found DATABASE_URL to be a session ("on"):
        # "auto" left unresolved (a worker started on its own) is the safe "off".
        prepared = settings.worker_prepared_statements == "on"
        self.store = JobStore(database_url, lease_seconds=settings.lease_seconds,
                              prepare_threshold=PREPARED_AFTER_RUNS if prepared else None,
                              gate=process_gate(settings),  # the pool's job types, per-type limits
                              combine=settings.worker_combined_calls,
                              connect_options=connection_timeouts(
                                  min(settings.lease_seconds, STORE_NETWORK_WAIT_SECONDS)))
        self.limits = media_limits(settings)
        self.speech = speech_defaults(settings)
        # Renewals on a connection whose waits are bounded, and the self-fence (workers.fence).
        self.leases = Leases(self.store, settings, LeaseRenewer(
            database_url, lease_seconds=settings.lease_seconds, timeout_seconds=renew_timeout(settings)))
        self.scratch = Scratch()
        self.stopping = threading.Event()
        #: Originals uploaded into Supabase Storage (read through its S3 endpoint).
        self.supabase = SupabaseSource(settings, self.store)
        #: Sends one nudge to this process's queue (set by :func:`workers.actors.declare`); None: no re-nudging.
        self.renudge: Callable[[], Any] | None = None
        self._storage: Storage | None = None

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(storage_url(self.settings))
        return self._storage

    def nudge(self, failure: str) -> None:
        """Send one nudge to this process's queue (a Redis outage only delays: the relay sweeps)."""
        if self.renudge is None or self.stopping.is_set():
            return
        try:
            self.renudge()
        except (redis.RedisError, dramatiq.errors.BrokerError) as exc:
            log.warning(failure, error=str(exc).strip())

    def download_original(self, asset: dict[str, Any], dest: Path) -> None:
        """Download the asset's original to ``dest``.

        An original uploaded into Supabase Storage is read from there (a worker without the S3
        endpoint fails it as transient), never from our store under the object's name.
        """
        ingested = self.supabase.object_for(asset)
        if ingested is not None:
            self.supabase.get_file(ingested, dest)
            return
        try:
            self.storage.get_file(asset["storage_path"], dest)
        except StorageKeyMissing as exc:
            raise StorageKeyMissing(f"the asset's original file is missing from storage: {exc}") from exc

    def close(self) -> None:
        if (c := self.store.combiner) is not None and c.batches:  # how much combining saved, for operators
            log.info("combined calls", calls=c.batches, requests=c.requests,
                     requests_per_call=round(c.requests / c.batches, 2))
        self.store.close()
        self.leases.close()
        self.scratch.close()


_runtime: Runtime | None = None


def configure(runtime: Runtime) -> None:
    """Set the runtime the actor uses in this process."""
    global _runtime
    _runtime = runtime


def current() -> Runtime:
    """The runtime set by :func:`configure` in this process."""
    if _runtime is None:
        raise RuntimeError("workers.runtime.configure() was not called in this process")
    return _runtime


def configured() -> Runtime | None:
    """The runtime set by :func:`configure`, or None before it."""
    return _runtime


def worker_id() -> str:
    """host:pid:thread — unique per worker thread; stored on the row it leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
