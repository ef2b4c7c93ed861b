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
-- of the tenant's ready jobs locked by other claims at that moment) it runs the walk of 0019, now
-- app_private.claim_job_walk, with one index descent per tenant instead of three when no pool is given.
--
-- The claim index holds only pending rows, but without VACUUM it keeps the entries of jobs claimed
-- since; both descents and the claim's own subquery are ordered index scans that stop at the first
-- ready entry, as the walk's first steps do.

-- The walk: 0019's claim, with a cheaper step between tenants when no pool is given (see the
-- comment in it); its order, pauses and caps are unchanged.
CREATE FUNCTION app_private.claim_job_walk(p_worker_id text, p_lease_seconds integer, p_job_types text[])
RETURNS SETOF public.asset_processing_jobs
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  v_types text[] := p_job_types;       -- NULL: every job type
  v_paused_types text[];
  v_paused_tenants uuid[];
  v_pair_pauses boolean;
  v_excluded text[];                    -- job types paused for the tenant being tried
  v_priority integer;
  v_tenant uuid;
  v_running bigint;
  v_cap integer;
  v_type text;
  v_job public.asset_processing_jobs;
  v_tenants refcursor;
  v_prios refcursor;
BEGIN
  SELECT array_agg(p.job_type) FILTER (WHERE p.tenant_id IS NULL),
         array_agg(p.tenant_id) FILTER (WHERE p.job_type IS NULL),
         coalesce(bool_or(p.job_type IS NOT NULL AND p.tenant_id IS NOT NULL), false)
  INTO v_paused_types, v_paused_tenants, v_pair_pauses
  FROM app_private.job_pauses p;
  IF v_paused_types IS NOT NULL THEN
    SELECT coalesce(array_agg(t.job_type), '{}') INTO v_types FROM app_private.job_types t
    WHERE (p_job_types IS NULL OR t.job_type = ANY (p_job_types)) AND t.job_type <> ALL (v_paused_types);
  END IF;
  IF v_types IS NOT NULL AND cardinality(v_types) = 0 THEN
    RETURN;
  END IF;

  IF v_types IS NULL THEN
    OPEN v_prios FOR
      WITH RECURSIVE prios AS (
        (SELECT j.priority FROM public.asset_processing_jobs j
         WHERE j.status = 'pending' ORDER BY j.priority DESC LIMIT 1)
        UNION ALL
        SELECT (SELECT j.priority FROM public.asset_processing_jobs j
                WHERE j.status = 'pending' AND j.priority < p.priority ORDER BY j.priority DESC LIMIT 1)
        FROM prios p WHERE p.priority IS NOT NULL
      )
      SELECT p.priority FROM prios p WHERE p.priority IS NOT NULL;
  ELSE
    OPEN v_prios FOR
      WITH RECURSIVE prios AS (
        SELECT (SELECT max(x.priority) FROM unnest(v_types) t(job_type) CROSS JOIN LATERAL (
                  SELECT j.priority FROM public.asset_processing_jobs j
                  WHERE j.status = 'pending' AND j.job_type = t.job_type
                  ORDER BY j.priority DESC LIMIT 1) x) AS priority
        UNION ALL
        SELECT (SELECT max(x.priority) FROM unnest(v_types) t(job_type) CROSS JOIN LATERAL (
                  SELECT j.priority FROM public.asset_processing_jobs j
                  WHERE j.status = 'pending' AND j.job_type = t.job_type AND j.priority < p.priority
                  ORDER BY j.priority DESC LIMIT 1) x)
        FROM prios p WHERE p.priority IS NOT NULL
      )
      SELECT p.priority FROM prios p WHERE p.priority IS NOT NULL;
  END IF;

  LOOP
    FETCH v_prios INTO v_priority;
    EXIT WHEN NOT FOUND;
    IF v_types IS NULL THEN
      -- One step per tenant with a ready job (0022): the next ready entry of jobs_claim_idx after
      -- the previous tenant is the next tenant's best ready job (the index orders a tenant's jobs
      -- by tenant_priority DESC, run_after), so the walk yields its run_after and needs no second
      -- lookup per tenant (0019 walked every tenant with a pending job, then looked up its best
      -- ready job twice: in the filter and in the sort).
      OPEN v_tenants FOR
        WITH RECURSIVE tenants AS (
          (SELECT j.tenant_id, j.run_after FROM public.asset_processing_jobs j
           WHERE j.status = 'pending' AND j.priority = v_priority AND j.run_after <= now()
           ORDER BY j.priority DESC, j.tenant_id, j.tenant_priority DESC, j.run_after LIMIT 1)
          UNION ALL
          SELECT n.tenant_id, n.run_after FROM tenants t CROSS JOIN LATERAL (
            SELECT j.tenant_id, j.run_after FROM public.asset_processing_jobs j
            WHERE j.status = 'pending' AND j.priority = v_priority AND j.tenant_id > t.tenant_id
              AND j.run_after <= now()
            ORDER BY j.priority DESC, j.tenant_id, j.tenant_priority DESC, j.run_after LIMIT 1) n
        ), counted AS (
          SELECT t.tenant_id, t.run_after AS oldest,
                 (SELECT count(*) FROM public.asset_processing_jobs x
                  WHERE x.status = 'running' AND x.tenant_id = t.tenant_id) AS running
          FROM tenants t
        )
        SELECT c.tenant_id, c.running FROM counted c
        ORDER BY c.running,
                 (SELECT max(x.started_at) FROM public.asset_processing_jobs x
                  WHERE x.tenant_id = c.tenant_id AND x.started_at IS NOT NULL) NULLS FIRST,
                 c.oldest;
    ELSE
      -- One step per tenant with a ready job of the pool's types: the next entry of each type in
      -- jobs_claim_type_idx is that tenant's best ready job of the type (its order within a
      -- tenant is tenant_priority DESC, run_after), so the walk also yields the job's run_after
      -- and no second lookup per tenant is needed.
      OPEN v_tenants FOR
        WITH RECURSIVE tenants AS (
          (SELECT x.tenant_id, x.tenant_priority, x.run_after FROM unnest(v_types) tt(job_type) CROSS JOIN LATERAL (
             SELECT j.tenant_id, j.tenant_priority, j.run_after FROM public.asset_processing_jobs j
             WHERE j.status = 'pending' AND j.job_type = tt.job_type AND j.priority = v_priority
               AND j.run_after <= now()
             ORDER BY j.tenant_id, j.tenant_priority DESC, j.run_after LIMIT 1) x
           ORDER BY x.tenant_id, x.tenant_priority DESC, x.run_after LIMIT 1)
          UNION ALL
          SELECT n.tenant_id, n.tenant_priority, n.run_after FROM tenants t CROSS JOIN LATERAL (
            SELECT x.tenant_id, x.tenant_priority, x.run_after FROM unnest(v_types) tt(job_type) CROSS JOIN LATERAL (
              SELECT j.tenant_id, j.tenant_priority, j.run_after FROM public.asset_processing_jobs j
              WHERE j.status = 'pending' AND j.job_type = tt.job_type AND j.priority = v_priority
                AND j.tenant_id > t.tenant_id AND j.run_after <= now()
              ORDER BY j.tenant_id, j.tenant_priority DESC, j.run_after LIMIT 1) x
            ORDER BY x.tenant_id, x.tenant_priority DESC, x.run_after LIMIT 1) n
        ), counted AS (
          SELECT t.tenant_id, t.run_after AS oldest,
                 (SELECT count(*) FROM public.asset_processing_jobs x
                  WHERE x.status = 'running' AND x.tenant_id = t.tenant_id) AS running
          FROM tenants t
        )
        SELECT c.tenant_id, c.running FROM counted c
        ORDER BY c.running,
                 (SELECT max(x.started_at) FROM public.asset_processing_jobs x
                  WHERE x.tenant_id = c.tenant_id AND x.started_at IS NOT NULL) NULLS FIRST,
                 c.oldest;
    END IF;

    LOOP
      FETCH v_tenants INTO v_tenant, v_running;
      EXIT WHEN NOT FOUND;
      CONTINUE WHEN v_paused_tenants IS NOT NULL AND v_tenant = ANY (v_paused_tenants);
      v_excluded := NULL;
      IF v_pair_pauses THEN
        SELECT array_agg(p.job_type) INTO v_excluded FROM app_private.job_pauses p
        WHERE p.tenant_id = v_tenant AND p.job_type IS NOT NULL;
      END IF;

      -- The tenant's cap (see the comment above the function).
      SELECT l.max_running INTO v_cap FROM app_private.tenant_job_limits l WHERE l.tenant_id = v_tenant;
      IF v_cap IS NOT NULL THEN
        CONTINUE WHEN v_running >= v_cap;
        IF current_setting('transaction_isolation') <> 'read committed' THEN
          RAISE EXCEPTION 'claim_job must run at READ COMMITTED to enforce tenant caps'
            USING ERRCODE = '25000';
        END IF;
        SELECT l.max_running INTO v_cap FROM app_private.tenant_job_limits l
        WHERE l.tenant_id = v_tenant FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN v_cap IS NULL;  -- another claim of this tenant is in flight (or the cap was just removed)
        SELECT count(*) INTO v_running FROM public.asset_processing_jobs x
        WHERE x.status = 'running' AND x.tenant_id = v_tenant;
        CONTINUE WHEN v_running >= v_cap;
      END IF;

      IF v_types IS NULL THEN
        UPDATE public.asset_processing_jobs j SET
          status = 'running', attempts = j.attempts + 1, worker_id = p_worker_id,
          started_at = clock_timestamp(), heartbeat_at = now(),
          lease_expires_at = now() + make_interval(secs => p_lease_seconds),
          progress = 0
        WHERE j.id = (
          SELECT c.id FROM public.asset_processing_jobs c
          WHERE c.status = 'pending' AND c.priority = v_priority AND c.tenant_id = v_tenant
            AND c.run_after <= now() AND (v_excluded IS NULL OR c.job_type <> ALL (v_excluded))
          ORDER BY c.tenant_priority DESC, c.run_after
          LIMIT 1
          FOR UPDATE SKIP LOCKED
        )
        RETURNING j.* INTO v_job;
      ELSE
        -- The pool's types one at a time, best first, each an ordered walk of jobs_claim_type_idx.
        FOR v_type IN
          SELECT tt.job_type FROM unnest(v_types) tt(job_type) CROSS JOIN LATERAL (
            SELECT j.tenant_priority, j.run_after FROM public.asset_processing_jobs j
            WHERE j.status = 'pending' AND j.job_type = tt.job_type AND j.priority = v_priority
              AND j.tenant_id = v_tenant AND j.run_after <= now()
            ORDER BY j.tenant_priority DESC, j.run_after LIMIT 1) x
          WHERE v_excluded IS NULL OR tt.job_type <> ALL (v_excluded)
          ORDER BY x.tenant_priority DESC, x.run_after
        LOOP
          UPDATE public.asset_processing_jobs j SET
            status = 'running', attempts = j.attempts + 1, worker_id = p_worker_id,
            started_at = clock_timestamp(), heartbeat_at = now(),
            lease_expires_at = now() + make_interval(secs => p_lease_seconds),
            progress = 0
          WHERE j.id = (
            SELECT c.id FROM public.asset_processing_jobs c
            WHERE c.status = 'pending' AND c.job_type = v_type AND c.priority = v_priority
              AND c.tenant_id = v_tenant AND c.run_after <= now()
            ORDER BY c.tenant_priority DESC, c.run_after
            LIMIT 1
            FOR UPDATE SKIP LOCKED
          )
          RETURNING j.* INTO v_job;
          EXIT WHEN v_job.id IS NOT NULL;
        END LOOP;
      END IF;
      IF v_job.id IS NOT NULL THEN
        CLOSE v_tenants;
        CLOSE v_prios;
        RETURN NEXT v_job;
        RETURN;
      END IF;
    END LOOP;
    CLOSE v_tenants;
  END LOOP;
  CLOSE v_prios;
  RETURN;
END;
$$;

COMMENT ON FUNCTION app_private.claim_job_walk(text, integer, text[]) IS
  'The fair claim (priorities, then tenants by running jobs, last served, oldest ready job; pools, '
  'pauses, caps). Called by app_private.claim_job when its fast path does not apply.';
REVOKE ALL ON FUNCTION app_private.claim_job_walk(text, integer, text[]) FROM PUBLIC;


CREATE OR REPLACE FUNCTION app_private.claim_job(p_worker_id text, p_lease_seconds integer, p_job_types text[])
RETURNS SETOF public.asset_processing_jobs
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  v_priority integer;
  v_tenant uuid;
  v_other uuid;                         -- another tenant ready at v_priority
  v_type text;
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
      -- Without a pool: the tenant's best ready job (jobs_claim_idx). With one: the pool's types
      -- one at a time, best first, each an ordered walk of jobs_claim_type_idx, as in the walk, so
      -- a light pool never reads through the tenant's backlog of heavy jobs.
      IF p_job_types IS NULL THEN
        UPDATE public.asset_processing_jobs j SET
          status = 'running', attempts = j.attempts + 1, worker_id = p_worker_id,
          started_at = clock_timestamp(), heartbeat_at = now(),
          lease_expires_at = now() + make_interval(secs => p_lease_seconds),
          progress = 0
        WHERE j.id = (
          SELECT c.id FROM public.asset_processing_jobs c
          WHERE c.status = 'pending' AND c.priority = v_priority AND c.tenant_id = v_tenant
            AND c.run_after <= now()
          ORDER BY c.tenant_priority DESC, c.run_after
          LIMIT 1
          FOR UPDATE SKIP LOCKED
        )
        RETURNING j.* INTO v_job;
      ELSE
        FOR v_type IN
          SELECT tt.job_type FROM unnest(p_job_types) tt(job_type) CROSS JOIN LATERAL (
            SELECT j.tenant_priority, j.run_after FROM public.asset_processing_jobs j
            WHERE j.status = 'pending' AND j.job_type = tt.job_type AND j.priority = v_priority
              AND j.tenant_id = v_tenant AND j.run_after <= now()
            ORDER BY j.tenant_priority DESC, j.run_after LIMIT 1) x
          ORDER BY x.tenant_priority DESC, x.run_after
        LOOP
          UPDATE public.asset_processing_jobs j SET
            status = 'running', attempts = j.attempts + 1, worker_id = p_worker_id,
            started_at = clock_timestamp(), heartbeat_at = now(),
            lease_expires_at = now() + make_interval(secs => p_lease_seconds),
            progress = 0
          WHERE j.id = (
            SELECT c.id FROM public.asset_processing_jobs c
            WHERE c.status = 'pending' AND c.job_type = v_type AND c.priority = v_priority
              AND c.tenant_id = v_tenant AND c.run_after <= now()
            ORDER BY c.tenant_priority DESC, c.run_after
            LIMIT 1
            FOR UPDATE SKIP LOCKED
          )
          RETURNING j.* INTO v_job;
          EXIT WHEN v_job.id IS NOT NULL;
        END LOOP;
      END IF;
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
