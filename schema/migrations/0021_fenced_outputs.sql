-- Fenced outputs (issue 17): each attempt of a job writes its files under keys of its own, and only
-- the attempt that still holds the job can make them the asset's current files.
--
-- A worker cut off from PostgreSQL may keep running (and uploading) after its lease expired and
-- another worker took the job over. With deterministic keys ({tenant}/{asset}/variants/{name}) the
-- late upload replaced the winner's files under the asset's feet. Now:
--
-- * every claim gives the job a new claim_token (a trigger, so that any claim function, today's
--   claim_job or a later rewrite, gets one without repeating the rule);
-- * the worker uploads to {tenant}/{asset}/attempts/{claim_token}/variants/{name};
-- * record_attempt_outputs points the asset at those keys only when the token is still the job's,
--   called in the transaction in which complete_job (lease holder only) completed the job;
-- * output_keys_in_use tells the storage sweep which stored keys must stay: every other key of
--   that layout, once older than the grace period, belonged to a losing attempt, a replaced result
--   or an asset that no longer exists, and is removed.

ALTER TABLE public.asset_processing_jobs ADD COLUMN claim_token uuid;
COMMENT ON COLUMN public.asset_processing_jobs.claim_token IS
  'Fencing token of the current attempt: new at every claim; output keys carry it, and only the '
  'attempt holding it can point the asset at its files (app_private.record_attempt_outputs).';

CREATE FUNCTION app_private.new_claim_token() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  NEW.claim_token := gen_random_uuid();
  RETURN NEW;
END;
$$;

-- Fires only on a claim (a row becoming running, or running for another worker); the WHEN clause
-- keeps heartbeats and completions from calling the function at all.
CREATE TRIGGER jobs_claim_token BEFORE UPDATE ON public.asset_processing_jobs
  FOR EACH ROW
  WHEN (NEW.status = 'running'
        AND (OLD.status IS DISTINCT FROM 'running' OR NEW.worker_id IS DISTINCT FROM OLD.worker_id))
  EXECUTE FUNCTION app_private.new_claim_token();

-- Point the job's asset at the outputs of the attempt holding p_claim_token: variants merged by
-- name (a name written again now points at this attempt's key; the old key is left to the sweep),
-- metadata merged, duration and transcript set. False, and nothing written, when the token is no
-- longer the job's (another attempt claimed it since). Call it in the transaction that completed
-- the job with complete_job, which admits the lease holder only; the job's row is locked there.
CREATE FUNCTION app_private.record_attempt_outputs(
  p_job_id uuid, p_claim_token uuid, p_variants jsonb, p_metadata jsonb, p_duration_seconds numeric,
  p_set_transcript boolean, p_transcript_text text, p_transcript_language text)
RETURNS boolean
LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_tenant uuid;
  v_asset uuid;
BEGIN
  SELECT j.tenant_id, j.asset_id INTO v_tenant, v_asset
  FROM public.asset_processing_jobs j
  WHERE j.id = p_job_id AND j.claim_token = p_claim_token AND j.status IN ('running', 'completed')
  FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  UPDATE public.assets a SET
    variants = a.variants || coalesce(p_variants, '{}'),
    metadata = a.metadata || coalesce(p_metadata, '{}'),
    duration_seconds = coalesce(p_duration_seconds, a.duration_seconds),
    transcript_text = CASE WHEN p_set_transcript THEN p_transcript_text ELSE a.transcript_text END,
    transcript_language = CASE WHEN p_set_transcript THEN p_transcript_language ELSE a.transcript_language END
  WHERE a.tenant_id = v_tenant AND a.id = v_asset;
  RETURN FOUND;
END;
$$;

-- Of p_keys (each "{tenant uuid}/{asset uuid}/..."; the caller checks the layout), those still in
-- use: an existing asset's original or a key one of its variants points at, or a file of an
-- attempt that is still running ("{tenant}/{asset}/attempts/{claim_token}/...": it may yet win).
CREATE FUNCTION app_private.output_keys_in_use(p_keys text[]) RETURNS SETOF text
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT k.key
  FROM unnest(p_keys) AS k(key)
  CROSS JOIN LATERAL (SELECT split_part(k.key, '/', 1)::uuid AS tenant_id,
                             split_part(k.key, '/', 2)::uuid AS asset_id,
                             split_part(k.key, '/', 3) AS kind,
                             split_part(k.key, '/', 4) AS token) p
  WHERE EXISTS (
          SELECT 1 FROM public.assets a
          WHERE a.tenant_id = p.tenant_id AND a.id = p.asset_id
            AND ((a.storage_bucket = 'assets' AND a.storage_path = k.key)
                 OR EXISTS (SELECT 1 FROM jsonb_each(a.variants) v WHERE v.value ->> 'key' = k.key)))
     OR (p.kind = 'attempts' AND EXISTS (
          SELECT 1 FROM public.asset_processing_jobs j
          WHERE j.status = 'running' AND j.tenant_id = p.tenant_id AND j.asset_id = p.asset_id
            AND j.claim_token::text = p.token))
$$;

REVOKE ALL ON FUNCTION
  app_private.new_claim_token(),
  app_private.record_attempt_outputs(uuid, uuid, jsonb, jsonb, numeric, boolean, text, text),
  app_private.output_keys_in_use(text[])
FROM PUBLIC;

-- The noop test job may write one output file of random bytes, so that tests of the fence can tell
-- one attempt's file from another's without running a media job (a copy of jobs/params.py).
INSERT INTO app_private.job_params (job_type, name, kind, minimum, maximum, max_items, choices, limit_name)
VALUES ('noop', 'output_bytes', 'integer', 0, 1048576, NULL, NULL, 'MAX_NOOP_OUTPUT_BYTES');
