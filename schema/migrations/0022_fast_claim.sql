-- A cheaper claim for the common case (issue 16), with the same order and rules.
--
-- The claim of 0019 always walks: the fleet priorities with ready work, then every tenant with a
-- ready job at the best one, counting each tenant's running jobs and finding when it was last
-- served, through two plpgsql cursors. On a busy queue of one tenant that walk is most of the
-- claim's cost (0.94 ms of PostgreSQL time per claim, serially, against 0.34 ms for the UPDATE that
-- takes the job), and it is paid even when there is nothing to choose between.
--
-- Now the claim first looks at the head of the claim index:
--   1. the best ready job's (priority, tenant), in one descent (no ready job: return at once);
--   2. whether any other tenant has a ready job at that priority, in one more descent.
-- When no other tenant is ready at the best priority, no pause is set anywhere and the tenant has
-- no cap, the fair order of 0019 can only pick this tenant's best job at this priority (fleet
-- priority first; tenant order only matters between tenants), so the claim takes it directly. In
-- every other case (several tenants ready at the best priority, any pause, a capped tenant, or all
-- of the tenant's ready jobs locked by other claims at that moment) it runs the walk of 0019,
-- unchanged, renamed app_private.claim_job_walk.
--
-- The claim index holds only pending rows, but without VACUUM it keeps the entries of jobs claimed
-- since; both descents and the claim's own subquery are ordered index scans that stop at the first
-- ready entry, as the walk's first steps do.

ALTER FUNCTION app_private.claim_job(text, integer, text[]) RENAME TO claim_job_walk;
COMMENT ON FUNCTION app_private.claim_job_walk(text, integer, text[]) IS
  'The fair claim of migration 0019 (priorities, then tenants by running jobs, last served, oldest '
  'ready job; pools, pauses, caps). Called by app_private.claim_job when its fast path does not apply.';

CREATE FUNCTION app_private.claim_job(p_worker_id text, p_lease_seconds integer, p_job_types text[])
RETURNS SETOF public.asset_processing_jobs
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  v_priority integer;
  v_tenant uuid;
  v_other uuid;                         -- another tenant ready at v_priority
  v_job public.asset_processing_jobs;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM app_private.job_pauses) THEN
    -- 1. The best ready job's priority and tenant (jobs_claim_idx, or jobs_claim_type_idx per type).
    IF p_job_types IS NULL THEN
      SELECT j.priority, j.tenant_id INTO v_priority, v_tenant
      FROM public.asset_processing_jobs j
      WHERE j.status = 'pending' AND j.run_after <= now()
      ORDER BY j.priority DESC, j.tenant_id
      LIMIT 1;
    ELSE
      SELECT x.priority, x.tenant_id INTO v_priority, v_tenant
      FROM unnest(p_job_types) tt(job_type) CROSS JOIN LATERAL (
        SELECT j.priority, j.tenant_id FROM public.asset_processing_jobs j
        WHERE j.status = 'pending' AND j.job_type = tt.job_type AND j.run_after <= now()
        ORDER BY j.priority DESC, j.tenant_id
        LIMIT 1) x
      ORDER BY x.priority DESC, x.tenant_id
      LIMIT 1;
    END IF;
    IF v_priority IS NULL THEN
      RETURN;  -- nothing ready (and no pause could hide anything): nothing to claim
    END IF;

    -- 2. Another tenant ready at this priority? (Step 1 found the lowest tenant id, so only higher
    -- ones are looked for: one ordered descent, per job type of a pool.)
    -- (A SELECT ... ORDER BY ... LIMIT 1, not EXISTS: inside EXISTS the planner drops the order and
    -- may pick a sequential scan that reads the whole table when no other tenant is ready.)
    IF p_job_types IS NULL THEN
      SELECT j.tenant_id INTO v_other
      FROM public.asset_processing_jobs j
      WHERE j.status = 'pending' AND j.priority = v_priority AND j.tenant_id > v_tenant
        AND j.run_after <= now()
      ORDER BY j.priority DESC, j.tenant_id
      LIMIT 1;
    ELSE
      SELECT x.tenant_id INTO v_other
      FROM unnest(p_job_types) tt(job_type) CROSS JOIN LATERAL (
        SELECT j.tenant_id FROM public.asset_processing_jobs j
        WHERE j.status = 'pending' AND j.job_type = tt.job_type AND j.priority = v_priority
          AND j.tenant_id > v_tenant AND j.run_after <= now()
        ORDER BY j.priority DESC, j.tenant_id
        LIMIT 1) x
      LIMIT 1;
    END IF;
    IF v_other IS NULL
       AND NOT EXISTS (SELECT 1 FROM app_private.tenant_job_limits l WHERE l.tenant_id = v_tenant) THEN
      UPDATE public.asset_processing_jobs j SET
        status = 'running', attempts = j.attempts + 1, worker_id = p_worker_id,
        started_at = clock_timestamp(), heartbeat_at = now(),
        lease_expires_at = now() + make_interval(secs => p_lease_seconds),
        progress = 0
      WHERE j.id = (
        SELECT c.id FROM public.asset_processing_jobs c
        WHERE c.status = 'pending' AND c.priority = v_priority AND c.tenant_id = v_tenant
          AND c.run_after <= now() AND (p_job_types IS NULL OR c.job_type = ANY (p_job_types))
        ORDER BY c.tenant_priority DESC, c.run_after
        LIMIT 1
        FOR UPDATE SKIP LOCKED
      )
      RETURNING j.* INTO v_job;
      IF v_job.id IS NOT NULL THEN
        RETURN NEXT v_job;
        RETURN;
      END IF;
      -- Every ready job of the tenant at this priority is being claimed right now: the walk looks
      -- further (lower priorities).
    END IF;
  END IF;
  RETURN QUERY SELECT * FROM app_private.claim_job_walk(p_worker_id, p_lease_seconds, p_job_types);
END;
$$;

REVOKE ALL ON FUNCTION app_private.claim_job(text, integer, text[]) FROM PUBLIC;
