"""Originals uploaded into Supabase Storage: read through its S3 endpoint.

An asset made by the storage.objects trigger (migration 0017) keeps its original where it was
uploaded: bucket = the Supabase bucket id, key = the object name. Supabase Storage speaks S3, so
the worker reads it with the same :class:`~contentforge.storage.S3Storage` as any S3 store, at
``CONTENTFORGE_SUPABASE_S3_ENDPOINT_URL``. The trigger can fire before the bytes are readable
(supabase/storage #535): a missing object is then :class:`ObjectNotYetReadable`, a transient
error, retried with backoff.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from contentforge.settings import Settings
from contentforge.storage import S3Storage, Storage, StorageKeyMissing, StorageUnavailable
from schema.named_queries import queries
from workers.claim import JobStore


class ObjectNotYetReadable(StorageUnavailable):
    """The storage row exists but its bytes are not readable yet: retry later."""


class SupabaseSource:
    """Finds an asset's Supabase Storage object and opens a store for its bucket."""

    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.endpoint_url = settings.supabase_s3_endpoint_url
        self.region = settings.supabase_s3_region
        self.store = store
        self._q = queries("ingest")
        self._buckets: dict[str, Storage] = {}
        self._lock = threading.Lock()

    def object_for(self, asset: dict[str, Any]) -> dict[str, Any] | None:
        """The ingested object behind ``asset`` (bucket_id, object_name, version), or None."""
        sql = self._q["ingested_object"]
        return self.store.run(lambda c: c.execute(sql, {"asset_id": asset["id"]}).fetchone())

    def bucket(self, bucket_id: str) -> Storage:
        if not self.endpoint_url:
            raise StorageUnavailable(
                "this asset's original is in Supabase Storage, but CONTENTFORGE_SUPABASE_S3_ENDPOINT_URL "
                "is not set on this worker")
        with self._lock:
            if bucket_id not in self._buckets:
                self._buckets[bucket_id] = S3Storage(bucket_id, endpoint_url=self.endpoint_url, region=self.region)
            return self._buckets[bucket_id]

    def get_file(self, ingested: dict[str, Any], dest: Path) -> None:
        """Download the ingested object to ``dest``; a missing object is not readable *yet*."""
        try:
            self.bucket(ingested["bucket_id"]).get_file(ingested["object_name"], dest)
        except StorageKeyMissing as exc:
            raise ObjectNotYetReadable(
                f"Supabase Storage object {ingested['bucket_id']}/{ingested['object_name']} "
                "is not readable yet") from exc
