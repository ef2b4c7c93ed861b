"""The auto rule of CONTENTFORGE_FFMPEG_THREADS: CPUs (affinity, cgroup quota) shared by job slots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contentforge.settings import Settings
from workers import thread_budget as tb
from workers.job_options import media_limits


@pytest.mark.parametrize(("setting", "processes", "threads", "cpus", "expected"), [
    (3, 8, 8, 2.0, 3),   # an explicit setting wins
    (0, 1, 1, 8.0, 8),   # one job slot gets every CPU
    (0, 1, 2, 4.0, 2),   # the heavy pool of deploy/kubernetes: 4 CPUs, 2 slots
    (0, 2, 2, 2.0, 1),   # more slots than CPUs: one thread each, never 0
    (0, 1, 2, 5.0, 2),   # 2.5 rounded down: the slots never hold more threads than CPUs
    (0, 1, 4, 1.5, 1),   # a fractional quota
])
def test_auto_rule_shares_the_cpus_between_job_slots(setting: int, processes: int, threads: int,
                                                     cpus: float, expected: int) -> None:
    """0 means auto: floor(cpus / (processes × threads)), at least 1; a positive setting is used as is."""
    assert tb.ffmpeg_threads(setting, processes, threads, cpus) == expected


def _cgroup(tmp_path: Path, line: str) -> tuple[Path, Path]:
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(line + "\n")
    root = tmp_path / "sys-fs-cgroup"
    root.mkdir()
    return proc, root


def test_cgroup_v2_quota_is_read_along_the_path(tmp_path: Path) -> None:
    """cgroup v2: cpu.max of the process's cgroup and its parents; the smallest quota counts."""
    proc, root = _cgroup(tmp_path, "0::/kubepods/pod1/ctr")
    (root / "kubepods/pod1/ctr").mkdir(parents=True)
    (root / "kubepods/cpu.max").write_text("max 100000\n")
    (root / "kubepods/pod1/cpu.max").write_text("250000 100000\n")
    (root / "kubepods/pod1/ctr/cpu.max").write_text("150000 100000\n")
    assert tb.cgroup_cpu_limit(proc, root) == 1.5
    (root / "kubepods/pod1/cpu.max").write_text("50000 100000\n")
    assert tb.cgroup_cpu_limit(proc, root) == 0.5
    assert tb.available_cpus(proc, root) == 0.5


def test_no_quota_means_no_limit(tmp_path: Path) -> None:
    """cpu.max "max" (v2), cfs_quota_us -1 (v1) or no cgroup file at all: the affinity alone counts."""
    proc, root = _cgroup(tmp_path, "0::/user.slice")
    (root / "user.slice").mkdir()
    (root / "user.slice/cpu.max").write_text("max 100000\n")
    assert tb.cgroup_cpu_limit(proc, root) is None
    assert tb.available_cpus(proc, root) == len(os.sched_getaffinity(0))
    assert tb.cgroup_cpu_limit(tmp_path / "missing", root) is None


def test_cgroup_v1_quota_and_a_container_without_cgroup_namespace(tmp_path: Path) -> None:
    """cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us; when the process's path is a host cgroup
    not mounted in the container, the mounted root (the container's own cgroup) is read."""
    proc, root = _cgroup(tmp_path, "4:cpu,cpuacct:/docker/0123abcd")
    (root / "cpu,cpuacct").mkdir()
    (root / "cpu,cpuacct/cpu.cfs_quota_us").write_text("200000\n")
    (root / "cpu,cpuacct/cpu.cfs_period_us").write_text("100000\n")
    assert tb.cgroup_cpu_limit(proc, root) == 2.0
    (root / "cpu,cpuacct/docker/0123abcd").mkdir(parents=True)
    (root / "cpu,cpuacct/docker/0123abcd/cpu.cfs_quota_us").write_text("-1\n")
    (root / "cpu,cpuacct/docker/0123abcd/cpu.cfs_period_us").write_text("100000\n")
    assert tb.cgroup_cpu_limit(proc, root) == 2.0  # the parent's quota still holds
    (root / "cpu,cpuacct/cpu.cfs_quota_us").write_text("-1\n")
    assert tb.cgroup_cpu_limit(proc, root) is None


def test_this_machine_cgroup_is_read_without_error() -> None:
    """On the machine running the tests the real /proc and /sys/fs/cgroup give a positive CPU count."""
    assert 0 < tb.available_cpus() <= (os.cpu_count() or 1)


def test_worker_limits_carry_the_resolved_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's MediaLimits get a thread count: auto from the settings' slots, or the setting."""
    monkeypatch.setenv("CONTENTFORGE_WORKER_PROCESSES", "1")
    monkeypatch.setenv("CONTENTFORGE_WORKER_THREADS", "1")
    auto = media_limits(Settings(_env_file=None))
    assert auto.ffmpeg_threads == max(1, int(tb.available_cpus()))
    monkeypatch.setenv("CONTENTFORGE_FFMPEG_THREADS", "3")
    assert media_limits(Settings(_env_file=None)).ffmpeg_threads == 3
    monkeypatch.setenv("CONTENTFORGE_FFMPEG_THREADS", "-1")
    with pytest.raises(ValueError, match="ffmpeg_threads"):
        Settings(_env_file=None)
