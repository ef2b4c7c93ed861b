-- An asset's original in contentforge's own store (storage_bucket 'assets') must lie under its
-- tenant's prefix, `<tenant id>/...`, as every key the platform writes does.
--
-- Without it an author could create an asset of their own tenant naming another tenant's key
-- (`<other tenant>/<asset>/original`): a worker would then download that file and process it into
-- the author's tenant, and the cleanup of a failed asset would delete it. Objects of other buckets
-- (Supabase Storage uploads, migration 0017) are named by the storage service and read from there.
--
-- NOT VALID: rows written before this migration are not re-checked (a key outside the prefix
-- cannot be fixed without moving the file); every insert and update from now on is.
ALTER TABLE public.assets ADD CONSTRAINT assets_own_store_key_in_tenant
  CHECK (storage_bucket <> 'assets' OR starts_with(storage_path, tenant_id::text || '/')) NOT VALID;
