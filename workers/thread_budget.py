"""How many threads each ffmpeg run of a worker may use: its job slot's share of the CPUs.

A worker runs ``worker_processes × worker_threads`` jobs at once; each ffmpeg would otherwise start
about as many threads per codec as the machine has cores, so four concurrent encodes on a 2-core
host run dozens of threads that fight for two cores. The share counts the CPUs this process may
really use: its CPU affinity and, in a container, its cgroup's CPU quota (``cpu.max`` in cgroup v2,
``cpu.cfs_quota_us``/``cpu.cfs_period_us`` in v1), the smallest along the cgroup's path, since
Kubernetes and Docker limit a container by quota while ``os.cpu_count()`` still counts the host.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

#: Where the kernel says which cgroup this process is in, and where cgroupfs is mounted.
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _quota_in(directory: Path, v2: bool) -> float | None:
    """The CPU quota of one cgroup directory, in CPUs; None when it has none."""
    try:
        if v2:
            quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
            if quota == "max":
                return None
            return int(quota) / int(period or 100_000)
        quota_us = int((directory / "cpu.cfs_quota_us").read_text())
        period_us = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _quotas_up(base: Path, path: str, v2: bool) -> list[float]:
    """Quotas of the cgroup at ``path`` under ``base`` and of each parent up to ``base``.

    In a container without a cgroup namespace the path names a host cgroup that is not mounted
    inside: the walk then reaches ``base``, which is the container's own cgroup."""
    found = []
    directory = base / path.strip("/")
    while True:
        quota = _quota_in(directory, v2)
        if quota is not None:
            found.append(quota)
        if directory == base or base not in directory.parents:
            return found
        directory = directory.parent


def cgroup_cpu_limit(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup, in CPUs (1.5 for 150000/100000); None when unlimited."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            # cgroup v2 (unified; in a hybrid layout it is mounted at root/unified).
            for base in (root, root / "unified"):
                quotas += _quotas_up(base, path, v2=True)
        elif "cpu" in controllers.split(","):
            for name in (controllers, "cpu", "cpu,cpuacct"):
                if (root / name).is_dir():
                    quotas += _quotas_up(root / name, path, v2=False)
                    break
    return min(quotas) if quotas else None


def available_cpus(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float:
    """CPUs this process may use: its affinity, capped by its cgroup's CPU quota."""
    cpus: float = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_limit(proc_cgroup, root)
    return min(cpus, quota) if quota is not None else cpus


def ffmpeg_threads(setting: int, processes: int, threads: int, cpus: float) -> int:
    """Threads per ffmpeg run: ``setting`` when set (> 0); else (auto) the CPUs shared by the
    ``processes × threads`` job slots, rounded down (a budget that never adds up to more threads
    than CPUs), and at least 1."""
    if setting > 0:
        return setting
    return max(1, math.floor(cpus / (processes * threads)))
