"""Prometheus multiprocess files of the worker processes: served together, folded in when a process dies.

In multiprocess mode each worker process writes its counters and histograms to
``<type>_<pid>.db`` files in ``PROMETHEUS_MULTIPROC_DIR``, and the supervisor's endpoint sums all
files at every scrape. A process that dies leaves its files behind; without cleanup every restart
adds files (a crash loop adds hundreds) and every scrape reads them all. When a worker process
exits, :func:`fold_dead_process` adds its values into one ``<type>_archive.db`` file per type and
deletes its files, so totals never go backwards and the directory holds one file per live process
plus one archive per type. A lock shared with :class:`LockedMultiProcessCollector` keeps a scrape
from seeing a value both in the dead file and in the archive.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

#: Metric types whose per-process values add up (gauges are per process and need no archive).
SUMMED_TYPES = ("counter", "histogram", "summary")

_lock = threading.Lock()


class LockedMultiProcessCollector(MultiProcessCollector):
    """MultiProcessCollector that does not read the directory while a dead process is folded in."""

    def collect(self) -> Iterable[Metric]:
        with _lock:
            return list(super().collect())


def fold_dead_process(pid: int, path: str) -> int:
    """Fold the metric files of dead process ``pid`` into the archives; return files removed."""
    removed = 0
    with _lock:
        mark_process_dead(pid, path)  # live gauges: simply dropped
        for typ in SUMMED_TYPES:
            dead = os.path.join(path, f"{typ}_{pid}.db")
            if not os.path.exists(dead):
                continue
            archive = MmapedDict(os.path.join(path, f"{typ}_archive.db"))
            try:
                for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(dead):
                    old_value, old_ts = archive.read_value(key)
                    archive.write_value(key, old_value + value, max(old_ts, timestamp))
            finally:
                archive.close()
            os.remove(dead)
            removed += 1
        # Gauges in other modes ("all", "min", ...) of a dead process carry its pid label: drop them.
        for stale in glob.glob(os.path.join(path, f"gauge_*_{pid}.db")):
            os.remove(stale)
            removed += 1
    return removed
