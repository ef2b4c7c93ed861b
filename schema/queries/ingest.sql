-- Supabase Storage ingest (migration 0017): what the worker needs to read an ingested original.
-- Each query starts with a "-- name: <name>" line; parameters are psycopg named placeholders.

-- name: ingested_object
-- The Supabase Storage object an asset was made from (the newest version ingested), or no row.
SELECT i.bucket_id, i.object_name, i.version
FROM app_private.storage_object_ingests i
WHERE i.asset_id = %(asset_id)s
ORDER BY i.created_at DESC
LIMIT 1;
