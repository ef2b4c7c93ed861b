"""The storage sweep: removes output files that no row points at, after a grace period.

Fenced outputs (:mod:`contentforge.output_keys`) never overwrite: every attempt writes keys of its
own, and the asset's row points at the winner's. What no row points at is garbage once it is old
enough: files of attempts that lost (a worker that kept running, or uploaded late, after its lease
was taken over), results replaced by a re-run, and files of assets that no longer exist. The sweep
lists the store, keeps every key that is not an output key (originals, other tools' files), asks
PostgreSQL which of the rest are still in use (``app_private.output_keys_in_use``: an asset's
variant or original, or a file of an attempt that is still running and may yet win), and deletes
the others whose write time is older than the grace period. Files written after the listing are
judged by the next run, so a late upload is never missed, only delayed.

Safe to run twice, or on two hosts at once: a key is deleted only when no row points at it, and
no row can start pointing at an old file (only the running attempt holding a key's token can).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from contentforge.logging import get_logger
from contentforge.output_keys import is_sweepable
from contentforge.storage import Storage, StoredObject
from schema.named_queries import queries

log = get_logger(__name__)

#: Keys asked about in one query (a bounded array parameter).
CHECK_BATCH = 1000


@dataclass
class SweepResult:
    listed: int = 0  # objects in the store
    candidates: int = 0  # of those, output keys the sweep judges
    in_use: int = 0  # kept: a row points at them or their attempt still runs
    too_young: int = 0  # kept: unused, but written within the grace period
    removed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def sweep_outputs(conn: psycopg.Connection[Any], storage: Storage, grace: dt.timedelta, *,
                  now: dt.datetime | None = None) -> SweepResult:
    """Delete the output files of ``storage`` that no row points at and are older than ``grace``.

    ``conn`` is an autocommit connection to the database whose rows point at the files. The age is
    measured against the store's own write times (file mtime, S3 LastModified) and this host's
    clock: keep the grace far above any clock difference (hours, not seconds).
    """
    cutoff = (now or dt.datetime.now(dt.UTC)) - grace
    result = SweepResult()
    objects = storage.list_objects()
    result.listed = len(objects)
    candidates = [o for o in objects if is_sweepable(o.key)]
    result.candidates = len(candidates)
    sql = queries("storage")["output_keys_in_use"]
    for start in range(0, len(candidates), CHECK_BATCH):
        batch = candidates[start:start + CHECK_BATCH]
        with conn.cursor(row_factory=tuple_row) as cur:
            in_use = {r[0] for r in cur.execute(sql, {"keys": [o.key for o in batch]}).fetchall()}
        for obj in batch:
            if obj.key in in_use:
                result.in_use += 1
            elif obj.modified > cutoff:
                result.too_young += 1
            else:
                _remove(storage, obj)
                result.removed += 1
    log.info("storage sweep", **result.as_dict(), grace_seconds=grace.total_seconds())
    return result


def _remove(storage: Storage, obj: StoredObject) -> None:
    storage.delete(obj.key)
    log.debug("removed an output file no row points at", key=obj.key, written=obj.modified.isoformat())


__all__ = ["SweepResult", "sweep_outputs"]
