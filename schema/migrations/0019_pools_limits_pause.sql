-- Operators shape the fleet (issue 14): worker pools by job type, a cap on each tenant's running
-- jobs across the fleet, pause and resume by job type and tenant, and a scaling signal per pool.
-- Everything here is operator-only: tables and functions live in app_private, where no API role
-- (anon, authenticated, service_role) has USAGE, and every function is revoked from PUBLIC.

-- ---------------------------------------------------------------------------------------------
-- Pools: workers that serve a chosen set of job types claim with p_job_types; the claim walks an
-- index that starts with the job type, one descent per type of the pool, so a pool of light types
-- never reads past a backlog of heavy ones.
CREATE INDEX jobs_claim_type_idx ON public.asset_processing_jobs
  (job_type, priority DESC, tenant_id, tenant_priority DESC, run_after)
  WHERE status = 'pending';

-- The pools that are running, as `contentforge worker` supervisors report them (one row per
-- supervisor, refreshed every few seconds, removed at a clean stop). The active relay nudges one
-- Dramatiq queue per pool listed here; a job type that no live row serves is reported unserved.
CREATE TABLE app_private.worker_pools (
  supervisor_id text PRIMARY KEY CHECK (char_length(supervisor_id) BETWEEN 1 AND 200),
  pool text NOT NULL CHECK (pool ~ '^[a-z][a-z0-9_-]{0,62}$'),
  queue_name text NOT NULL CHECK (char_length(queue_name) BETWEEN 1 AND 200),
  job_types text[],              -- NULL: every job type (a worker started without a pool)
  threads integer NOT NULL CHECK (threads >= 1),
  started_at timestamptz NOT NULL DEFAULT now(),
  last_seen timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE app_private.worker_pools ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON app_private.worker_pools FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Pause: a row pauses a job type (tenant_id NULL), a tenant (job_type NULL), or one job type of one
-- tenant (both set). Paused jobs stay pending; the claim skips them and the ready counts leave them
-- out. resume_jobs deletes the row and NOTIFYs, so the relay nudges at once.
CREATE TABLE app_private.job_pauses (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_type text REFERENCES app_private.job_types (job_type) ON DELETE CASCADE,
  tenant_id uuid REFERENCES public.tenants (id) ON DELETE CASCADE,
  reason text CHECK (char_length(reason) <= 500),
  paused_at timestamptz NOT NULL DEFAULT now(),
  paused_by text NOT NULL DEFAULT current_user,
  CHECK (job_type IS NOT NULL OR tenant_id IS NOT NULL)
);
CREATE UNIQUE INDEX job_pauses_scope_idx ON app_private.job_pauses
  (coalesce(job_type, ''), coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid));
-- For the cascades from job_types and tenants (and the claim's per-tenant pair lookup).
CREATE INDEX job_pauses_tenant_idx ON app_private.job_pauses (tenant_id);
CREATE INDEX job_pauses_job_type_idx ON app_private.job_pauses (job_type);
ALTER TABLE app_private.job_pauses ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON app_private.job_pauses FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Tenant caps: at most max_running of the tenant's jobs run at once, across the whole fleet.
CREATE TABLE app_private.tenant_job_limits (
  tenant_id uuid PRIMARY KEY REFERENCES public.tenants (id) ON DELETE CASCADE,
  max_running integer NOT NULL CHECK (max_running >= 1),
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text NOT NULL DEFAULT current_user
);
ALTER TABLE app_private.tenant_job_limits ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON app_private.tenant_job_limits FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- The claim, with pools, pauses and caps.
--
-- Order: unchanged from 0014 (fleet priority, then the tenant with the fewest running jobs, served
-- longest ago, then that tenant's own priority and age), taken over the pool's job types only.
--
-- Cost when no rule is set: one read of job_pauses (an empty or tiny table) per claim and one
-- primary-key probe of tenant_job_limits per tenant tried (usually one); a claim without a pool
-- and with no paused job type walks jobs_claim_idx exactly as before. A pool's claim walks
-- jobs_claim_type_idx, one descent per job type of the pool at each step.
--
-- Tenant caps, correct under concurrency at READ COMMITTED. A job becomes 'running' only here. For
-- a capped tenant the claim first takes the tenant's tenant_job_limits row lock (SELECT ... FOR
-- UPDATE), held until the claiming transaction commits, and only then counts the tenant's running
-- jobs in a new statement: under READ COMMITTED each statement of a volatile function takes a new
-- snapshot, so the count sees every claim committed by earlier holders of the lock, and no other
-- claim of that tenant can be in flight (it would hold the lock). So the count plus one never
-- exceeds the cap. Uncapped tenants take no lock at all; a capped tenant already at its cap in the
-- claim's own snapshot is skipped without the lock (running counts only go up under the lock, so a
-- stale count can only make the claim skip, never over-claim).
-- The lock is taken with SKIP LOCKED: a claim never waits for it. A locked row means another claim
-- of that tenant is in flight, so this claim passes on to the next tenant (the other one claims, and
-- passes its nudge on, or finds the tenant full). Never waiting means no deadlock: a claim riding on a
-- completion holds the completed job's asset row (roll-up), and a claim that resets a released job's
-- progress takes an asset row too, so waiting for a tenant lock there could close a cycle.
-- A claim inside a REPEATABLE READ or SERIALIZABLE transaction would count with its old snapshot:
-- refused for capped tenants.
CREATE FUNCTION app_private.claim_job(p_worker_id text, p_lease_seconds integer, p_job_types text[])
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
      OPEN v_tenants FOR
        WITH RECURSIVE tenants AS (
          (SELECT j.tenant_id FROM public.asset_processing_jobs j
           WHERE j.status = 'pending' AND j.priority = v_priority ORDER BY j.tenant_id LIMIT 1)
          UNION ALL
          SELECT (SELECT j.tenant_id FROM public.asset_processing_jobs j
                  WHERE j.status = 'pending' AND j.priority = v_priority AND j.tenant_id > t.tenant_id
                  ORDER BY j.tenant_id LIMIT 1)
          FROM tenants t WHERE t.tenant_id IS NOT NULL
        ), ready AS (
          SELECT t.tenant_id,
                 (SELECT j.run_after FROM public.asset_processing_jobs j
                  WHERE j.status = 'pending' AND j.priority = v_priority AND j.tenant_id = t.tenant_id
                    AND j.run_after <= now()
                  ORDER BY j.tenant_priority DESC, j.run_after LIMIT 1) AS oldest
          FROM tenants t WHERE t.tenant_id IS NOT NULL
        ), counted AS (
          SELECT r.tenant_id, r.oldest,
                 (SELECT count(*) FROM public.asset_processing_jobs x
                  WHERE x.status = 'running' AND x.tenant_id = r.tenant_id) AS running
          FROM ready r WHERE r.oldest IS NOT NULL
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

-- The two-argument claim of 0005/0014 (every job type) stays for existing callers.
CREATE OR REPLACE FUNCTION app_private.claim_job(p_worker_id text, p_lease_seconds integer)
RETURNS SETOF public.asset_processing_jobs
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  SELECT * FROM app_private.claim_job(p_worker_id, p_lease_seconds, NULL::text[])
$$;

-- ---------------------------------------------------------------------------------------------
-- Ready counts that leave paused jobs out.

-- The relay's top-up for one pool: ready jobs of these types (NULL: all), counted up to p_limit,
-- and when the next delayed one becomes ready.
CREATE FUNCTION app_private.queue_ready(p_limit integer, p_job_types text[])
RETURNS TABLE (ready bigint, next_run_after timestamptz)
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT (SELECT count(*) FROM (
            SELECT 1 FROM public.asset_processing_jobs j
            WHERE j.status = 'pending' AND j.run_after <= now()
              AND (p_job_types IS NULL OR j.job_type = ANY (p_job_types))
              AND NOT EXISTS (SELECT 1 FROM app_private.job_pauses p
                              WHERE (p.job_type IS NULL OR p.job_type = j.job_type)
                                AND (p.tenant_id IS NULL OR p.tenant_id = j.tenant_id))
            LIMIT p_limit) r),
         (SELECT min(j.run_after) FROM public.asset_processing_jobs j
          WHERE j.status = 'pending' AND j.run_after > now()
            AND (p_job_types IS NULL OR j.job_type = ANY (p_job_types)))
$$;

-- The scaling signal of a pool (KEDA's PostgreSQL scaler runs
-- `SELECT ready FROM app_private.pool_backlog('{thumbnail,metadata}')`): jobs of these types that
-- are pending, ready (run_after <= now()) and not paused, exactly, and the age in seconds of the
-- oldest of them (0 when none). NULL: every job type.
CREATE FUNCTION app_private.pool_backlog(p_job_types text[])
RETURNS TABLE (ready bigint, oldest_ready_seconds double precision)
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT count(*),
         coalesce(extract(epoch FROM now() - min(j.run_after)), 0)::double precision
  FROM public.asset_processing_jobs j
  WHERE j.status = 'pending' AND j.run_after <= now()
    AND (p_job_types IS NULL OR j.job_type = ANY (p_job_types))
    AND NOT EXISTS (SELECT 1 FROM app_private.job_pauses p
                    WHERE (p.job_type IS NULL OR p.job_type = j.job_type)
                      AND (p.tenant_id IS NULL OR p.tenant_id = j.tenant_id))
$$;

-- ---------------------------------------------------------------------------------------------
-- Operators' functions.

-- Pause a job type, a tenant, or one job type of one tenant. True when newly paused.
CREATE FUNCTION app_private.pause_jobs(p_job_type text DEFAULT NULL, p_tenant_id uuid DEFAULT NULL,
                                       p_reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
BEGIN
  IF p_job_type IS NULL AND p_tenant_id IS NULL THEN
    RAISE EXCEPTION 'pause what? name a job type, a tenant, or both' USING ERRCODE = '22023';
  END IF;
  IF p_job_type IS NOT NULL AND NOT EXISTS (SELECT 1 FROM app_private.job_types t WHERE t.job_type = p_job_type) THEN
    RAISE EXCEPTION 'unknown job type "%"', p_job_type USING ERRCODE = '22023';
  END IF;
  IF p_tenant_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public.tenants t WHERE t.id = p_tenant_id) THEN
    RAISE EXCEPTION 'tenant % does not exist', p_tenant_id USING ERRCODE = '22023';
  END IF;
  INSERT INTO app_private.job_pauses (job_type, tenant_id, reason)
  VALUES (p_job_type, p_tenant_id, p_reason)
  ON CONFLICT (coalesce(job_type, ''), coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid))
  DO NOTHING;
  RETURN FOUND;
END;
$$;

-- Resume what pause_jobs paused (the same scope). True when a pause was lifted; the relay is woken
-- at commit (NOTIFY), so the resumed jobs start without waiting for its sweep.
CREATE FUNCTION app_private.resume_jobs(p_job_type text DEFAULT NULL, p_tenant_id uuid DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
BEGIN
  IF p_job_type IS NULL AND p_tenant_id IS NULL THEN
    RAISE EXCEPTION 'resume what? name a job type, a tenant, or both' USING ERRCODE = '22023';
  END IF;
  DELETE FROM app_private.job_pauses p
  WHERE p.job_type IS NOT DISTINCT FROM p_job_type AND p.tenant_id IS NOT DISTINCT FROM p_tenant_id;
  IF FOUND THEN
    PERFORM pg_notify('contentforge_jobs', '');
    RETURN true;
  END IF;
  RETURN false;
END;
$$;

-- Cap a tenant's running jobs across the fleet (NULL removes the cap). Lowering a cap below what
-- runs now stops nothing: new claims wait until the tenant is under it.
CREATE FUNCTION app_private.set_tenant_job_limit(p_tenant_id uuid, p_max_running integer)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM public.tenants t WHERE t.id = p_tenant_id) THEN
    RAISE EXCEPTION 'tenant % does not exist', p_tenant_id USING ERRCODE = '22023';
  END IF;
  IF p_max_running IS NULL THEN
    DELETE FROM app_private.tenant_job_limits l WHERE l.tenant_id = p_tenant_id;
    PERFORM pg_notify('contentforge_jobs', '');
  ELSIF p_max_running < 1 THEN
    RAISE EXCEPTION 'max_running must be at least 1 (pause the tenant to stop its jobs)' USING ERRCODE = '22023';
  ELSE
    INSERT INTO app_private.tenant_job_limits (tenant_id, max_running) VALUES (p_tenant_id, p_max_running)
    ON CONFLICT (tenant_id) DO UPDATE
      SET max_running = EXCLUDED.max_running, updated_at = now(), updated_by = current_user;
    PERFORM pg_notify('contentforge_jobs', '');
  END IF;
END;
$$;

-- A supervisor reports its pool (and again every few seconds while it runs).
CREATE FUNCTION app_private.register_worker_pool(p_supervisor_id text, p_pool text, p_queue_name text,
                                                 p_job_types text[], p_threads integer)
RETURNS void
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  INSERT INTO app_private.worker_pools (supervisor_id, pool, queue_name, job_types, threads)
  VALUES (p_supervisor_id, p_pool, p_queue_name, p_job_types, p_threads)
  ON CONFLICT (supervisor_id) DO UPDATE
    SET pool = EXCLUDED.pool, queue_name = EXCLUDED.queue_name, job_types = EXCLUDED.job_types,
        threads = EXCLUDED.threads, last_seen = now()
$$;

-- The pools that are running: reported within p_stale_seconds; older rows are deleted.
CREATE FUNCTION app_private.live_worker_pools(p_stale_seconds double precision)
RETURNS TABLE (pool text, queue_name text, job_types text[], threads bigint, supervisors bigint)
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH gone AS (
    DELETE FROM app_private.worker_pools w
    WHERE w.last_seen < now() - make_interval(secs => p_stale_seconds) RETURNING 1
  )
  SELECT w.pool, w.queue_name, w.job_types, sum(w.threads)::bigint, count(*)
  FROM app_private.worker_pools w
  WHERE w.last_seen >= now() - make_interval(secs => p_stale_seconds)
  GROUP BY w.pool, w.queue_name, w.job_types
  ORDER BY w.pool
$$;

REVOKE ALL ON FUNCTION
  app_private.claim_job(text, integer, text[]),
  app_private.queue_ready(integer, text[]), app_private.pool_backlog(text[]),
  app_private.pause_jobs(text, uuid, text), app_private.resume_jobs(text, uuid),
  app_private.set_tenant_job_limit(uuid, integer),
  app_private.register_worker_pool(text, text, text, text[], integer),
  app_private.live_worker_pools(double precision)
FROM PUBLIC;
