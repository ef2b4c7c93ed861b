-- Asset roll-up without a lost update: app_private.roll_up_asset (0005) counted an asset's jobs
-- before taking the asset row's lock, so two jobs of one asset completing concurrently could leave
-- the asset 'processing' for good (seen as `contentforge process` waiting forever on a silent
-- video whose transcode and transcript finished within the same second). Redefined to lock the
-- asset row first; otherwise unchanged.

CREATE OR REPLACE FUNCTION app_private.roll_up_asset(p_tenant_id uuid, p_asset_id uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  -- Lock the asset row before counting its jobs. Without it, two jobs of one asset finishing at
  -- the same moment each counted the other as still running (its transaction had not committed),
  -- and the second UPDATE, after waiting for the first one's row lock, wrote its stale count: the
  -- asset stayed 'processing' with every job completed. Under READ COMMITTED the next statement
  -- takes a new snapshot, so once the lock is held the count sees every committed job.
  PERFORM 1 FROM public.assets a WHERE a.tenant_id = p_tenant_id AND a.id = p_asset_id FOR UPDATE;
  -- One statement (aggregate and update together), in plpgsql so that its plan is cached (a
  -- LANGUAGE sql function that cannot be inlined is planned again on every call): this runs on
  -- every job completion.
  WITH v AS (
    SELECT count(*) FILTER (WHERE j.status IN ('pending', 'running')) AS active,
           count(*) FILTER (WHERE j.status = 'failed') AS failed,
           count(*) FILTER (WHERE j.status = 'completed') AS completed,
           count(*) FILTER (WHERE j.status <> 'cancelled') AS counted,
           coalesce(round(avg(CASE WHEN j.status IN ('completed', 'failed') THEN 100 ELSE j.progress END)
                          FILTER (WHERE j.status <> 'cancelled')), 0)::int AS progress,
           (array_agg(j.job_type || ': ' || j.error_message ORDER BY j.completed_at DESC)
              FILTER (WHERE j.status = 'failed'))[1] AS error
    FROM public.asset_processing_jobs j
    WHERE j.tenant_id = p_tenant_id AND j.asset_id = p_asset_id
  )
  UPDATE public.assets a SET
    processing_status = CASE
      WHEN v.active > 0 THEN 'processing'
      WHEN v.failed > 0 THEN 'failed'
      WHEN v.completed > 0 THEN 'ready'
      ELSE a.processing_status END::public.asset_status_enum,
    processing_progress = CASE WHEN v.counted = 0 THEN a.processing_progress ELSE least(v.progress, 100) END,
    processing_error = CASE WHEN v.active = 0 AND v.failed > 0 THEN v.error ELSE NULL END
  FROM v
  WHERE a.tenant_id = p_tenant_id AND a.id = p_asset_id AND a.processing_status <> 'deleted'
    AND (a.processing_status, a.processing_progress, a.processing_error) IS DISTINCT FROM (
      CASE WHEN v.active > 0 THEN 'processing' WHEN v.failed > 0 THEN 'failed'
           WHEN v.completed > 0 THEN 'ready' ELSE a.processing_status END::public.asset_status_enum,
      CASE WHEN v.counted = 0 THEN a.processing_progress ELSE least(v.progress, 100) END,
      CASE WHEN v.active = 0 AND v.failed > 0 THEN v.error ELSE NULL END);
END;
$$;
