-- The asset processing queue (Step 3.1, section E): the row is the truth; broker messages only
-- wake workers. Enqueue, claim, heartbeat, finish, reclaim and purge are all SQL functions, so that
-- any language can enqueue and every worker follows the same rules.

-- Which job types exist and which asset file types each accepts (mirrors jobs/registry.py).
CREATE TABLE app_private.job_types (
  job_type text PRIMARY KEY,
  file_types public.asset_type_enum[] NOT NULL,
  default_max_attempts integer NOT NULL DEFAULT 3 CHECK (default_max_attempts BETWEEN 1 AND 100)
);
ALTER TABLE app_private.job_types ENABLE ROW LEVEL SECURITY;
INSERT INTO app_private.job_types (job_type, file_types, default_max_attempts) VALUES
  ('metadata',   '{image,video,audio,document,archive,other}', 3),
  ('thumbnail',  '{image,video,audio}', 3),
  ('transcode',  '{video,audio}', 3),
  ('transcript', '{video,audio}', 3),
  ('optimize',   '{image}', 3),
  ('noop',       '{image,video,audio,document,archive,other}', 3);

CREATE TABLE public.asset_processing_jobs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  asset_id uuid NOT NULL,
  job_type text NOT NULL REFERENCES app_private.job_types (job_type),
  priority integer NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),

  input_params jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(input_params) = 'object'),
  params_hash text GENERATED ALWAYS AS (md5(input_params::text)) STORED,
  output_data jsonb NOT NULL DEFAULT '{}',
  error_message text,
  error_details jsonb,
  progress integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),

  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
  run_after timestamptz NOT NULL DEFAULT now(),
  idempotency_key text CHECK (char_length(idempotency_key) BETWEEN 1 AND 200),

  -- The lease of the worker running the job: renewed by heartbeats, reclaimed when it expires.
  worker_id text,
  heartbeat_at timestamptz,
  lease_expires_at timestamptz,

  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  completed_at timestamptz,

  FOREIGN KEY (tenant_id, asset_id) REFERENCES public.assets (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT jobs_running_has_lease CHECK (status <> 'running' OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
  CONSTRAINT jobs_finished_has_time CHECK (status NOT IN ('completed', 'failed', 'cancelled') OR completed_at IS NOT NULL)
);
-- Claiming: the best ready job per priority and tenant (a loose index scan walks the tenants).
CREATE INDEX jobs_claim_idx ON public.asset_processing_jobs (priority DESC, tenant_id, run_after)
  WHERE status = 'pending';
-- Reclaiming: running jobs by lease expiry (defect 37), and per-tenant running counts for fairness.
CREATE INDEX jobs_lease_idx ON public.asset_processing_jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_running_tenant_idx ON public.asset_processing_jobs (tenant_id) WHERE status = 'running';
-- Fairness: when each tenant was last served (the tenant served longest ago goes first among equals).
CREATE INDEX jobs_tenant_started_idx ON public.asset_processing_jobs (tenant_id, started_at)
  WHERE started_at IS NOT NULL;
-- One active job per asset, type and parameters; a caller's idempotency key names one job.
CREATE UNIQUE INDEX jobs_active_unique_idx ON public.asset_processing_jobs (asset_id, job_type, params_hash)
  WHERE status IN ('pending', 'running');
CREATE UNIQUE INDEX jobs_idempotency_idx ON public.asset_processing_jobs (tenant_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- Listing a tenant's jobs, and the asset roll-up (which always knows both).
CREATE INDEX jobs_tenant_asset_idx ON public.asset_processing_jobs (tenant_id, asset_id);
CREATE INDEX jobs_type_status_idx ON public.asset_processing_jobs (job_type, status);
-- The relay's sweep: ready pending jobs and the next delayed one.
CREATE INDEX jobs_pending_run_after_idx ON public.asset_processing_jobs (run_after) WHERE status = 'pending';
-- Purging finished jobs by age.
CREATE INDEX jobs_finished_idx ON public.asset_processing_jobs (completed_at)
  WHERE status IN ('completed', 'failed', 'cancelled');

-- Rows change often: leave room for HOT updates and vacuum the table eagerly.
ALTER TABLE public.asset_processing_jobs SET (
  fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05
);

CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.asset_processing_jobs
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

-- Workers LISTEN on this channel; one notification per enqueuing statement.
-- Functions that put a job back to pending (retry, release, reclaim) notify too. Notifications are
-- delivered at commit, so a worker never wakes for a row it cannot see yet.
CREATE FUNCTION app_private.notify_jobs() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  PERFORM pg_notify('contentforge_jobs', '');
  RETURN NULL;
END;
$$;
CREATE TRIGGER jobs_notify AFTER INSERT ON public.asset_processing_jobs
  FOR EACH STATEMENT EXECUTE FUNCTION app_private.notify_jobs();

-- Asset roll-up: processing while any job is active, ready when all finished and none failed,
-- failed with the reason when one failed for good.
CREATE FUNCTION app_private.roll_up_asset(p_tenant_id uuid, p_asset_id uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
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

CREATE FUNCTION app_private.jobs_roll_up() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RETURN NULL;  -- purging finished jobs leaves the asset's status as it was
  END IF;
  -- The triggers' WHEN clause already filtered out updates that cannot change the roll-up.
  PERFORM app_private.roll_up_asset(NEW.tenant_id, NEW.asset_id);
  RETURN NULL;
END;
$$;
CREATE TRIGGER jobs_roll_up_insert AFTER INSERT ON public.asset_processing_jobs
  FOR EACH ROW EXECUTE FUNCTION app_private.jobs_roll_up();
-- Only changes that can move the roll-up: a job entering or leaving the active states (pending,
-- running), a finished job changing outcome, or progress. Claiming (pending -> running, progress
-- stays 0) and releasing (running -> pending) change none of roll_up_asset's inputs, so the
-- aggregate is skipped for them; the WHEN clause is evaluated without calling any function.
CREATE TRIGGER jobs_roll_up AFTER UPDATE OF status, progress ON public.asset_processing_jobs
  FOR EACH ROW
  WHEN (OLD.progress IS DISTINCT FROM NEW.progress
        OR (OLD.status IS DISTINCT FROM NEW.status
            AND NOT (OLD.status IN ('pending', 'running') AND NEW.status IN ('pending', 'running'))))
  EXECUTE FUNCTION app_private.jobs_roll_up();

-- ---------------------------------------------------------------------------------------------
-- Enqueue: the public API, callable from any language.
CREATE FUNCTION public.enqueue_asset_job(
  asset_id uuid,
  job_type text,
  params jsonb DEFAULT '{}',
  priority integer DEFAULT 5,
  run_after timestamptz DEFAULT now(),
  idempotency_key text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_asset record;
  v_type record;
  v_id uuid;
  v_existing record;
  v_params jsonb := coalesce(params, '{}');
BEGIN
  SELECT a.id, a.tenant_id, a.file_type, a.processing_status INTO v_asset
  FROM public.assets a WHERE a.id = enqueue_asset_job.asset_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'asset % does not exist', enqueue_asset_job.asset_id USING ERRCODE = 'P0002';
  END IF;
  IF app.caller_is_api() AND NOT app.has_tenant_role(v_asset.tenant_id, 'author') THEN
    RAISE EXCEPTION 'not allowed to process assets of tenant %: author rights or higher are needed', v_asset.tenant_id
      USING ERRCODE = '42501';
  END IF;
  IF v_asset.processing_status = 'deleted' THEN
    RAISE EXCEPTION 'asset % is deleted', v_asset.id USING ERRCODE = '22023';
  END IF;
  SELECT t.job_type, t.file_types, t.default_max_attempts INTO v_type
  FROM app_private.job_types t WHERE t.job_type = enqueue_asset_job.job_type;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown job type "%"; known: %', enqueue_asset_job.job_type,
      (SELECT string_agg(t.job_type, ', ' ORDER BY t.job_type) FROM app_private.job_types t)
      USING ERRCODE = '22023';
  END IF;
  IF NOT v_asset.file_type = ANY (v_type.file_types) THEN
    RAISE EXCEPTION 'job type "%" does not apply to % assets (it takes: %)',
      v_type.job_type, v_asset.file_type, array_to_string(v_type.file_types, ', ') USING ERRCODE = '22023';
  END IF;
  IF enqueue_asset_job.priority IS NULL OR enqueue_asset_job.priority NOT BETWEEN 1 AND 10 THEN
    RAISE EXCEPTION 'priority must be between 1 and 10, got %', enqueue_asset_job.priority USING ERRCODE = '22023';
  END IF;
  IF jsonb_typeof(v_params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = '22023';
  END IF;

  FOR i IN 1..3 LOOP
    INSERT INTO public.asset_processing_jobs AS j
      (tenant_id, asset_id, job_type, priority, input_params, run_after, idempotency_key, max_attempts)
    VALUES (v_asset.tenant_id, v_asset.id, v_type.job_type, enqueue_asset_job.priority, v_params,
            coalesce(enqueue_asset_job.run_after, now()), enqueue_asset_job.idempotency_key, v_type.default_max_attempts)
    ON CONFLICT DO NOTHING
    RETURNING j.id INTO v_id;
    IF v_id IS NOT NULL THEN
      RETURN v_id;
    END IF;
    -- The same request was made before: return that job.
    IF enqueue_asset_job.idempotency_key IS NOT NULL THEN
      SELECT j.id, j.asset_id, j.job_type INTO v_existing FROM public.asset_processing_jobs j
      WHERE j.tenant_id = v_asset.tenant_id AND j.idempotency_key = enqueue_asset_job.idempotency_key;
      IF FOUND THEN
        IF v_existing.asset_id <> v_asset.id OR v_existing.job_type <> v_type.job_type THEN
          RAISE EXCEPTION 'idempotency key "%" was already used for another job (%)',
            enqueue_asset_job.idempotency_key, v_existing.id USING ERRCODE = '23505';
        END IF;
        RETURN v_existing.id;
      END IF;
    END IF;
    SELECT j.id INTO v_id FROM public.asset_processing_jobs j
    WHERE j.asset_id = v_asset.id AND j.job_type = v_type.job_type AND j.params_hash = md5(v_params::text)
      AND j.status IN ('pending', 'running');
    IF v_id IS NOT NULL THEN
      RETURN v_id;
    END IF;
    -- The conflicting row finished between our INSERT and SELECT: try again.
  END LOOP;
  RAISE EXCEPTION 'could not enqueue % for asset %: conflicting jobs kept changing', v_type.job_type, v_asset.id
    USING ERRCODE = '40001';
END;
$$;

-- The usual "process this upload" request: several job types for one asset, in one call.
CREATE FUNCTION public.enqueue_asset_jobs(
  asset_id uuid,
  job_types text[],
  params jsonb DEFAULT '{}',
  priority integer DEFAULT 5,
  run_after timestamptz DEFAULT now(),
  idempotency_key text DEFAULT NULL
) RETURNS TABLE (job_type text, job_id uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
  SELECT t.job_type,
         public.enqueue_asset_job(
           asset_id => enqueue_asset_jobs.asset_id,
           job_type => t.job_type,
           params => coalesce(enqueue_asset_jobs.params -> t.job_type, '{}'),
           priority => enqueue_asset_jobs.priority,
           run_after => enqueue_asset_jobs.run_after,
           idempotency_key => enqueue_asset_jobs.idempotency_key || ':' || t.job_type)
  FROM unnest(enqueue_asset_jobs.job_types) WITH ORDINALITY AS t(job_type, ord)
  ORDER BY t.ord
$$;

-- Cancel a pending or running job (a running job's worker sees it at its next heartbeat).
CREATE FUNCTION public.cancel_asset_job(job_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_tenant uuid;
BEGIN
  SELECT j.tenant_id INTO v_tenant FROM public.asset_processing_jobs j WHERE j.id = cancel_asset_job.job_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'job % does not exist', cancel_asset_job.job_id USING ERRCODE = 'P0002';
  END IF;
  IF app.caller_is_api() AND NOT app.has_tenant_role(v_tenant, 'author') THEN
    RAISE EXCEPTION 'not allowed to cancel jobs of tenant %', v_tenant USING ERRCODE = '42501';
  END IF;
  UPDATE public.asset_processing_jobs j
  SET status = 'cancelled', completed_at = now(), worker_id = coalesce(j.worker_id, 'cancelled'),
      error_message = 'cancelled'
  WHERE j.id = cancel_asset_job.job_id AND j.status IN ('pending', 'running');
  RETURN FOUND;
END;
$$;

-- Put a failed or cancelled job back in the queue with fresh attempts.
CREATE FUNCTION public.retry_asset_job(job_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_tenant uuid;
BEGIN
  SELECT j.tenant_id INTO v_tenant FROM public.asset_processing_jobs j WHERE j.id = retry_asset_job.job_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'job % does not exist', retry_asset_job.job_id USING ERRCODE = 'P0002';
  END IF;
  IF app.caller_is_api() AND NOT app.has_tenant_role(v_tenant, 'author') THEN
    RAISE EXCEPTION 'not allowed to retry jobs of tenant %', v_tenant USING ERRCODE = '42501';
  END IF;
  UPDATE public.asset_processing_jobs j
  SET status = 'pending', attempts = 0, run_after = now(), error_message = NULL, error_details = NULL,
      worker_id = NULL, heartbeat_at = NULL, lease_expires_at = NULL, completed_at = NULL, progress = 0
  WHERE j.id = retry_asset_job.job_id AND j.status IN ('failed', 'cancelled');
  IF FOUND THEN
    PERFORM pg_notify('contentforge_jobs', '');
    RETURN true;
  END IF;
  RETURN false;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Worker side (app_private: no API role can call these).

-- Claim the best ready job. Highest priority first; within a priority, the tenant with the fewest
-- running jobs, then the tenant served longest ago (round robin, so that one tenant's backlog
-- delays another tenant's job by at most one job per worker thread), then the oldest job of that
-- tenant. Both walks (priorities, then tenants) are loose index scans over jobs_claim_idx, so the
-- cost grows with the number of distinct priorities and tenants waiting, not with the backlog.
-- The claim itself is one UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED): claimers pass
-- each other instead of queueing on the same row.
CREATE FUNCTION app_private.claim_job(p_worker_id text, p_lease_seconds integer)
RETURNS SETOF public.asset_processing_jobs
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  v_priority integer;
  v_tenant uuid;
  v_job public.asset_processing_jobs;
BEGIN
  FOR v_priority IN
    WITH RECURSIVE prios AS (
      (SELECT j.priority FROM public.asset_processing_jobs j
       WHERE j.status = 'pending' ORDER BY j.priority DESC LIMIT 1)
      UNION ALL
      SELECT (SELECT j.priority FROM public.asset_processing_jobs j
              WHERE j.status = 'pending' AND j.priority < p.priority ORDER BY j.priority DESC LIMIT 1)
      FROM prios p WHERE p.priority IS NOT NULL
    )
    SELECT p.priority FROM prios p WHERE p.priority IS NOT NULL
  LOOP
    FOR v_tenant IN
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
               (SELECT min(j.run_after) FROM public.asset_processing_jobs j
                WHERE j.status = 'pending' AND j.priority = v_priority AND j.tenant_id = t.tenant_id
                  AND j.run_after <= now()) AS oldest
        FROM tenants t WHERE t.tenant_id IS NOT NULL
      )
      SELECT r.tenant_id FROM ready r
      WHERE r.oldest IS NOT NULL
      ORDER BY (SELECT count(*) FROM public.asset_processing_jobs x
                WHERE x.status = 'running' AND x.tenant_id = r.tenant_id),
               (SELECT max(x.started_at) FROM public.asset_processing_jobs x
                WHERE x.tenant_id = r.tenant_id AND x.started_at IS NOT NULL) NULLS FIRST,
               r.oldest
    LOOP
      UPDATE public.asset_processing_jobs j SET
        status = 'running', attempts = j.attempts + 1, worker_id = p_worker_id,
        started_at = clock_timestamp(), heartbeat_at = now(),
        lease_expires_at = now() + make_interval(secs => p_lease_seconds),
        progress = 0
      WHERE j.id = (
        SELECT c.id FROM public.asset_processing_jobs c
        WHERE c.status = 'pending' AND c.priority = v_priority AND c.tenant_id = v_tenant
          AND c.run_after <= now()
        ORDER BY c.run_after
        LIMIT 1
        FOR UPDATE SKIP LOCKED
      )
      RETURNING j.* INTO v_job;
      IF v_job.id IS NOT NULL THEN
        RETURN NEXT v_job;
        RETURN;
      END IF;
    END LOOP;
  END LOOP;
  RETURN;
END;
$$;

-- Renew the lease and report progress. Returns false when the job is no longer ours (cancelled,
-- or reclaimed after our lease expired): the worker must stop the job and discard its result.
CREATE FUNCTION app_private.heartbeat_job(p_job_id uuid, p_worker_id text, p_lease_seconds integer,
                                          p_progress integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
BEGIN
  UPDATE public.asset_processing_jobs j SET
    heartbeat_at = now(),
    lease_expires_at = now() + make_interval(secs => p_lease_seconds),
    progress = coalesce(least(greatest(p_progress, 0), 100), j.progress)
  WHERE j.id = p_job_id AND j.worker_id = p_worker_id AND j.status = 'running';
  RETURN FOUND;
END;
$$;

-- Record success. False when the job is no longer ours (then the result is dropped).
CREATE FUNCTION app_private.complete_job(p_job_id uuid, p_worker_id text, p_output jsonb)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
BEGIN
  UPDATE public.asset_processing_jobs j SET
    status = 'completed', output_data = coalesce(p_output, '{}'), progress = 100, completed_at = now(),
    lease_expires_at = NULL, error_message = NULL, error_details = NULL
  WHERE j.id = p_job_id AND j.worker_id = p_worker_id AND j.status = 'running';
  RETURN FOUND;
END;
$$;

-- Record a failure. A transient failure with attempts left goes back to pending after
-- p_retry_delay_seconds; otherwise the job fails for good with a readable message.
CREATE FUNCTION app_private.fail_job(p_job_id uuid, p_worker_id text, p_message text, p_details jsonb,
                                     p_transient boolean, p_retry_delay_seconds double precision)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  v_status text;
BEGIN
  UPDATE public.asset_processing_jobs j SET
    status = CASE WHEN p_transient AND j.attempts < j.max_attempts THEN 'pending' ELSE 'failed' END,
    run_after = CASE WHEN p_transient AND j.attempts < j.max_attempts
                     THEN now() + make_interval(secs => greatest(p_retry_delay_seconds, 0)) ELSE j.run_after END,
    completed_at = CASE WHEN p_transient AND j.attempts < j.max_attempts THEN NULL ELSE now() END,
    error_message = CASE WHEN p_transient AND j.attempts >= j.max_attempts
                         THEN format('%s (gave up after %s attempts)', p_message, j.attempts) ELSE p_message END,
    error_details = p_details,
    worker_id = CASE WHEN p_transient AND j.attempts < j.max_attempts THEN NULL ELSE j.worker_id END,
    lease_expires_at = NULL
  WHERE j.id = p_job_id AND j.worker_id = p_worker_id AND j.status = 'running'
  RETURNING j.status INTO v_status;
  RETURN v_status;
END;
$$;

-- Give a running job back without counting the attempt (graceful shutdown).
CREATE FUNCTION app_private.release_job(p_job_id uuid, p_worker_id text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
BEGIN
  UPDATE public.asset_processing_jobs j SET
    status = 'pending', attempts = greatest(j.attempts - 1, 0), worker_id = NULL, heartbeat_at = NULL,
    lease_expires_at = NULL, run_after = now()
  WHERE j.id = p_job_id AND j.worker_id = p_worker_id AND j.status = 'running';
  IF FOUND THEN
    PERFORM pg_notify('contentforge_jobs', '');
    RETURN true;
  END IF;
  RETURN false;
END;
$$;

-- Jobs whose worker died (lease expired) go back to pending, or fail for good once they have
-- used all their attempts: a job that kills its worker every time ends instead of looping.
CREATE FUNCTION app_private.reclaim_expired_jobs(p_limit integer DEFAULT 1000)
RETURNS TABLE (job_id uuid, new_status text)
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  UPDATE public.asset_processing_jobs j SET
    status = CASE WHEN j.attempts < j.max_attempts THEN 'pending' ELSE 'failed' END,
    completed_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE now() END,
    error_message = CASE WHEN j.attempts < j.max_attempts
      THEN format('worker %s stopped responding during attempt %s; retrying', j.worker_id, j.attempts)
      ELSE format('worker stopped responding during each of %s attempts (last: %s); the job may crash its worker',
                  j.attempts, j.worker_id) END,
    worker_id = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE j.worker_id END,
    lease_expires_at = NULL,
    run_after = now()
  WHERE j.id IN (
    SELECT e.id FROM public.asset_processing_jobs e
    WHERE e.status = 'running' AND e.lease_expires_at < now()
    ORDER BY e.lease_expires_at
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  )
  RETURNING j.id, j.status
$$;

-- Finished jobs older than the retention are deleted in bounded batches; failed ones are kept
-- twice as long for diagnosis.
CREATE FUNCTION app_private.purge_finished_jobs(p_retention interval, p_batch integer DEFAULT 5000)
RETURNS integer
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH doomed AS (
    SELECT j.id FROM public.asset_processing_jobs j
    WHERE j.status IN ('completed', 'failed', 'cancelled')
      AND j.completed_at < now() - CASE WHEN j.status = 'failed' THEN p_retention * 2 ELSE p_retention END
    ORDER BY j.completed_at
    LIMIT p_batch
    FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM public.asset_processing_jobs j USING doomed d WHERE j.id = d.id RETURNING 1
  )
  SELECT count(*)::int FROM gone
$$;

-- Pending jobs that are ready now (counted up to p_limit, so the relay's sweep stays cheap on a
-- huge backlog), and when the next delayed one becomes ready.
CREATE FUNCTION app_private.queue_ready(p_limit integer DEFAULT 10000)
RETURNS TABLE (ready bigint, next_run_after timestamptz)
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT (SELECT count(*) FROM (SELECT 1 FROM public.asset_processing_jobs j
                                WHERE j.status = 'pending' AND j.run_after <= now() LIMIT p_limit) r),
         (SELECT min(j.run_after) FROM public.asset_processing_jobs j
          WHERE j.status = 'pending' AND j.run_after > now())
$$;

-- ---------------------------------------------------------------------------------------------
ALTER TABLE public.asset_processing_jobs ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.asset_processing_jobs FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.asset_processing_jobs TO authenticated;
GRANT ALL ON public.asset_processing_jobs TO service_role;
-- Members follow their tenant's jobs; every change goes through the functions above.
CREATE POLICY jobs_select_member ON public.asset_processing_jobs FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[]));

REVOKE ALL ON FUNCTION
  public.enqueue_asset_job(uuid, text, jsonb, integer, timestamptz, text),
  public.enqueue_asset_jobs(uuid, text[], jsonb, integer, timestamptz, text),
  public.cancel_asset_job(uuid), public.retry_asset_job(uuid)
FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION
  public.enqueue_asset_job(uuid, text, jsonb, integer, timestamptz, text),
  public.enqueue_asset_jobs(uuid, text[], jsonb, integer, timestamptz, text),
  public.cancel_asset_job(uuid), public.retry_asset_job(uuid)
TO authenticated, service_role;
REVOKE ALL ON FUNCTION
  app_private.notify_jobs(), app_private.roll_up_asset(uuid, uuid), app_private.jobs_roll_up(),
  app_private.claim_job(text, integer), app_private.heartbeat_job(uuid, text, integer, integer),
  app_private.complete_job(uuid, text, jsonb),
  app_private.fail_job(uuid, text, text, jsonb, boolean, double precision),
  app_private.release_job(uuid, text), app_private.reclaim_expired_jobs(integer),
  app_private.purge_finished_jobs(interval, integer), app_private.queue_ready(integer)
FROM PUBLIC;
