"""Pools and per-process type limits, without services: settings parsing and the claim gate."""

from __future__ import annotations

import threading
import uuid

import pytest

from contentforge.errors import ConfigurationError
from contentforge.settings import Settings
from workers.pools import (
    ALL_POOL,
    DEFAULT_POOLS,
    POOL_STALE_SECONDS,
    Pool,
    TypeGate,
    named_pools,
    resolve_pool,
    type_limits,
)


def settings(**kw: str) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


def test_no_pool_serves_every_type_on_the_plain_queue() -> None:
    """A worker without a pool claims every type (None) and reads the plain queue name."""
    pool = resolve_pool(settings())
    assert pool == Pool(ALL_POOL, None) and pool.queue("contentforge") == "contentforge"


def test_named_and_adhoc_pools() -> None:
    """--pool names a built-in or configured pool; --job-types equal to a named pool shares its queue."""
    assert resolve_pool(settings(worker_pool="light")).job_types == ("metadata", "optimize", "thumbnail")
    assert resolve_pool(settings(worker_job_types="transcript,transcode")).name == "heavy"
    adhoc = resolve_pool(settings(worker_job_types="thumbnail,noop"))
    assert adhoc == Pool("types-noop-thumbnail", ("noop", "thumbnail"))
    assert adhoc.queue("cf") == "cf-types-noop-thumbnail"
    custom = resolve_pool(settings(worker_pool="gpu", worker_pools="gpu=transcript; light=thumbnail"))
    assert custom.job_types == ("transcript",)
    assert named_pools("light=thumbnail")["light"] == ("thumbnail",) and "heavy" in named_pools("")
    assert set(DEFAULT_POOLS) == {"light", "heavy"}


@pytest.mark.parametrize(("kw", "message"), [
    ({"worker_pool": "gpu"}, "unknown pool 'gpu'"),
    ({"worker_job_types": "thumbnail,resize"}, "unknown job type resize"),
    ({"worker_job_types": " , "}, "no job type named"),
    ({"worker_pool": "light", "worker_job_types": "thumbnail"}, "not both"),
    ({"worker_pools": "Bad Name=thumbnail"}, "is not name=type,type"),
])
def test_bad_pools_are_refused(kw: dict[str, str], message: str) -> None:
    """A pool setting that names nothing real is a configuration error (exit 2) saying what is wrong."""
    with pytest.raises(ConfigurationError, match=message):
        resolve_pool(settings(**kw))


def test_type_limits_parse_and_refuse() -> None:
    """transcode=1,transcript=2 parses; zero, junk and unknown types are refused."""
    assert type_limits("transcode=1, transcript=2") == {"transcode": 1, "transcript": 2}
    assert type_limits("") == {}
    for bad in ("transcode=0", "transcode", "transcode=x", "resize=1"):
        with pytest.raises(ConfigurationError):
            type_limits(bad)


def test_gate_asks_only_for_types_below_their_limit() -> None:
    """With transcode limited to 1, the second claim in flight asks for everything but transcode."""
    gate = TypeGate(("thumbnail", "transcode"), {"transcode": 1})
    first = gate.reserve()
    assert first.types == ["thumbnail", "transcode"] and first.reserved == ("transcode",)
    second = gate.reserve()
    assert second.types == ["thumbnail"] and second.reserved == ()
    job = uuid.uuid4()
    gate.settle(first, job, "transcode")  # the first claim got a transcode: it keeps the slot
    gate.settle(second, None, None)
    assert gate.reserve().types == ["thumbnail"]
    gate.finished(job)
    gate.finished(job)  # idempotent
    assert gate.running() == {"transcode": 0}
    assert gate.reserve().types == ["thumbnail", "transcode"]


def test_gate_with_only_limited_types_asks_for_nothing_when_full() -> None:
    """A pool of one limited type at its limit skips the claim (nothing to ask for)."""
    gate = TypeGate(("transcode",), {"transcode": 1})
    gate.settle(gate.reserve(), uuid.uuid4(), "transcode")
    assert gate.reserve().nothing


def test_gate_never_hands_out_more_slots_than_the_limit_under_threads() -> None:
    """Eight threads reserving and keeping slots at once never hold more than the limit of 2."""
    gate = TypeGate(None, {"transcode": 2})
    kept: list[uuid.UUID] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        r = gate.reserve()
        job = uuid.uuid4() if "transcode" in r.reserved else None
        gate.settle(r, job, "transcode" if job else None)
        if job:
            with lock:
                kept.append(job)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(kept) == 2 and gate.running() == {"transcode": 2}


def test_cli_stale_window_equals_the_workers() -> None:
    """`jobs stats` counts a pool as running for as long as the relay does."""
    from cli.fleet import POOL_STALE_SECONDS as CLI_STALE

    assert CLI_STALE == POOL_STALE_SECONDS


def test_the_end_of_a_lost_attempt_keeps_the_next_claims_slot() -> None:
    """A completion that found its job lost may claim the same job again (the relay re-queued it):
    the end of the old attempt must not free the slot of the new claim (slots were keyed by job id)."""
    from datetime import UTC, datetime

    from workers.claim import ClaimedJob

    def claim_of(job_id: uuid.UUID) -> ClaimedJob:
        now = datetime.now(UTC)
        return ClaimedJob(job_id, uuid.uuid4(), uuid.uuid4(), "transcode", 0, {}, 1, 3, now, now,
                          claim_token=uuid.uuid4())

    gate = TypeGate(("transcode",), {"transcode": 1})
    job_id = uuid.uuid4()
    lost, again = claim_of(job_id), claim_of(job_id)
    gate.settle(gate.reserve(), lost.slot, "transcode")
    gate.finished(lost.slot)  # complete(): the completed (here: lost) job gives its slot back ...
    gate.settle(gate.reserve(), again.slot, "transcode")  # ... and the same job is claimed again
    gate.finished(lost.slot)  # the old attempt's lease ends (Leases.hold)
    assert gate.running() == {"transcode": 1}
    assert gate.reserve().nothing
