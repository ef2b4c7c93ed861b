-- Completions and claims of several worker threads in one statement and one commit (issue 16).
--
-- A busy worker thread ends each no-op-sized job with one round trip: complete_job, then
-- claim_job for its next job (schema/queries/queue.sql, complete_and_claim). With
-- CONTENTFORGE_WORKER_COMBINED_CALLS set, a worker process instead combines what its threads have
-- to say at the same moment (workers/combiner.py, workers/claim.py) into one call of this
-- function: every completion first (in the order of their assets, see below), then every claim,
-- each by claim_job for its own worker id and job types. Each completion and each claim is exactly
-- the call a thread would have made alone, so the claim order, tenant fairness, pools, caps,
-- pauses, leases and the "not ours" answer of a completion are the same; only the commit is shared
-- (at-least-once, as before: the lease of a job whose claim reply was lost expires and the job is
-- claimed again). What it saves is transactions in flight, not work per row: serially it costs
-- PostgreSQL about what the statements it replaces did; with many worker processes per database
-- core it cut PostgreSQL CPU per job by about 30 % (bench/RESULTS.md, "Combined calls").
--
-- The arguments are parallel arrays; p_claim_types holds one JSON array of job types (or null:
-- every type) per claim. A claim that finds nothing for a set of job types is not repeated for a
-- later claim with the same types in this call. Rows returned: one per completion (kind 'done',
-- ours) and one per claim (kind 'claim', the job's columns as in the "claim" query, all null when
-- nothing was claimed); ord is the position in the request's array, from 1. p_lock_timeout_ms, when
-- given, bounds every lock wait of the call, its commit included (see the completions below).

CREATE FUNCTION app_private.complete_and_claim_jobs(
  p_lease_seconds integer,
  p_done_ids uuid[], p_done_workers text[], p_outputs jsonb[],
  p_claim_workers text[], p_claim_types jsonb, p_lock_timeout_ms integer DEFAULT NULL)
RETURNS TABLE (kind text, ord integer, ours boolean, id uuid, tenant_id uuid, asset_id uuid,
               job_type text, priority integer, input_params jsonb, attempts integer,
               max_attempts integer, created_at timestamptz, started_at timestamptz, claim_token uuid)
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
#variable_conflict use_column
DECLARE
  i integer;
  v_types jsonb;
  v_list text[];
  v_empty jsonb[] := '{}';
  v_job public.asset_processing_jobs;
  v_done record;
BEGIN
  IF coalesce(cardinality(p_done_ids), 0) <> coalesce(cardinality(p_done_workers), 0)
     OR coalesce(cardinality(p_done_ids), 0) <> coalesce(cardinality(p_outputs), 0)
     OR coalesce(cardinality(p_claim_workers), 0) <> coalesce(jsonb_array_length(p_claim_types), 0) THEN
    RAISE EXCEPTION 'complete_and_claim_jobs: the arrays of one kind must have equal lengths'
      USING ERRCODE = '22023';
  END IF;
  IF p_lock_timeout_ms IS NOT NULL THEN
    -- For the rest of the transaction, commit included (where the roll-ups lock the assets): a
    -- SET LOCAL of a setting the function's own SET clause does not name outlives the function.
    PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  END IF;
  -- In the order of the jobs' assets: each completion's roll-up locks its asset row at commit, in
  -- the order of the completions, so two combined calls completing jobs of the same two assets in
  -- opposite orders deadlocked (seen at 2 worker processes × 4 threads). This removes that cycle,
  -- not every one: a claim of a job whose progress was above 0 (a retry) rolls its asset up too,
  -- after the completions, and a transaction that writes several assets in another order can meet
  -- a combined call. The worker therefore bounds the call's lock waits (lock_timeout, well under
  -- deadlock_timeout, workers/claim.py) and then sends each thread's turn alone.
  FOR v_done IN
    SELECT u.job_id, u.worker, u.output, u.n
    FROM unnest(p_done_ids, p_done_workers, p_outputs) WITH ORDINALITY AS u(job_id, worker, output, n)
    LEFT JOIN public.asset_processing_jobs j ON j.id = u.job_id
    ORDER BY j.asset_id, u.job_id
  LOOP
    kind := 'done'; ord := v_done.n;
    ours := app_private.complete_job(v_done.job_id, v_done.worker, v_done.output);
    RETURN NEXT;
  END LOOP;
  ours := NULL;
  FOR i IN 1 .. coalesce(cardinality(p_claim_workers), 0) LOOP
    v_types := p_claim_types -> (i - 1);
    IF jsonb_typeof(v_types) IS DISTINCT FROM 'array' THEN
      v_types := 'null';
      v_list := NULL;
    ELSE
      v_list := ARRAY(SELECT jsonb_array_elements_text(v_types));
    END IF;
    v_job := NULL;
    IF NOT v_types = ANY (v_empty) THEN
      SELECT * INTO v_job FROM app_private.claim_job(p_claim_workers[i], p_lease_seconds, v_list) LIMIT 1;
      IF v_job.id IS NULL THEN
        v_empty := v_empty || v_types;
      END IF;
    END IF;
    kind := 'claim'; ord := i;
    id := v_job.id; tenant_id := v_job.tenant_id; asset_id := v_job.asset_id; job_type := v_job.job_type;
    priority := v_job.priority; input_params := v_job.input_params; attempts := v_job.attempts;
    max_attempts := v_job.max_attempts; created_at := v_job.created_at; started_at := v_job.started_at;
    claim_token := v_job.claim_token;
    RETURN NEXT;
  END LOOP;
END;
$$;

REVOKE ALL ON FUNCTION app_private.complete_and_claim_jobs(integer, uuid[], text[], jsonb[], text[], jsonb, integer) FROM PUBLIC;
