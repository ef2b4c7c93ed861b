"""Where a job's output files are stored: one key prefix per attempt (fenced outputs).

Each attempt of a job (each claim) gets a new ``claim_token`` on the job's row, and writes its files
under ``{tenant}/{asset}/attempts/{claim_token}/variants/{name}``. Keys are never reused: a retried
or re-run job writes new keys, and a worker that lost its lease (a network partition, a long pause)
can only add files nobody points at, never replace the winner's. The asset's row is the pointer:
``assets.variants[name].key`` names the current file, and only the attempt that still holds the job
can change it (``app_private.record_attempt_outputs``, in the completing transaction). Files no
row points at are removed by the storage sweep (:mod:`contentforge.storage_sweep`) after a grace
period. Every key starts with the tenant id (migration 0018's rule for the own store).
"""

from __future__ import annotations

import re
import uuid

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
#: Keys the storage sweep may judge: an attempt's files, and the deterministic variant keys that
#: workers wrote before fenced outputs (``{tenant}/{asset}/variants/{name}``). Anything else
#: (originals, other tools' files) is never touched by the sweep.
SWEEPABLE_KEY = re.compile(rf"^{_UUID}/{_UUID}/(?:attempts/{_UUID}/variants|variants)/[^/].*$")


def attempt_prefix(tenant_id: uuid.UUID, asset_id: uuid.UUID, claim_token: uuid.UUID) -> str:
    """The folder of one attempt's files: ``{tenant}/{asset}/attempts/{claim_token}``."""
    return f"{tenant_id}/{asset_id}/attempts/{claim_token}"


def output_key(tenant_id: uuid.UUID, asset_id: uuid.UUID, claim_token: uuid.UUID, name: str) -> str:
    """The key of output ``name`` of the attempt holding ``claim_token``.

    Files of one attempt share a folder, so relative references between them (an HLS playlist
    naming its segments) resolve to the same attempt's files.
    """
    return f"{attempt_prefix(tenant_id, asset_id, claim_token)}/variants/{name}"


def is_sweepable(key: str) -> bool:
    """Whether ``key`` has an output layout the storage sweep judges (see :data:`SWEEPABLE_KEY`)."""
    return SWEEPABLE_KEY.match(key) is not None


__all__ = ["SWEEPABLE_KEY", "attempt_prefix", "is_sweepable", "output_key"]
