-- The roll-up's progress writes to an asset become HOT updates (issue 16).
--
-- Every job completion (and every progress report of a running job) rolls up into its asset: a write
-- of processing_progress and, through the set_updated_at trigger, updated_at. updated_at is a key of
-- assets_unfinished_idx, so none of those writes could be a heap-only (HOT) update: each added an
-- entry to every one of the asset's eight indexes (measured: 3,000 roll-up writes, 0 HOT). That
-- index serves the maintenance jobs only, which want to know how long an asset has been in its
-- state (uploading for more than a day, failed for more than a week), and updated_at never said
-- that exactly: any edit of the asset reset it.
--
-- Now assets carry status_changed_at, set by a trigger when processing_status changes; the maintenance functions
-- and the index (0024) use it, and updated_at is no longer indexed. A roll-up that moves only the
-- progress changes no indexed column and can stay on its page (fillfactor 90 leaves room on new
-- pages; HOT pruning makes room on old ones).
--
-- Existing rows get this migration's time as status_changed_at (a constant default: no table
-- rewrite). So an asset that was already uploading or failed is cleaned up one interval after the
-- migration at the latest: later than before, never earlier.

ALTER TABLE public.assets ADD COLUMN status_changed_at timestamptz NOT NULL DEFAULT now();
COMMENT ON COLUMN public.assets.status_changed_at IS
  'When processing_status last changed (set by a trigger); what the maintenance jobs age assets by.';
ALTER TABLE public.assets SET (fillfactor = 90);

-- Only the database sets it: now() on insert and whenever the status changes, else the old value
-- (an API role that may update an asset must not be able to keep it away from the clean-up by
-- writing a date far in the future). To age rows on purpose (tests, a data fix), an owner disables
-- triggers for the session (session_replication_role = replica).
CREATE FUNCTION app_private.set_status_changed_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.processing_status IS DISTINCT FROM OLD.processing_status THEN
    NEW.status_changed_at := now();
  ELSE
    NEW.status_changed_at := OLD.status_changed_at;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER assets_status_changed_at BEFORE INSERT OR UPDATE ON public.assets
  FOR EACH ROW EXECUTE FUNCTION app_private.set_status_changed_at();
REVOKE ALL ON FUNCTION app_private.set_status_changed_at() FROM PUBLIC;

-- 0010's maintenance functions, aging assets by status_changed_at instead of updated_at.
CREATE OR REPLACE FUNCTION app_private.expire_stuck_uploads(p_older_than interval DEFAULT interval '1 day',
                                                            p_batch integer DEFAULT 10000)
RETURNS integer
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH stuck AS (
    SELECT a.id FROM public.assets a
    WHERE a.processing_status = 'uploading' AND a.status_changed_at < now() - p_older_than
    LIMIT p_batch FOR UPDATE SKIP LOCKED
  ), expired AS (
    UPDATE public.assets a SET processing_status = 'failed',
      processing_error = format('upload did not complete within %s', p_older_than)
    FROM stuck s WHERE a.id = s.id RETURNING 1
  )
  SELECT count(*)::int FROM expired
$$;

CREATE OR REPLACE FUNCTION app_private.collect_orphaned_assets(p_failed_older_than interval DEFAULT interval '7 days',
                                                               p_batch integer DEFAULT 1000)
RETURNS TABLE (asset_id uuid, tenant_id uuid, storage_bucket text, storage_path text, variant_keys text[])
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH doomed AS (
    SELECT a.id FROM public.assets a
    WHERE (a.processing_status = 'deleted'
           OR (a.processing_status = 'failed' AND a.status_changed_at < now() - p_failed_older_than))
      AND NOT EXISTS (SELECT 1 FROM public.content_assets ca WHERE ca.tenant_id = a.tenant_id AND ca.asset_id = a.id)
      AND NOT EXISTS (SELECT 1 FROM public.content_collections cc
                      WHERE cc.tenant_id = a.tenant_id AND cc.cover_asset_id = a.id)
    ORDER BY a.status_changed_at
    LIMIT p_batch
    FOR UPDATE SKIP LOCKED
  ), marked AS (
    UPDATE public.assets a SET processing_status = 'deleted'
    FROM doomed d WHERE a.id = d.id
    RETURNING a.id, a.tenant_id, a.storage_bucket, a.storage_path,
      ARRAY(SELECT v ->> 'key' FROM jsonb_each(a.variants) AS e(k, v) WHERE v ? 'key') AS variant_keys
  )
  SELECT * FROM marked
$$;
