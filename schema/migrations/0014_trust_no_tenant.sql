-- Trust no tenant (issue 12): what an outside review, a PostgREST-style client and Supabase's
-- linter found. Tenants lose the fleet-wide knobs (priority, unbounded parameters, test-only job
-- types); "does not exist" answers become PostgREST 404s that do not tell an outsider whether an
-- id exists; search_content takes named arguments without a tenant; content.search_language is
-- stored as text (Supabase lint 0018); unlisted content is reachable by its link, not listable.

-- ---------------------------------------------------------------------------------------------
-- Job types: the operator's fleet-wide priority per type, and test-only types switched off.
--
-- Priority model. `asset_processing_jobs.priority` (1-10) is the fleet-wide priority and only
-- operators set it: per job type in app_private.job_types.priority (e.g. thumbnails ahead of
-- transcodes), or per job when enqueueing as the database owner, service_role or the CLI. An API
-- caller's `priority` argument becomes `tenant_priority`, which orders that tenant's own jobs
-- once fairness has picked the tenant: no tenant can move its jobs ahead of another tenant's.
ALTER TABLE app_private.job_types
  ADD COLUMN priority integer NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
  ADD COLUMN test_only boolean NOT NULL DEFAULT false,
  -- Test-only types are refused by enqueue_asset_job until an operator turns them on:
  --   UPDATE app_private.job_types SET enabled = true WHERE test_only;
  ADD COLUMN enabled boolean NOT NULL DEFAULT true;
UPDATE app_private.job_types SET test_only = true, enabled = false WHERE job_type = 'noop';

ALTER TABLE public.asset_processing_jobs
  ADD COLUMN tenant_priority integer NOT NULL DEFAULT 5 CHECK (tenant_priority BETWEEN 1 AND 10);
-- Claiming walks priorities, then tenants, then takes the tenant's best job by its own priority.
DROP INDEX public.jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON public.asset_processing_jobs (priority DESC, tenant_id, tenant_priority DESC, run_after)
  WHERE status = 'pending';

-- ---------------------------------------------------------------------------------------------
-- The parameters each job type accepts (a copy of jobs/params.py; a test keeps them equal).
-- For strings, minimum/maximum bound the length; for lists, max_items bounds the list and the
-- other columns each item. limit_name is the named limit an error message cites.
CREATE TABLE app_private.job_params (
  job_type text NOT NULL REFERENCES app_private.job_types (job_type) ON DELETE CASCADE,
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('boolean', 'integer', 'number', 'string', 'integer_list', 'string_list')),
  minimum numeric,
  maximum numeric,
  max_items integer CHECK (max_items >= 1),
  choices text[],
  limit_name text,
  PRIMARY KEY (job_type, name)
);
ALTER TABLE app_private.job_params ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON app_private.job_params FROM PUBLIC;
INSERT INTO app_private.job_params (job_type, name, kind, minimum, maximum, max_items, choices, limit_name) VALUES
  ('metadata', 'source_version', 'string', 1, 200, NULL, NULL, 'MAX_SOURCE_VERSION_LENGTH'),
  ('optimize', 'source_version', 'string', 1, 200, NULL, NULL, 'MAX_SOURCE_VERSION_LENGTH'),
  ('thumbnail', 'source_version', 'string', 1, 200, NULL, NULL, 'MAX_SOURCE_VERSION_LENGTH'),
  ('transcode', 'source_version', 'string', 1, 200, NULL, NULL, 'MAX_SOURCE_VERSION_LENGTH'),
  ('transcript', 'source_version', 'string', 1, 200, NULL, NULL, 'MAX_SOURCE_VERSION_LENGTH'),
  ('thumbnail', 'widths', 'integer_list', 16, 4096, 12, NULL, 'MAX_VARIANT_WIDTH, MAX_VARIANT_COUNT'),
  ('thumbnail', 'formats', 'string_list', NULL, NULL, 3, '{webp,avif,jpeg}', NULL),
  ('thumbnail', 'storyboard', 'boolean', NULL, NULL, NULL, NULL, NULL),
  ('thumbnail', 'animation', 'boolean', NULL, NULL, NULL, NULL, NULL),
  ('transcode', 'renditions', 'integer_list', 144, 2160, 4, NULL,
   'MAX_RENDITIONS_PER_JOB, MIN_RENDITION_HEIGHT, MAX_RENDITION_HEIGHT'),
  ('transcode', 'preset', 'string', NULL, NULL, NULL, '{ultrafast,superfast,veryfast,faster,fast,medium}', NULL),
  ('transcode', 'normalize_audio', 'boolean', NULL, NULL, NULL, NULL, NULL),
  ('transcode', 'loudness_lufs', 'number', -70, -5, NULL, NULL, 'MIN_LOUDNESS_LUFS, MAX_LOUDNESS_LUFS'),
  ('transcode', 'hls', 'boolean', NULL, NULL, NULL, NULL, NULL),
  ('transcode', 'subtitles', 'boolean', NULL, NULL, NULL, NULL, NULL),
  ('transcode', 'hdr', 'string', NULL, NULL, NULL, '{tonemap,keep}', NULL),
  ('transcript', 'word_timestamps', 'boolean', NULL, NULL, NULL, NULL, NULL),
  ('transcript', 'language', 'string', 2, 3, NULL, NULL, 'MIN_LANGUAGE_CODE_LENGTH, MAX_LANGUAGE_CODE_LENGTH'),
  ('noop', 'sleep_seconds', 'number', 0, 60, NULL, NULL, 'MAX_NOOP_SLEEP_SECONDS'),
  ('noop', 'fail', 'string', NULL, NULL, NULL, '{permanent,transient}', NULL),
  ('noop', 'crash', 'boolean', NULL, NULL, NULL, NULL, NULL),
  ('noop', 'tag', 'string', 1, 200, NULL, NULL, 'MAX_NOOP_TAG_LENGTH');

-- One value against one field (an item of a list field when p_item); raises 22023 naming both.
CREATE FUNCTION app_private.check_job_param_value(p_job_type text, p_field app_private.job_params,
                                                  p_value jsonb, p_item boolean)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = '' AS $$
DECLARE
  v_what text := format('%s parameter %s%s', p_job_type, p_field.name, CASE WHEN p_item THEN ' item' ELSE '' END);
  v_kind text := CASE WHEN p_item THEN replace(p_field.kind, '_list', '') ELSE p_field.kind END;
  v_type text := jsonb_typeof(p_value);
  v_bounds text := CASE
    WHEN p_field.minimum IS NOT NULL AND p_field.maximum IS NOT NULL
      THEN format('between %s and %s', trim_scale(p_field.minimum), trim_scale(p_field.maximum))
    WHEN p_field.minimum IS NOT NULL THEN format('at least %s', trim_scale(p_field.minimum))
    ELSE format('at most %s', trim_scale(p_field.maximum)) END;
  v_limit text := CASE WHEN p_field.limit_name IS NULL THEN '' ELSE format(' (%s)', p_field.limit_name) END;
  v_num numeric;
  v_len integer;
BEGIN
  IF v_kind = 'boolean' THEN
    IF v_type <> 'boolean' THEN
      RAISE EXCEPTION '% must be true or false, got %', v_what, p_value USING ERRCODE = '22023';
    END IF;
  ELSIF v_kind IN ('integer', 'number') THEN
    IF v_type <> 'number' THEN
      RAISE EXCEPTION '% must be %, got %', v_what, CASE v_kind WHEN 'integer' THEN 'an integer' ELSE 'a number' END,
        p_value USING ERRCODE = '22023';
    END IF;
    v_num := p_value::numeric;
    IF v_kind = 'integer' AND p_value::text !~ '^-?[0-9]+$' THEN
      RAISE EXCEPTION '% must be an integer, got %', v_what, p_value USING ERRCODE = '22023';
    END IF;
    IF v_num < p_field.minimum OR v_num > p_field.maximum THEN
      RAISE EXCEPTION '% must be %, got %', v_what, v_bounds || v_limit, p_value USING ERRCODE = '22023';
    END IF;
  ELSIF v_kind = 'string' THEN
    IF v_type <> 'string' THEN
      RAISE EXCEPTION '% must be a string, got %', v_what, p_value USING ERRCODE = '22023';
    END IF;
    IF p_field.choices IS NOT NULL AND NOT (p_value #>> '{}') = ANY (p_field.choices) THEN
      RAISE EXCEPTION '% must be one of %, got %', v_what, array_to_string(p_field.choices, ', '), p_value
        USING ERRCODE = '22023';
    END IF;
    v_len := char_length(p_value #>> '{}');
    IF v_len < p_field.minimum OR v_len > p_field.maximum THEN
      RAISE EXCEPTION '% must be % characters long%, got %', v_what, v_bounds, v_limit, p_value USING ERRCODE = '22023';
    END IF;
  END IF;
END;
$$;

-- Every parameter of a job against its job type's schema: unknown names are refused too.
CREATE FUNCTION app_private.check_job_params(p_job_type text, p_params jsonb)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = '' AS $$
DECLARE
  v_key text;
  v_value jsonb;
  v_field app_private.job_params;
  v_item jsonb;
BEGIN
  IF jsonb_typeof(p_params) <> 'object' THEN
    RAISE EXCEPTION '% parameters must be a JSON object', p_job_type USING ERRCODE = '22023';
  END IF;
  FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(p_params) e ORDER BY e.key LOOP
    SELECT f.* INTO v_field FROM app_private.job_params f WHERE f.job_type = p_job_type AND f.name = v_key;
    IF NOT FOUND THEN
      RAISE EXCEPTION '% jobs take no parameter "%" (allowed: %)', p_job_type, v_key,
        coalesce((SELECT string_agg(f.name, ', ' ORDER BY f.name) FROM app_private.job_params f
                  WHERE f.job_type = p_job_type), 'none')
        USING ERRCODE = '22023';
    END IF;
    IF v_field.kind LIKE '%\_list' THEN
      IF jsonb_typeof(v_value) <> 'array' OR jsonb_array_length(v_value) = 0 THEN
        RAISE EXCEPTION '% parameter % must be a non-empty list, got %', p_job_type, v_key, v_value
          USING ERRCODE = '22023';
      END IF;
      IF jsonb_array_length(v_value) > v_field.max_items THEN
        RAISE EXCEPTION '% parameter % may have at most % items%, got %', p_job_type, v_key, v_field.max_items,
          CASE WHEN v_field.limit_name IS NULL THEN '' ELSE format(' (%s)', v_field.limit_name) END,
          jsonb_array_length(v_value) USING ERRCODE = '22023';
      END IF;
      FOR v_item IN SELECT a.value FROM jsonb_array_elements(v_value) a LOOP
        PERFORM app_private.check_job_param_value(p_job_type, v_field, v_item, true);
      END LOOP;
    ELSE
      PERFORM app_private.check_job_param_value(p_job_type, v_field, v_value, false);
    END IF;
  END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Enqueue, with the priority model, the parameter schema and test-only types; an asset the API
-- caller cannot see gets the answer of one that does not exist (PT404: PostgREST's HTTP 404),
-- and no message names another tenant.
CREATE OR REPLACE FUNCTION public.enqueue_asset_job(
  asset_id uuid,
  job_type text,
  params jsonb DEFAULT '{}',
  priority integer DEFAULT NULL,
  run_after timestamptz DEFAULT now(),
  idempotency_key text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_api boolean := app.caller_is_api();
  v_asset record;
  v_type record;
  v_id uuid;
  v_existing record;
  v_params jsonb := coalesce(params, '{}');
  v_priority integer;
  v_tenant_priority integer;
BEGIN
  SELECT a.id, a.tenant_id, a.file_type, a.processing_status INTO v_asset
  FROM public.assets a WHERE a.id = enqueue_asset_job.asset_id;
  IF NOT FOUND OR (v_api AND NOT app.has_tenant_role(v_asset.tenant_id, 'member')) THEN
    RAISE EXCEPTION 'asset % does not exist', enqueue_asset_job.asset_id USING ERRCODE = 'PT404';
  END IF;
  IF v_api AND NOT app.has_tenant_role(v_asset.tenant_id, 'author') THEN
    RAISE EXCEPTION 'processing assets needs author rights or higher in the asset''s tenant'
      USING ERRCODE = '42501';
  END IF;
  IF v_asset.processing_status = 'deleted' THEN
    RAISE EXCEPTION 'asset % is deleted', v_asset.id USING ERRCODE = '22023';
  END IF;
  SELECT t.job_type, t.file_types, t.default_max_attempts, t.priority, t.test_only, t.enabled INTO v_type
  FROM app_private.job_types t WHERE t.job_type = enqueue_asset_job.job_type;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown job type "%"; known: %', enqueue_asset_job.job_type,
      (SELECT string_agg(t.job_type, ', ' ORDER BY t.job_type) FROM app_private.job_types t WHERE t.enabled)
      USING ERRCODE = '22023';
  END IF;
  IF NOT v_type.enabled THEN
    RAISE EXCEPTION 'job type "%" is %', v_type.job_type,
      CASE WHEN v_type.test_only THEN 'for tests only and is turned off in this database'
           ELSE 'turned off in this database' END
      USING ERRCODE = '22023',
            HINT = 'An operator turns it on with UPDATE app_private.job_types SET enabled = true WHERE job_type = ...';
  END IF;
  IF NOT v_asset.file_type = ANY (v_type.file_types) THEN
    RAISE EXCEPTION 'job type "%" does not apply to % assets (it takes: %)',
      v_type.job_type, v_asset.file_type, array_to_string(v_type.file_types, ', ') USING ERRCODE = '22023';
  END IF;
  IF enqueue_asset_job.priority NOT BETWEEN 1 AND 10 THEN
    RAISE EXCEPTION 'priority must be between 1 and 10, got %', enqueue_asset_job.priority USING ERRCODE = '22023';
  END IF;
  PERFORM app_private.check_job_params(v_type.job_type, v_params);
  -- The priority model (see the top of this migration).
  IF v_api THEN
    v_priority := v_type.priority;
    v_tenant_priority := coalesce(enqueue_asset_job.priority, 5);
  ELSE
    v_priority := coalesce(enqueue_asset_job.priority, v_type.priority);
    v_tenant_priority := 5;
  END IF;

  FOR i IN 1..3 LOOP
    INSERT INTO public.asset_processing_jobs AS j
      (tenant_id, asset_id, job_type, priority, tenant_priority, input_params, run_after, idempotency_key,
       max_attempts)
    VALUES (v_asset.tenant_id, v_asset.id, v_type.job_type, v_priority, v_tenant_priority, v_params,
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

CREATE OR REPLACE FUNCTION public.enqueue_asset_jobs(
  asset_id uuid,
  job_types text[],
  params jsonb DEFAULT '{}',
  priority integer DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION public.cancel_asset_job(job_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_tenant uuid;
BEGIN
  SELECT j.tenant_id INTO v_tenant FROM public.asset_processing_jobs j WHERE j.id = cancel_asset_job.job_id;
  IF NOT FOUND OR (app.caller_is_api() AND NOT app.has_tenant_role(v_tenant, 'member')) THEN
    RAISE EXCEPTION 'job % does not exist', cancel_asset_job.job_id USING ERRCODE = 'PT404';
  END IF;
  IF app.caller_is_api() AND NOT app.has_tenant_role(v_tenant, 'author') THEN
    RAISE EXCEPTION 'cancelling jobs needs author rights or higher in the job''s tenant' USING ERRCODE = '42501';
  END IF;
  UPDATE public.asset_processing_jobs j
  SET status = 'cancelled', completed_at = now(), worker_id = coalesce(j.worker_id, 'cancelled'),
      error_message = 'cancelled'
  WHERE j.id = cancel_asset_job.job_id AND j.status IN ('pending', 'running');
  RETURN FOUND;
END;
$$;

CREATE OR REPLACE FUNCTION public.retry_asset_job(job_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_tenant uuid;
BEGIN
  SELECT j.tenant_id INTO v_tenant FROM public.asset_processing_jobs j WHERE j.id = retry_asset_job.job_id;
  IF NOT FOUND OR (app.caller_is_api() AND NOT app.has_tenant_role(v_tenant, 'member')) THEN
    RAISE EXCEPTION 'job % does not exist', retry_asset_job.job_id USING ERRCODE = 'PT404';
  END IF;
  IF app.caller_is_api() AND NOT app.has_tenant_role(v_tenant, 'author') THEN
    RAISE EXCEPTION 'retrying jobs needs author rights or higher in the job''s tenant' USING ERRCODE = '42501';
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

-- Claim: fleet priority first (operators' knob), then the tenant fairness of 0005 (fewest running,
-- served longest ago, then the age of the job it would run next), then within the chosen tenant its
-- own priority (tenant_priority), then the oldest job.
CREATE OR REPLACE FUNCTION app_private.claim_job(p_worker_id text, p_lease_seconds integer)
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
        -- The run_after of the job the tenant would run next (its own priority, then age): one
        -- step down jobs_claim_idx, where min(run_after) would read all of the tenant's jobs.
        SELECT t.tenant_id,
               (SELECT j.run_after FROM public.asset_processing_jobs j
                WHERE j.status = 'pending' AND j.priority = v_priority AND j.tenant_id = t.tenant_id
                  AND j.run_after <= now()
                ORDER BY j.tenant_priority DESC, j.run_after LIMIT 1) AS oldest
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
        ORDER BY c.tenant_priority DESC, c.run_after
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

-- ---------------------------------------------------------------------------------------------
-- track_engagement: content the caller may not read is answered like content that does not
-- exist, with PostgREST's 404 (was 42501 for one and P0002, an HTTP 500, for the other).
CREATE OR REPLACE FUNCTION public.track_engagement(
  p_content_id uuid,
  p_event_type public.engagement_event_enum,
  p_event_data jsonb DEFAULT '{}',
  p_session_id text DEFAULT NULL,
  p_client_event_id text DEFAULT NULL,
  p_occurred_at timestamptz DEFAULT NULL,
  p_referrer text DEFAULT NULL,
  p_utm_source text DEFAULT NULL,
  p_utm_medium text DEFAULT NULL,
  p_utm_campaign text DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_uid uuid := auth.uid();
  v_tenant uuid;
  v_at timestamptz;
  v_key text;
  v_headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
  v_ip inet;
BEGIN
  SELECT c.tenant_id INTO v_tenant FROM public.content c WHERE c.id = p_content_id;
  IF NOT FOUND OR (app.caller_is_api() AND NOT app.can_read_content(p_content_id)) THEN
    RAISE EXCEPTION 'content % does not exist', p_content_id USING ERRCODE = 'PT404';
  END IF;
  IF v_uid IS NULL AND p_session_id IS NULL AND p_client_event_id IS NULL THEN
    RAISE EXCEPTION 'anonymous events need a session id or a client event id' USING ERRCODE = '22023';
  END IF;
  IF p_client_event_id IS NOT NULL THEN
    v_at := least(greatest(coalesce(p_occurred_at, now()), now() - interval '1 day'), now() + interval '5 minutes');
    v_key := 'c:' || p_client_event_id;
  ELSE
    v_at := date_bin('1 minute', now(), timestamptz '2000-01-01 00:00:00+00');
    v_key := 'f:' || md5(concat_ws('|', p_content_id, v_uid, p_session_id, p_event_type));
  END IF;
  BEGIN
    v_ip := split_part(v_headers ->> 'x-forwarded-for', ',', 1)::inet;
  EXCEPTION WHEN others THEN
    v_ip := NULL;
  END;
  INSERT INTO public.content_engagement (tenant_id, content_id, user_id, session_id, event_type, event_data,
    idempotency_key, user_agent, ip_address, referrer, utm_source, utm_medium, utm_campaign, created_at)
  VALUES (v_tenant, p_content_id, v_uid, p_session_id, p_event_type, coalesce(p_event_data, '{}'),
    v_key, v_headers ->> 'user-agent', v_ip, p_referrer, p_utm_source, p_utm_medium, p_utm_campaign, v_at)
  ON CONFLICT DO NOTHING;
  RETURN FOUND;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- content.search_language as text (Supabase lint 0018: reg* columns block pg_upgrade). The name
-- is validated against the built-in text search configurations and cast where it is used.

-- The configuration named p_language (a built-in one, in pg_catalog), or NULL when there is none.
-- IMMUTABLE so that the generated search vector may use it: built-in configurations are part of
-- the server and are not renamed or dropped.
CREATE FUNCTION app.search_config(p_language text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = '' AS $$
  SELECT c.oid::regconfig FROM pg_catalog.pg_ts_config c
  WHERE c.cfgname = p_language AND c.cfgnamespace = 'pg_catalog'::regnamespace
$$;
GRANT EXECUTE ON FUNCTION app.search_config(text) TO anon, authenticated, service_role;

ALTER TABLE public.content DROP COLUMN search_vector;  -- its GIN index goes with it
ALTER TABLE public.content ALTER COLUMN search_language DROP DEFAULT;
ALTER TABLE public.content ALTER COLUMN search_language TYPE text USING search_language::text;
ALTER TABLE public.content ALTER COLUMN search_language SET DEFAULT 'english';
ALTER TABLE public.content ADD CONSTRAINT content_search_language_known
  CHECK (app.search_config(search_language) IS NOT NULL);
ALTER TABLE public.content ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector(app.search_config(search_language), coalesce(title, '')), 'A')
    || setweight(to_tsvector(app.search_config(search_language), coalesce(excerpt, '')), 'B')
    || setweight(to_tsvector(app.search_config(search_language), coalesce(seo_description, '')), 'C')
    || setweight(jsonb_to_tsvector(app.search_config(search_language), blocks, '["string"]'), 'D')
  ) STORED;
CREATE INDEX content_search_idx ON public.content USING gin (search_vector);

-- ---------------------------------------------------------------------------------------------
-- search_content: every argument has a default, so named-argument callers (PostgREST RPC,
-- supabase-js) may leave the tenant out (then app.current_tenant_id or the JWT's tenant is used);
-- p_language is text, validated.
DROP FUNCTION public.search_content(uuid, text, public.content_type_enum[], uuid[], uuid[], integer, integer, regconfig);
CREATE FUNCTION public.search_content(
  p_tenant_id uuid DEFAULT NULL,
  p_query text DEFAULT NULL,
  p_content_types public.content_type_enum[] DEFAULT NULL,
  p_categories uuid[] DEFAULT NULL,
  p_tags uuid[] DEFAULT NULL,
  p_limit integer DEFAULT 20,
  p_offset integer DEFAULT 0,
  p_language text DEFAULT 'english'
)
RETURNS TABLE (content_id uuid, title text, excerpt text, content_type public.content_type_enum,
               published_at timestamptz, rank real)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_tenant uuid := coalesce(p_tenant_id, public.get_current_tenant_id());
  v_config regconfig := app.search_config(p_language);
  v_member boolean;
BEGIN
  IF v_tenant IS NULL THEN
    RAISE EXCEPTION 'search_content needs a tenant (p_tenant_id, app.current_tenant_id or the JWT''s tenant_id)'
      USING ERRCODE = '22023';
  END IF;
  IF p_query IS NULL THEN
    RAISE EXCEPTION 'search_content needs p_query' USING ERRCODE = '22023';
  END IF;
  IF v_config IS NULL THEN
    RAISE EXCEPTION 'p_language "%" is not a text search configuration of this server', p_language
      USING ERRCODE = '22023';
  END IF;
  IF p_limit NOT BETWEEN 1 AND 100 OR p_offset < 0 THEN
    RAISE EXCEPTION 'p_limit must be between 1 and 100 and p_offset at least 0' USING ERRCODE = '22023';
  END IF;
  v_member := NOT app.caller_is_api() OR app.has_tenant_role(v_tenant, 'member');
  RETURN QUERY
  WITH q AS (
    SELECT websearch_to_tsquery(v_config, p_query) AS words, websearch_to_tsquery('simple', p_query) AS spoken
  ), hits AS (
    SELECT c.id, ts_rank(c.search_vector, q.words) AS r
    FROM public.content c, q
    WHERE c.tenant_id = v_tenant AND c.search_vector @@ q.words
      AND c.status = 'published' AND c.visibility IN ('public', 'members')
    UNION ALL
    SELECT ca.content_id, 0.5 * ts_rank(a.transcript_vector, q.spoken)
    FROM public.assets a
    JOIN public.content_assets ca ON ca.tenant_id = a.tenant_id AND ca.asset_id = a.id, q
    WHERE a.tenant_id = v_tenant AND a.transcript_text IS NOT NULL AND a.transcript_vector @@ q.spoken
  ), best AS (
    SELECT h.id, max(h.r)::real AS r FROM hits h GROUP BY h.id
  )
  SELECT c.id, c.title, c.excerpt, c.content_type, c.published_at, b.r
  FROM best b
  JOIN public.content c ON c.id = b.id
  WHERE c.status = 'published'
    AND ((c.visibility = 'public' AND (c.access_level = 'free' OR v_member))
         OR (c.visibility = 'members' AND v_member))
    AND (p_content_types IS NULL OR c.content_type = ANY (p_content_types))
    AND (p_categories IS NULL OR EXISTS (
          SELECT 1 FROM public.content_categorizations cc
          WHERE cc.tenant_id = c.tenant_id AND cc.content_id = c.id AND cc.category_id = ANY (p_categories)))
    AND (p_tags IS NULL OR EXISTS (
          SELECT 1 FROM public.content_categorizations ct
          WHERE ct.tenant_id = c.tenant_id AND ct.content_id = c.id AND ct.tag_id = ANY (p_tags)))
  ORDER BY b.r DESC, c.published_at DESC, c.id
  LIMIT p_limit OFFSET p_offset;
END;
$$;
REVOKE ALL ON FUNCTION public.search_content(uuid, text, public.content_type_enum[], uuid[], uuid[], integer, integer, text)
  FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.search_content(uuid, text, public.content_type_enum[], uuid[], uuid[], integer, integer, text)
  TO anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Unlisted content is reachable by its link, not listable: the public policy shows public items
-- only; members still list their tenant's unlisted items (content_select_member). Anyone with the
-- link fetches one item by tenant and slug.
DROP POLICY content_select_public ON public.content;
CREATE POLICY content_select_public ON public.content FOR SELECT TO anon, authenticated
  USING (status = 'published' AND visibility = 'public' AND access_level = 'free');

CREATE FUNCTION public.get_content_by_slug(p_tenant_id uuid, p_slug text)
RETURNS SETOF public.content
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT c.* FROM public.content c
  WHERE c.tenant_id = p_tenant_id AND c.slug = p_slug AND c.status = 'published'
    AND ((c.visibility IN ('public', 'unlisted') AND c.access_level = 'free')
         OR (c.visibility IN ('public', 'unlisted', 'members')
             AND (NOT app.caller_is_api() OR app.has_tenant_role(c.tenant_id, 'member'))))
$$;
REVOKE ALL ON FUNCTION public.get_content_by_slug(uuid, text) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.get_content_by_slug(uuid, text) TO anon, authenticated, service_role;

-- The same for collections: public ones are listed, unlisted ones fetched by tenant and slug.
DROP POLICY collections_select_public ON public.content_collections;
CREATE POLICY collections_select_public ON public.content_collections FOR SELECT TO anon, authenticated
  USING (status = 'published' AND visibility = 'public' AND access_level = 'free');

CREATE FUNCTION public.get_collection_by_slug(p_tenant_id uuid, p_slug text)
RETURNS SETOF public.content_collections
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT c.* FROM public.content_collections c
  WHERE c.tenant_id = p_tenant_id AND c.slug = p_slug AND c.status = 'published'
    AND c.visibility IN ('public', 'unlisted')
    AND (c.access_level = 'free' OR NOT app.caller_is_api() OR app.has_tenant_role(c.tenant_id, 'member'))
$$;
REVOKE ALL ON FUNCTION public.get_collection_by_slug(uuid, text) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.get_collection_by_slug(uuid, text) TO anon, authenticated, service_role;

REVOKE ALL ON FUNCTION app_private.check_job_param_value(text, app_private.job_params, jsonb, boolean),
  app_private.check_job_params(text, jsonb) FROM PUBLIC;
