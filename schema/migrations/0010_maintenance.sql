-- Step 8.3, fixed (defects 7, 30): the data-changing parts of nightly maintenance as separate,
-- bounded functions. VACUUM and ANALYZE cannot run inside a function: the scheduler issues them as
-- top-level statements. Asset removal is two-phase so that stored files are deleted too:
-- collect_orphaned_assets() marks rows 'deleted' and returns their storage locations; the caller
-- deletes the files, then purge_deleted_assets() removes the rows. A crash between the two leaves
-- the rows marked, and the next run finishes the job.

CREATE FUNCTION app_private.recount_tag_usage() RETURNS integer
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH counts AS (
    SELECT t.id, (SELECT count(*) FROM public.content_categorizations cc
                  WHERE cc.tenant_id = t.tenant_id AND cc.tag_id = t.id) AS n
    FROM public.content_tags t
  ), fixed AS (
    UPDATE public.content_tags t SET usage_count = c.n
    FROM counts c WHERE c.id = t.id AND t.usage_count <> c.n
    RETURNING 1
  )
  SELECT count(*)::int FROM fixed
$$;

-- Uploads that never finished become failed.
CREATE FUNCTION app_private.expire_stuck_uploads(p_older_than interval DEFAULT interval '1 day',
                                                 p_batch integer DEFAULT 10000)
RETURNS integer
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH stuck AS (
    SELECT a.id FROM public.assets a
    WHERE a.processing_status = 'uploading' AND a.updated_at < now() - p_older_than
    LIMIT p_batch FOR UPDATE SKIP LOCKED
  ), expired AS (
    UPDATE public.assets a SET processing_status = 'failed',
      processing_error = format('upload did not complete within %s', p_older_than)
    FROM stuck s WHERE a.id = s.id RETURNING 1
  )
  SELECT count(*)::int FROM expired
$$;

-- Assets that failed long ago and nothing uses (no link, no block, no cover), plus assets already
-- marked deleted: mark them deleted and return where their files are.
CREATE FUNCTION app_private.collect_orphaned_assets(p_failed_older_than interval DEFAULT interval '7 days',
                                                    p_batch integer DEFAULT 1000)
RETURNS TABLE (asset_id uuid, tenant_id uuid, storage_bucket text, storage_path text, variant_keys text[])
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH doomed AS (
    SELECT a.id FROM public.assets a
    WHERE (a.processing_status = 'deleted'
           OR (a.processing_status = 'failed' AND a.updated_at < now() - p_failed_older_than))
      AND NOT EXISTS (SELECT 1 FROM public.content_assets ca WHERE ca.tenant_id = a.tenant_id AND ca.asset_id = a.id)
      AND NOT EXISTS (SELECT 1 FROM public.content_collections cc
                      WHERE cc.tenant_id = a.tenant_id AND cc.cover_asset_id = a.id)
    ORDER BY a.updated_at
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

CREATE FUNCTION app_private.purge_deleted_assets(p_asset_ids uuid[]) RETURNS integer
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH gone AS (
    DELETE FROM public.assets a
    WHERE a.id = ANY (p_asset_ids) AND a.processing_status = 'deleted'
      AND NOT EXISTS (SELECT 1 FROM public.content_assets ca WHERE ca.tenant_id = a.tenant_id AND ca.asset_id = a.id)
    RETURNING 1
  )
  SELECT count(*)::int FROM gone
$$;

-- Search queries are personal data: keep them for the retention only (section E).
CREATE FUNCTION app_private.purge_search_queries(p_retention interval DEFAULT interval '90 days',
                                                 p_batch integer DEFAULT 50000)
RETURNS integer
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH doomed AS (
    SELECT q.id FROM public.search_queries q WHERE q.created_at < now() - p_retention
    ORDER BY q.created_at LIMIT p_batch
  ), gone AS (
    DELETE FROM public.search_queries q USING doomed d WHERE q.id = d.id RETURNING 1
  )
  SELECT count(*)::int FROM gone
$$;

-- The plan's run_maintenance(), as a function that can actually run: every data-changing step,
-- each bounded, returning what it did. It leaves out VACUUM (impossible in a function) and the
-- deletion of stored files (the scheduler's nightly task does both).
CREATE FUNCTION app_private.run_maintenance() RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  v_result jsonb := '{}';
  v_sessions record;
BEGIN
  v_result := v_result || jsonb_build_object('analytics', app_private.refresh_content_analytics());
  SELECT * INTO v_sessions FROM app_private.cleanup_old_editing_sessions();
  v_result := v_result || jsonb_build_object('sessions_removed', v_sessions.sessions_removed,
                                             'locks_released', v_sessions.locks_released);
  v_result := v_result || jsonb_build_object('tags_recounted', app_private.recount_tag_usage());
  v_result := v_result || jsonb_build_object('uploads_expired', app_private.expire_stuck_uploads());
  v_result := v_result || jsonb_build_object('search_queries_purged', app_private.purge_search_queries());
  v_result := v_result || jsonb_build_object('jobs_purged', app_private.purge_finished_jobs(interval '7 days'));
  RETURN v_result;
END;
$$;

REVOKE ALL ON FUNCTION app_private.recount_tag_usage(), app_private.expire_stuck_uploads(interval, integer),
  app_private.collect_orphaned_assets(interval, integer), app_private.purge_deleted_assets(uuid[]),
  app_private.purge_search_queries(interval, integer), app_private.run_maintenance() FROM PUBLIC;
