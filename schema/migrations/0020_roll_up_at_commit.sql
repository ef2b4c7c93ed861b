-- The asset roll-up runs once at commit instead of at every job row write (issue 16).
--
-- Until now jobs_roll_up_insert and jobs_roll_up ran app_private.roll_up_asset at the end of each
-- statement that inserted or changed a job: an enqueue of five jobs of one asset in one
-- transaction (enqueue_asset_jobs, a batch INSERT ... SELECT) rewrote the asset row five times,
-- each a non-HOT update (updated_at and processing_status are indexed) adding an entry to each of
-- the asset's eight indexes, and a completion that also records the job's outputs wrote the asset
-- twice with the asset row locked from the completion to the commit.
--
-- Both triggers become deferred constraint triggers (same names, same WHEN clauses): the roll-up
-- runs at commit, when the transaction's job changes are all made. The first roll-up of an asset
-- writes the row; the others of the same transaction find nothing to change and, as redefined here,
-- no longer write: they lock the row (already ours), count, compare and stop. The asset row is
-- locked only from commit time on, so concurrent completions of one asset's jobs wait on each
-- other for less time; the lost-update fix of 0015 (lock the asset, then count in a new statement)
-- is kept. Events keep their order: jobs_events (0017) sorts before jobs_roll_up, so job.completed
-- is written before the roll-up's asset.ready, as before; asset events are written by the deferred
-- trigger of the asset's UPDATE, which fires later in the same commit.

CREATE OR REPLACE FUNCTION app_private.roll_up_asset(p_tenant_id uuid, p_asset_id uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_status public.asset_status_enum;
  v_progress integer;
  v_error text;
  v_active bigint;
  v_failed bigint;
  v_completed bigint;
  v_counted bigint;
  v_avg integer;
  v_last_error text;
  v_new_status public.asset_status_enum;
  v_new_progress integer;
  v_new_error text;
BEGIN
  -- Lock the asset row before counting its jobs (0015): the count below, a new statement, then
  -- sees every job committed before the lock was granted.
  SELECT a.processing_status, a.processing_progress, a.processing_error
    INTO v_status, v_progress, v_error
  FROM public.assets a WHERE a.tenant_id = p_tenant_id AND a.id = p_asset_id FOR UPDATE;
  IF NOT FOUND OR v_status = 'deleted' THEN
    RETURN;
  END IF;
  SELECT count(*) FILTER (WHERE j.status IN ('pending', 'running')),
         count(*) FILTER (WHERE j.status = 'failed'),
         count(*) FILTER (WHERE j.status = 'completed'),
         count(*) FILTER (WHERE j.status <> 'cancelled'),
         coalesce(round(avg(CASE WHEN j.status IN ('completed', 'failed') THEN 100 ELSE j.progress END)
                        FILTER (WHERE j.status <> 'cancelled')), 0)::int,
         (array_agg(j.job_type || ': ' || j.error_message ORDER BY j.completed_at DESC)
            FILTER (WHERE j.status = 'failed'))[1]
    INTO v_active, v_failed, v_completed, v_counted, v_avg, v_last_error
  FROM public.asset_processing_jobs j
  WHERE j.tenant_id = p_tenant_id AND j.asset_id = p_asset_id;
  v_new_status := CASE WHEN v_active > 0 THEN 'processing' WHEN v_failed > 0 THEN 'failed'
                       WHEN v_completed > 0 THEN 'ready' ELSE v_status END;
  v_new_progress := CASE WHEN v_counted = 0 THEN v_progress ELSE least(v_avg, 100) END;
  v_new_error := CASE WHEN v_active = 0 AND v_failed > 0 THEN v_last_error END;
  -- Nothing changed (the second roll-up of an asset in one transaction, or a change that moves
  -- nothing): no write, no new row version, no event.
  IF (v_status, v_progress, v_error) IS NOT DISTINCT FROM (v_new_status, v_new_progress, v_new_error) THEN
    RETURN;
  END IF;
  UPDATE public.assets a SET
    processing_status = v_new_status, processing_progress = v_new_progress, processing_error = v_new_error
  WHERE a.tenant_id = p_tenant_id AND a.id = p_asset_id;
END;
$$;

DROP TRIGGER jobs_roll_up_insert ON public.asset_processing_jobs;
DROP TRIGGER jobs_roll_up ON public.asset_processing_jobs;
CREATE CONSTRAINT TRIGGER jobs_roll_up_insert AFTER INSERT ON public.asset_processing_jobs
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  EXECUTE FUNCTION app_private.jobs_roll_up();
-- Only changes that can move the roll-up (unchanged from 0005): a job entering or leaving the
-- active states, a finished job changing outcome, or progress. Claiming and releasing move none.
CREATE CONSTRAINT TRIGGER jobs_roll_up AFTER UPDATE OF status, progress ON public.asset_processing_jobs
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (OLD.progress IS DISTINCT FROM NEW.progress
        OR (OLD.status IS DISTINCT FROM NEW.status
            AND NOT (OLD.status IN ('pending', 'running') AND NEW.status IN ('pending', 'running'))))
  EXECUTE FUNCTION app_private.jobs_roll_up();
