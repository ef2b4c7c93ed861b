"""Worker hosts partitioned from PostgreSQL, Redis, S3 or everything mid-job, then healed.

Hosts are network namespaces (tests/partitions/cluster.py): an infra host with its own PostgreSQL
15, Redis and moto S3 server, and two worker hosts running real `contentforge worker` processes.
Each case cuts worker host w1 off while it runs jobs and heals it, and then checks, over that case's
jobs: every job completed exactly once as the asset sees it (one job.completed event), none lost;
each asset names the winning attempt's file and that file holds the winner's bytes; after the
storage sweep no output file is left that no row names.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.integration.queue.conftest import wait_for
from tests.partitions.cluster import (
    Cluster,
    Host,
    Verdict,
    enqueue_noops,
    make_assets,
    unavailable,
    unfinished,
    verdict,
)

pytestmark = [pytest.mark.partitions, pytest.mark.slow]

#: Lease of the workers (short, so that a partition outlives it within seconds).
LEASE = 6
#: Each job sleeps this long: long enough to be mid-flight when the cut comes.
JOB_SECONDS = 4.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = unavailable()
    if reason:
        pytest.skip(f"partition tests need network namespaces: {reason}")
    c = Cluster(workers=2, lease_seconds=LEASE).start()
    try:
        yield c
    finally:
        c.close()


def _running_on(cluster: Cluster, host: Host, jobs: list[uuid.UUID]) -> list[uuid.UUID]:
    with cluster.connect() as conn:
        return [r["id"] for r in conn.execute(
            "SELECT id FROM asset_processing_jobs WHERE id = ANY(%s) AND status = 'running' AND worker_id LIKE %s",
            (jobs, f"{host.name}:%")).fetchall()]


def _partition_case(cluster: Cluster, service: str | None, hold: Callable[[list[uuid.UUID]], bool]) -> Verdict:
    w1 = cluster.workers[0]
    with cluster.connect() as conn:
        jobs = enqueue_noops(conn, make_assets(conn, 6), sleep_seconds=JOB_SECONDS)
    victims = wait_for(lambda: _running_on(cluster, w1, jobs), 30, f"a job running on {w1.name}")
    cluster.cut(w1, service)
    try:
        wait_for(lambda: hold(victims), 30, f"the cut of {w1.name} from {service or 'everything'} to take effect")
    finally:
        cluster.heal(w1)
    with cluster.connect() as conn:
        wait_for(lambda: unfinished(conn, jobs) == 0, 60, "every job to finish after the heal")
    v = verdict(cluster, jobs)
    assert v.ok, v.summary() + f"\n{v}\n--- {w1.name} log tail ---\n{cluster.log(w1)[-3000:]}"
    return v


def _taken_over(cluster: Cluster, jobs: list[uuid.UUID]) -> bool:
    """Every job w1 held was completed by another host (its lease expired, w2 ran it)."""
    with cluster.connect() as conn:
        rows = conn.execute("SELECT status, worker_id FROM asset_processing_jobs WHERE id = ANY(%s)", (jobs,)).fetchall()
    return all(r["status"] == "completed" and not r["worker_id"].startswith("w1:") for r in rows)


def test_a_worker_cut_off_from_postgresql_loses_its_jobs_to_another_host(cluster: Cluster) -> None:
    """w1 loses PostgreSQL mid-job: it stops the job before its lease ends, w2 takes it over, nothing is doubled."""
    assert _partition_case(cluster, "postgres", lambda jobs: _taken_over(cluster, jobs)).retried >= 1
    assert "job self-fenced" in cluster.log(cluster.workers[0])


def test_a_worker_cut_off_from_everything_loses_its_jobs_to_another_host(cluster: Cluster) -> None:
    """w1 loses every link mid-job: the same as PostgreSQL alone, and its late uploads cannot land either."""
    assert _partition_case(cluster, None, lambda jobs: _taken_over(cluster, jobs)).retried >= 1


def test_a_worker_cut_off_from_s3_finishes_after_the_heal(cluster: Cluster) -> None:
    """w1 cannot upload for a lease's time: its uploads wait (or fail and are retried), and each job completes once."""
    until = time.monotonic() + LEASE
    _partition_case(cluster, "s3", lambda _jobs: time.monotonic() >= until)


def test_a_worker_cut_off_from_redis_finishes_what_it_holds(cluster: Cluster) -> None:
    """w1 loses only the nudges: the jobs it holds finish there (the row, not Redis, is the truth)."""
    def finished(jobs: list[uuid.UUID]) -> bool:
        with cluster.connect() as conn:
            return unfinished(conn, jobs) == 0

    _partition_case(cluster, "redis", finished)
