"""The self-fence's arithmetic: a job is stopped at lease - margin after its last renewal was sent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from contentforge.settings import Settings
from workers.fence import SelfFence, fence_tick, renew_interval, renew_timeout


@dataclass
class Job:
    last_renewed: float
    job_id: uuid.UUID = field(default_factory=uuid.uuid4)
    reason: str | None = None

    def is_stopped(self) -> bool:
        return self.reason is not None

    def stop(self, reason: str) -> None:
        self.reason = reason


def test_a_job_is_stopped_at_lease_minus_margin_after_its_last_renewal() -> None:
    """With a 6 s lease and the default margin (2 s), the fence fires 4 s after the last renewal, not before."""
    jobs = [Job(last_renewed=100.0), Job(last_renewed=101.0)]
    fence = SelfFence(Settings(lease_seconds=6), lambda: jobs)
    assert fence.check(now=103.99) == 0
    assert fence.check(now=104.0) == 1
    assert jobs[0].reason and jobs[0].reason.startswith("self-fenced") and jobs[1].reason is None
    assert fence.check(now=104.5) == 0, "a stopped job is not stopped again"
    assert fence.check(now=105.0) == 1


def test_renewals_and_checks_fit_inside_the_margin() -> None:
    """Three renewals before the deadline, each bounded by less than the margin, and several checks per margin."""
    for settings in (Settings(lease_seconds=30), Settings(lease_seconds=6), Settings(lease_seconds=6, lease_margin_seconds=1)):
        margin = settings.lease_margin
        assert 3 * renew_interval(settings) == pytest.approx(settings.lease_seconds - margin)
        assert renew_timeout(settings) < margin
        assert fence_tick(settings) <= margin / 4


def test_a_margin_of_half_the_lease_or_more_is_refused() -> None:
    """The margin must leave time to renew: at least half the lease is a configuration error."""
    with pytest.raises(ValueError, match="must be under half of lease_seconds"):
        Settings(lease_seconds=6, lease_margin_seconds=3)
