-- Events out, uploads in (issue 15).
--
-- 1. An outbox: public.webhook_events rows written by triggers in the same transaction as the change
--    that causes them (a job finishing, an asset's processing status moving, a metadata job's result
--    landing), so a rolled-back change writes nothing and a committed one is never lost. The queue's
--    functions are not redefined: the triggers watch the rows they write.
-- 2. Endpoints per tenant (public.webhook_endpoints) with whsec_ secrets kept in app_private, shown
--    once, rotated with an overlap during which both sign; managed by SECURITY DEFINER RPCs that
--    check the caller is an admin of the tenant (operators, logged in directly, may do anything).
-- 3. Deliveries: one row per (event, endpoint), fanned out when the event is written; dispatchers
--    claim due rows with FOR UPDATE SKIP LOCKED, post, and record each attempt (the delivery log).
-- 4. LISTEN contentforge_events: the id of every new event, at commit.
-- 5. Supabase Storage ingest: where storage.objects exists, a trigger creates the asset and enqueues
--    its jobs once per object version for the buckets and prefixes named in app_private.storage_ingest_rules.

-- ---------------------------------------------------------------------------------------------
-- Outbox

CREATE TABLE public.webhook_events (
  -- The event's stable id: the webhook-id header of every delivery and retry of this event.
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  event_type text NOT NULL CHECK (event_type IN (
    'job.completed', 'job.failed', 'asset.processing_started', 'asset.metadata_available',
    'asset.ready', 'asset.failed')),
  -- No foreign keys: an event outlives the asset or job it tells about.
  asset_id uuid,
  job_id uuid,
  data jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhook_events_tenant_created_idx ON public.webhook_events (tenant_id, created_at);
CREATE INDEX webhook_events_created_idx ON public.webhook_events (created_at);

-- Event type names, for validating endpoint subscriptions.
CREATE FUNCTION app.webhook_event_types() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = '' AS $$
  SELECT ARRAY['job.completed', 'job.failed', 'asset.processing_started', 'asset.metadata_available',
               'asset.ready', 'asset.failed']
$$;

-- What an asset event tells: the asset as it is when the transaction commits.
CREATE FUNCTION app_private.asset_event_data(p_asset public.assets) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT jsonb_build_object(
    'asset_id', p_asset.id, 'status', p_asset.processing_status, 'file_type', p_asset.file_type,
    'mime_type', p_asset.mime_type, 'original_filename', p_asset.original_filename,
    'file_size', p_asset.file_size, 'storage_bucket', p_asset.storage_bucket,
    'storage_path', p_asset.storage_path, 'progress', p_asset.processing_progress,
    'error', p_asset.processing_error, 'metadata', p_asset.metadata, 'variants', p_asset.variants,
    'duration_seconds', p_asset.duration_seconds, 'transcript_language', p_asset.transcript_language)
$$;

-- Largest job output copied into a job.completed event, in bytes: a transcript can be long, and the
-- receiver can read the full output with get_job.
CREATE FUNCTION app_private.job_event_output_limit() RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = '' AS $$ SELECT 65536 $$;

-- Job finished for good (completed, or failed with no attempt left). A deferred constraint trigger:
-- it runs at commit, after the worker has also written the job's outputs to the asset, so the
-- metadata event carries the metadata.
CREATE FUNCTION app_private.job_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_job public.asset_processing_jobs;
  v_asset public.assets;
BEGIN
  SELECT * INTO v_job FROM public.asset_processing_jobs j WHERE j.id = NEW.id;
  IF NOT FOUND OR v_job.status <> NEW.status THEN
    v_job := NEW;  -- deleted or changed again later in the transaction: tell what happened then
  END IF;
  INSERT INTO public.webhook_events (tenant_id, event_type, asset_id, job_id, data)
  VALUES (v_job.tenant_id, 'job.' || NEW.status, v_job.asset_id, v_job.id, jsonb_build_object(
    'job_id', v_job.id, 'asset_id', v_job.asset_id, 'job_type', v_job.job_type, 'status', NEW.status,
    'attempts', v_job.attempts, 'completed_at', v_job.completed_at, 'error_message', v_job.error_message,
    'output', CASE WHEN NEW.status = 'completed'
                        AND pg_column_size(v_job.output_data) <= app_private.job_event_output_limit()
                   THEN v_job.output_data END));
  IF NEW.status = 'completed' AND v_job.job_type = 'metadata' THEN
    SELECT * INTO v_asset FROM public.assets a WHERE a.tenant_id = v_job.tenant_id AND a.id = v_job.asset_id;
    IF FOUND THEN
      INSERT INTO public.webhook_events (tenant_id, event_type, asset_id, data)
      VALUES (v_asset.tenant_id, 'asset.metadata_available', v_asset.id, app_private.asset_event_data(v_asset));
    END IF;
  END IF;
  RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER jobs_events AFTER UPDATE OF status ON public.asset_processing_jobs
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('completed', 'failed'))
  EXECUTE FUNCTION app_private.job_events();

-- Asset processing started, ready or failed (the roll-up moved its status). Deferred like the job
-- trigger, so asset.ready carries every variant written in the same transaction.
CREATE FUNCTION app_private.asset_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_asset public.assets;
BEGIN
  SELECT * INTO v_asset FROM public.assets a WHERE a.id = NEW.id;
  IF NOT FOUND THEN
    v_asset := NEW;
  END IF;
  INSERT INTO public.webhook_events (tenant_id, event_type, asset_id, data)
  VALUES (v_asset.tenant_id,
          CASE NEW.processing_status WHEN 'processing' THEN 'asset.processing_started'
                                     WHEN 'ready' THEN 'asset.ready' ELSE 'asset.failed' END,
          v_asset.id,
          app_private.asset_event_data(v_asset) || jsonb_build_object('status', NEW.processing_status));
  RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER assets_events_insert AFTER INSERT ON public.assets
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.processing_status IN ('processing', 'ready', 'failed'))
  EXECUTE FUNCTION app_private.asset_events();
CREATE CONSTRAINT TRIGGER assets_events_update AFTER UPDATE OF processing_status ON public.assets
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (OLD.processing_status IS DISTINCT FROM NEW.processing_status
        AND NEW.processing_status IN ('processing', 'ready', 'failed'))
  EXECUTE FUNCTION app_private.asset_events();

-- ---------------------------------------------------------------------------------------------
-- Endpoints

CREATE TABLE public.webhook_endpoints (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  url text NOT NULL CHECK (url ~* '^https?://[^/?#@\s]+([/?#]\S*)?$' AND char_length(url) <= 2000),
  description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
  -- Event types sent to this endpoint; empty means every type.
  event_types text[] NOT NULL DEFAULT '{}' CHECK (event_types <@ app.webhook_event_types()),
  enabled boolean NOT NULL DEFAULT true,
  -- Health: when the current run of failed attempts started (NULL after a success), and why the
  -- dispatcher disabled the endpoint (failing for longer than the operator's limit).
  failing_since timestamptz,
  disabled_at timestamptz,
  disabled_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, id)
);
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.webhook_endpoints
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

-- Signing secrets, never readable through the API: shown once by the RPC that makes them. While
-- expires_at is in the future (a rotation's overlap) an old secret still signs.
CREATE TABLE app_private.webhook_secrets (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  endpoint_id uuid NOT NULL REFERENCES public.webhook_endpoints (id) ON DELETE CASCADE,
  secret text NOT NULL CHECK (secret LIKE 'whsec\_%'),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz
);
CREATE INDEX webhook_secrets_endpoint_idx ON app_private.webhook_secrets (endpoint_id, created_at);

-- A new whsec_ secret: 32 bytes from two version-4 UUIDs (244 random bits from the server's strong
-- random source; gen_random_uuid is core PostgreSQL, pgcrypto is not needed).
CREATE FUNCTION app_private.new_webhook_secret() RETURNS text
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  SELECT 'whsec_' || encode(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'),
                            'base64')
$$;

-- The tenant of an endpoint the caller may manage: API callers must be admins of its tenant;
-- operators (direct logins, service_role) may manage any. "Not found" and "not yours" are one
-- error (PostgREST answers 404), so ids of other tenants' endpoints leak nothing.
CREATE FUNCTION app_private.managed_endpoint_tenant(p_endpoint_id uuid) RETURNS uuid
LANGUAGE plpgsql STABLE SET search_path = '' AS $$
DECLARE
  v_tenant uuid;
BEGIN
  SELECT e.tenant_id INTO v_tenant FROM public.webhook_endpoints e WHERE e.id = p_endpoint_id;
  IF v_tenant IS NULL OR (app.caller_is_api() AND NOT app.has_tenant_role(v_tenant, 'admin')) THEN
    RAISE EXCEPTION 'webhook endpoint % not found', p_endpoint_id USING ERRCODE = 'PT404';
  END IF;
  RETURN v_tenant;
END;
$$;

CREATE FUNCTION app_private.check_webhook_settings(p_url text, p_event_types text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = '' AS $$
BEGIN
  IF p_url IS NOT NULL AND (p_url !~* '^https?://[^/?#@\s]+([/?#]\S*)?$' OR char_length(p_url) > 2000) THEN
    RAISE EXCEPTION 'url must be an http(s) URL without credentials, at most 2000 characters'
      USING ERRCODE = '22023';
  END IF;
  IF p_event_types IS NOT NULL AND NOT p_event_types <@ app.webhook_event_types() THEN
    RAISE EXCEPTION 'unknown event type in %; known: %', p_event_types,
      array_to_string(app.webhook_event_types(), ', ') USING ERRCODE = '22023';
  END IF;
END;
$$;

-- Most endpoints one tenant may register (each one multiplies the tenant's deliveries).
CREATE FUNCTION app_private.max_webhook_endpoints_per_tenant() RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = '' AS $$ SELECT 10 $$;

-- Register an endpoint; returns its id and its secret (shown this once).
CREATE FUNCTION public.create_webhook_endpoint(
  tenant_id uuid,
  url text,
  event_types text[] DEFAULT '{}',
  description text DEFAULT ''
) RETURNS TABLE (endpoint_id uuid, secret text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_id uuid;
  v_secret text := app_private.new_webhook_secret();
BEGIN
  IF app.caller_is_api() AND NOT app.has_tenant_role(create_webhook_endpoint.tenant_id, 'admin') THEN
    RAISE EXCEPTION 'not allowed: only admins of the tenant manage its webhook endpoints' USING ERRCODE = '42501';
  END IF;
  PERFORM app_private.check_webhook_settings(create_webhook_endpoint.url, create_webhook_endpoint.event_types);
  -- Each endpoint multiplies every event of the tenant into one more delivery for the shared
  -- dispatchers: the count per tenant is bounded so that one tenant cannot crowd out the others.
  -- (Two concurrent creations count in turn: the tenant row is locked, in a mode that rows
  -- referencing the tenant do not wait for.)
  PERFORM 1 FROM public.tenants t WHERE t.id = create_webhook_endpoint.tenant_id FOR NO KEY UPDATE;
  IF (SELECT count(*) FROM public.webhook_endpoints e WHERE e.tenant_id = create_webhook_endpoint.tenant_id)
     >= app_private.max_webhook_endpoints_per_tenant() THEN
    RAISE EXCEPTION 'a tenant may have at most % webhook endpoints', app_private.max_webhook_endpoints_per_tenant()
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO public.webhook_endpoints (tenant_id, url, event_types, description)
  VALUES (create_webhook_endpoint.tenant_id, create_webhook_endpoint.url,
          coalesce(create_webhook_endpoint.event_types, '{}'), coalesce(create_webhook_endpoint.description, ''))
  RETURNING id INTO v_id;
  INSERT INTO app_private.webhook_secrets (endpoint_id, secret) VALUES (v_id, v_secret);
  RETURN QUERY SELECT v_id, v_secret;
END;
$$;

-- Change an endpoint; NULL leaves a field as it is. Enabling clears the dispatcher's verdict.
CREATE FUNCTION public.update_webhook_endpoint(
  endpoint_id uuid,
  url text DEFAULT NULL,
  event_types text[] DEFAULT NULL,
  enabled boolean DEFAULT NULL,
  description text DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  PERFORM app_private.managed_endpoint_tenant(update_webhook_endpoint.endpoint_id);
  PERFORM app_private.check_webhook_settings(update_webhook_endpoint.url, update_webhook_endpoint.event_types);
  UPDATE public.webhook_endpoints e SET
    url = coalesce(update_webhook_endpoint.url, e.url),
    event_types = coalesce(update_webhook_endpoint.event_types, e.event_types),
    description = coalesce(update_webhook_endpoint.description, e.description),
    enabled = coalesce(update_webhook_endpoint.enabled, e.enabled),
    failing_since = CASE WHEN update_webhook_endpoint.enabled THEN NULL ELSE e.failing_since END,
    disabled_at = CASE WHEN update_webhook_endpoint.enabled THEN NULL
                       WHEN update_webhook_endpoint.enabled = false THEN coalesce(e.disabled_at, now())
                       ELSE e.disabled_at END,
    disabled_reason = CASE WHEN update_webhook_endpoint.enabled THEN NULL
                           WHEN update_webhook_endpoint.enabled = false AND e.enabled THEN 'disabled by request'
                           ELSE e.disabled_reason END
  WHERE e.id = update_webhook_endpoint.endpoint_id;
  RETURN FOUND;
END;
$$;

-- A new secret; the current ones keep signing for overlap_seconds (default a day), then expire.
CREATE FUNCTION public.rotate_webhook_secret(endpoint_id uuid, overlap_seconds integer DEFAULT 86400)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_secret text := app_private.new_webhook_secret();
BEGIN
  PERFORM app_private.managed_endpoint_tenant(rotate_webhook_secret.endpoint_id);
  IF rotate_webhook_secret.overlap_seconds IS NULL OR rotate_webhook_secret.overlap_seconds NOT BETWEEN 0 AND 604800 THEN
    RAISE EXCEPTION 'overlap_seconds must be between 0 and 604800 (a week)' USING ERRCODE = '22023';
  END IF;
  UPDATE app_private.webhook_secrets s
  SET expires_at = least(coalesce(s.expires_at, 'infinity'),
                         now() + make_interval(secs => rotate_webhook_secret.overlap_seconds))
  WHERE s.endpoint_id = rotate_webhook_secret.endpoint_id;
  DELETE FROM app_private.webhook_secrets s
  WHERE s.endpoint_id = rotate_webhook_secret.endpoint_id AND s.expires_at <= now();
  INSERT INTO app_private.webhook_secrets (endpoint_id, secret) VALUES (rotate_webhook_secret.endpoint_id, v_secret);
  RETURN v_secret;
END;
$$;

CREATE FUNCTION public.delete_webhook_endpoint(endpoint_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  PERFORM app_private.managed_endpoint_tenant(delete_webhook_endpoint.endpoint_id);
  DELETE FROM public.webhook_endpoints e WHERE e.id = delete_webhook_endpoint.endpoint_id;
  RETURN FOUND;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Deliveries and their log

CREATE TABLE public.webhook_deliveries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  event_id uuid NOT NULL REFERENCES public.webhook_events (id) ON DELETE CASCADE,
  endpoint_id uuid NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed')),
  -- Attempts since the delivery was (re)started; the retry window runs from window_started_at.
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  window_started_at timestamptz NOT NULL DEFAULT now(),
  -- Pending: when the next attempt is due. Delivering: when the dispatcher's lease expires (then
  -- another dispatcher takes the delivery over).
  due_at timestamptz NOT NULL DEFAULT now(),
  dispatcher_id text,
  last_status_code integer,
  last_error text,
  last_latency_ms integer,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  CONSTRAINT webhook_deliveries_event_endpoint_key UNIQUE (event_id, endpoint_id),
  FOREIGN KEY (tenant_id, endpoint_id) REFERENCES public.webhook_endpoints (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due_idx ON public.webhook_deliveries (due_at)
  WHERE status IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_endpoint_idx ON public.webhook_deliveries (tenant_id, endpoint_id, created_at);
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.webhook_deliveries
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();
ALTER TABLE public.webhook_deliveries SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02);

CREATE TABLE public.webhook_delivery_attempts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id uuid NOT NULL,
  delivery_id uuid NOT NULL REFERENCES public.webhook_deliveries (id) ON DELETE CASCADE,
  event_id uuid NOT NULL,
  endpoint_id uuid NOT NULL,
  attempt integer NOT NULL,
  succeeded boolean NOT NULL,
  status_code integer,
  latency_ms integer NOT NULL,
  error text,
  response_excerpt text,
  dispatcher_id text NOT NULL,
  attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_delivery_idx ON public.webhook_delivery_attempts (delivery_id, attempt);
CREATE INDEX webhook_attempts_tenant_idx ON public.webhook_delivery_attempts (tenant_id, attempted_at);

-- New event: one delivery per enabled endpoint of the tenant that takes its type, and a
-- notification carrying the event id (delivered at commit, so a listener can read the row).
CREATE FUNCTION app_private.fan_out_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO public.webhook_deliveries (tenant_id, event_id, endpoint_id)
  SELECT e.tenant_id, NEW.id, e.id FROM public.webhook_endpoints e
  WHERE e.tenant_id = NEW.tenant_id AND e.enabled
    AND (e.event_types = '{}' OR NEW.event_type = ANY (e.event_types));
  PERFORM pg_notify('contentforge_events', NEW.id::text);
  RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_events_fan_out AFTER INSERT ON public.webhook_events
  FOR EACH ROW EXECUTE FUNCTION app_private.fan_out_event();

-- Send again: one event (to every subscribed endpoint of its tenant, or to one endpoint), or every
-- event of one endpoint's tenant in a time range. The same event id (webhook-id) is sent again; the
-- retry window starts afresh. Returns how many deliveries were queued.
CREATE FUNCTION public.replay_webhook_events(
  endpoint_id uuid DEFAULT NULL,
  event_id uuid DEFAULT NULL,
  since timestamptz DEFAULT NULL,
  until timestamptz DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_tenant uuid;
  v_count integer;
BEGIN
  IF replay_webhook_events.event_id IS NULL AND (replay_webhook_events.endpoint_id IS NULL OR replay_webhook_events.since IS NULL) THEN
    RAISE EXCEPTION 'name an event_id, or an endpoint_id and a since time' USING ERRCODE = '22023';
  END IF;
  IF replay_webhook_events.endpoint_id IS NOT NULL THEN
    v_tenant := app_private.managed_endpoint_tenant(replay_webhook_events.endpoint_id);
  END IF;
  IF replay_webhook_events.event_id IS NOT NULL THEN
    SELECT ev.tenant_id INTO v_tenant FROM public.webhook_events ev
    WHERE ev.id = replay_webhook_events.event_id AND (v_tenant IS NULL OR ev.tenant_id = v_tenant);
    IF v_tenant IS NULL OR (app.caller_is_api() AND NOT app.has_tenant_role(v_tenant, 'admin')) THEN
      RAISE EXCEPTION 'webhook event % not found', replay_webhook_events.event_id USING ERRCODE = 'PT404';
    END IF;
  END IF;
  WITH wanted AS (
    SELECT ev.id AS event_id, e.id AS endpoint_id, e.tenant_id
    FROM public.webhook_events ev
    JOIN public.webhook_endpoints e ON e.tenant_id = ev.tenant_id
    WHERE ev.tenant_id = v_tenant
      AND (replay_webhook_events.event_id IS NULL OR ev.id = replay_webhook_events.event_id)
      AND (replay_webhook_events.since IS NULL OR ev.created_at >= replay_webhook_events.since)
      AND (replay_webhook_events.until IS NULL OR ev.created_at < replay_webhook_events.until)
      AND (replay_webhook_events.endpoint_id IS NULL OR e.id = replay_webhook_events.endpoint_id)
      AND (e.event_types = '{}' OR ev.event_type = ANY (e.event_types))
  ), queued AS (
    INSERT INTO public.webhook_deliveries AS d (tenant_id, event_id, endpoint_id)
    SELECT w.tenant_id, w.event_id, w.endpoint_id FROM wanted w
    ON CONFLICT ON CONSTRAINT webhook_deliveries_event_endpoint_key DO UPDATE SET
      status = 'pending', attempts = 0, due_at = now(), window_started_at = now(), completed_at = NULL,
      dispatcher_id = NULL
    WHERE d.status <> 'delivering'
    RETURNING 1
  )
  SELECT count(*) INTO v_count FROM queued;
  PERFORM pg_notify('contentforge_events', '');
  RETURN v_count;
END;
$$;

-- Dispatcher side (app_private: operators' processes only). -----------------------------------

-- Claim up to p_limit due deliveries of enabled endpoints (pending and due, or delivering with an
-- expired lease: that dispatcher died). Returns what a POST needs: the body (built here once, the
-- exact bytes signed), the event id and time for the headers, and every secret that signs.
CREATE FUNCTION app_private.claim_webhook_deliveries(p_dispatcher_id text, p_limit integer, p_lease_seconds integer,
                                                     p_per_tenant integer DEFAULT 4)
RETURNS TABLE (delivery_id uuid, event_id uuid, endpoint_id uuid, tenant_id uuid, url text, attempt integer,
               event_type text, event_created_at timestamptz, body text, secrets text[])
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH claimed AS (
    UPDATE public.webhook_deliveries d SET
      status = 'delivering', attempts = d.attempts + 1, dispatcher_id = p_dispatcher_id,
      due_at = now() + make_interval(secs => p_lease_seconds)
    -- = ANY (ARRAY(...)): the claimed ids are looked up by primary key (an IN (subquery) may be
    -- planned as a hash join over the whole table, which grows with the delivery log).
    WHERE d.id = ANY (ARRAY(
      SELECT c.id FROM public.webhook_deliveries c
      WHERE c.id = ANY (ARRAY(
        -- Fairness between tenants: at most p_per_tenant deliveries of one tenant in flight across
        -- every dispatcher (a tenant whose receivers are slow or whose backlog is large holds at
        -- most that many sending threads), oldest due first within the tenant.
        SELECT r.id FROM (
          SELECT q.id, q.due_at, q.tenant_id,
                 row_number() OVER (PARTITION BY q.tenant_id ORDER BY q.due_at) AS nth
          FROM public.webhook_deliveries q
          JOIN public.webhook_endpoints e ON e.tenant_id = q.tenant_id AND e.id = q.endpoint_id
          WHERE q.status IN ('pending', 'delivering') AND q.due_at <= now() AND e.enabled
        ) r
        WHERE r.nth <= p_per_tenant - (
          SELECT count(*) FROM public.webhook_deliveries f
          WHERE f.tenant_id = r.tenant_id AND f.status = 'delivering' AND f.due_at > now())
        ORDER BY r.due_at
        LIMIT p_limit))
      FOR UPDATE OF c SKIP LOCKED
    ))
    RETURNING d.*
  )
  SELECT c.id, c.event_id, c.endpoint_id, c.tenant_id, e.url, c.attempts, ev.event_type, ev.created_at,
         jsonb_build_object(
           'id', ev.id, 'type', ev.event_type, 'tenant_id', ev.tenant_id,
           'timestamp', to_char(ev.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'data', ev.data)::text,
         ARRAY(SELECT s.secret FROM app_private.webhook_secrets s
               WHERE s.endpoint_id = c.endpoint_id AND (s.expires_at IS NULL OR s.expires_at > now())
               ORDER BY s.created_at DESC)
  FROM claimed c
  JOIN public.webhook_endpoints e ON e.id = c.endpoint_id
  JOIN public.webhook_events ev ON ev.id = c.event_id
$$;

-- Record one attempt in the log and move the delivery on: succeeded; or pending again after an
-- exponential backoff with jitter (base * 2^(attempt-1), at most p_retry_max_seconds, times a
-- random factor in [0.5, 1.5)); or failed once the retry window is over. An endpoint failing for
-- longer than p_disable_after is disabled, with the reason. Returns the delivery's new status
-- ('lost' when the delivery was taken over by another dispatcher meanwhile).
CREATE FUNCTION app_private.record_webhook_attempt(
  p_delivery_id uuid, p_dispatcher_id text, p_attempt integer, p_succeeded boolean, p_status_code integer,
  p_latency_ms integer, p_error text, p_response_excerpt text, p_retry_base_seconds double precision,
  p_retry_max_seconds double precision, p_give_up_after interval, p_disable_after interval
) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  v_d public.webhook_deliveries;
  v_status text;
BEGIN
  SELECT * INTO v_d FROM public.webhook_deliveries d WHERE d.id = p_delivery_id;
  IF NOT FOUND THEN
    RETURN 'lost';
  END IF;
  INSERT INTO public.webhook_delivery_attempts (tenant_id, delivery_id, event_id, endpoint_id, attempt, succeeded,
    status_code, latency_ms, error, response_excerpt, dispatcher_id)
  VALUES (v_d.tenant_id, v_d.id, v_d.event_id, v_d.endpoint_id, p_attempt, p_succeeded, p_status_code,
          greatest(p_latency_ms, 0), left(p_error, 1000), left(p_response_excerpt, 1000), p_dispatcher_id);
  IF v_d.status <> 'delivering' OR v_d.dispatcher_id IS DISTINCT FROM p_dispatcher_id OR v_d.attempts <> p_attempt THEN
    RETURN 'lost';
  END IF;
  v_status := CASE WHEN p_succeeded THEN 'succeeded'
                   WHEN now() - v_d.window_started_at >= p_give_up_after THEN 'failed'
                   ELSE 'pending' END;
  UPDATE public.webhook_deliveries d SET
    status = v_status,
    due_at = CASE WHEN v_status = 'pending'
                  THEN now() + make_interval(secs => least(p_retry_base_seconds * 2 ^ least(p_attempt - 1, 30),
                                                           p_retry_max_seconds) * (0.5 + random()))
                  ELSE d.due_at END,
    completed_at = CASE WHEN v_status = 'pending' THEN NULL ELSE now() END,
    last_status_code = p_status_code, last_error = left(p_error, 1000), last_latency_ms = greatest(p_latency_ms, 0)
  WHERE d.id = p_delivery_id;
  IF p_succeeded THEN
    UPDATE public.webhook_endpoints e SET failing_since = NULL
    WHERE e.id = v_d.endpoint_id AND e.failing_since IS NOT NULL;
  ELSE
    UPDATE public.webhook_endpoints e SET
      failing_since = coalesce(e.failing_since, now()),
      enabled = CASE WHEN e.failing_since < now() - p_disable_after THEN false ELSE e.enabled END,
      disabled_at = CASE WHEN e.enabled AND e.failing_since < now() - p_disable_after THEN now() ELSE e.disabled_at END,
      disabled_reason = CASE WHEN e.enabled AND e.failing_since < now() - p_disable_after
        THEN format('every delivery failed since %s; last error: %s', e.failing_since,
                    coalesce(left(p_error, 300), 'HTTP ' || p_status_code))
        ELSE e.disabled_reason END
    WHERE e.id = v_d.endpoint_id;
  END IF;
  RETURN v_status;
END;
$$;

-- The event as delivered (for `contentforge events tail`).
CREATE FUNCTION app_private.webhook_event_body(p_event_id uuid) RETURNS text
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT jsonb_build_object(
           'id', ev.id, 'type', ev.event_type, 'tenant_id', ev.tenant_id,
           'timestamp', to_char(ev.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'data', ev.data)::text
  FROM public.webhook_events ev WHERE ev.id = p_event_id
$$;

-- Old events go in bounded batches (their deliveries and attempts with them).
CREATE FUNCTION app_private.purge_webhook_events(p_retention interval, p_batch integer DEFAULT 5000)
RETURNS integer
LANGUAGE sql VOLATILE SET search_path = '' AS $$
  WITH doomed AS (
    SELECT ev.id FROM public.webhook_events ev
    WHERE ev.created_at < now() - p_retention
      AND NOT EXISTS (SELECT 1 FROM public.webhook_deliveries d
                      WHERE d.event_id = ev.id AND d.status IN ('pending', 'delivering'))
    ORDER BY ev.created_at LIMIT p_batch
  ), gone AS (
    DELETE FROM public.webhook_events ev USING doomed d WHERE ev.id = d.id RETURNING 1
  )
  SELECT count(*)::int FROM gone
$$;

-- ---------------------------------------------------------------------------------------------
-- Supabase Storage ingest

-- Operator-managed (a tenant never holds a rule: a rule with tenant_id NULL takes the tenant from
-- the object's first path segment, and then the uploader must be an author of that tenant).
CREATE TABLE app_private.storage_ingest_rules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  bucket_id text NOT NULL,
  path_prefix text NOT NULL DEFAULT '',
  tenant_id uuid REFERENCES public.tenants (id) ON DELETE CASCADE,
  job_types text[] NOT NULL CHECK (cardinality(job_types) > 0),
  -- Parameters per job type, as enqueue_asset_jobs takes them: {"thumbnail": {"widths": [320]}}.
  params jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
  -- Fleet-wide priority of the rule's jobs (operators only write rules); NULL: each job type's own
  -- (app_private.job_types.priority), as for an operator's enqueue without a priority (0014).
  priority integer CHECK (priority BETWEEN 1 AND 10),
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (bucket_id, path_prefix)
);
CREATE INDEX storage_ingest_rules_tenant_idx ON app_private.storage_ingest_rules (tenant_id);

-- A rule's job types and parameters are checked when the rule is written (the trigger inserts its
-- jobs directly, in the uploader's transaction, where a bad parameter must not fail the upload).
CREATE FUNCTION app_private.check_storage_ingest_rule() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_type text;
BEGIN
  FOREACH v_type IN ARRAY NEW.job_types LOOP
    IF NOT EXISTS (SELECT 1 FROM app_private.job_types jt WHERE jt.job_type = v_type) THEN
      RAISE EXCEPTION 'unknown job type "%" in a storage ingest rule', v_type USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM app_private.job_types jt WHERE jt.job_type = v_type AND jt.test_only) THEN
      RAISE EXCEPTION 'job type "%" is for tests only and cannot be in a storage ingest rule', v_type
        USING ERRCODE = '22023';
    END IF;
    PERFORM app_private.check_job_params(v_type, coalesce(NEW.params -> v_type, '{}'));
  END LOOP;
  RETURN NEW;
END;
$$;
CREATE TRIGGER storage_ingest_rules_check BEFORE INSERT OR UPDATE ON app_private.storage_ingest_rules
FOR EACH ROW EXECUTE FUNCTION app_private.check_storage_ingest_rule();

-- One row per object version seen: the trigger acts only when its row is new (exactly once per
-- version, however often Supabase's storage service writes the object row).
CREATE TABLE app_private.storage_object_ingests (
  bucket_id text NOT NULL,
  object_name text NOT NULL,
  version text NOT NULL,
  object_id uuid NOT NULL,
  rule_id uuid REFERENCES app_private.storage_ingest_rules (id) ON DELETE SET NULL,
  asset_id uuid,
  skipped_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bucket_id, object_name, version)
);
CREATE INDEX storage_object_ingests_rule_idx ON app_private.storage_object_ingests (rule_id);
CREATE INDEX storage_object_ingests_asset_idx ON app_private.storage_object_ingests (asset_id);

CREATE FUNCTION app_private.file_type_of(p_mime text) RETURNS public.asset_type_enum
LANGUAGE sql IMMUTABLE SET search_path = '' AS $$
  SELECT CASE
    WHEN p_mime LIKE 'image/%' THEN 'image'
    WHEN p_mime LIKE 'video/%' THEN 'video'
    WHEN p_mime LIKE 'audio/%' THEN 'audio'
    WHEN p_mime IN ('application/pdf', 'application/msword', 'text/plain', 'text/markdown')
      OR p_mime LIKE 'application/vnd.openxmlformats-officedocument.%' THEN 'document'
    WHEN p_mime IN ('application/zip', 'application/x-tar', 'application/gzip', 'application/x-7z-compressed') THEN 'archive'
    ELSE 'other' END::public.asset_type_enum
$$;

-- Called with the object's columns by the storage.objects trigger (and usable by hand to re-run an
-- object). Returns the asset id, or NULL when no rule matches or the object was skipped.
CREATE FUNCTION app_private.ingest_storage_object(
  p_object_id uuid, p_bucket_id text, p_name text, p_owner uuid, p_metadata jsonb, p_version text
) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_rule app_private.storage_ingest_rules;
  v_version text := coalesce(p_version, p_object_id::text);
  v_tenant uuid;
  v_mime text := coalesce(nullif(p_metadata ->> 'mimetype', ''), 'application/octet-stream');
  v_type public.asset_type_enum;
  v_asset uuid;
  v_creator uuid;
  v_jobs text[];
BEGIN
  -- The storage service writes the row, then (the upload done) its metadata: only then is there a
  -- size and a MIME type to go by, so an object without metadata waits for that second write.
  IF p_name IS NULL OR p_bucket_id IS NULL OR p_metadata IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT * INTO v_rule FROM app_private.storage_ingest_rules r
  WHERE r.bucket_id = p_bucket_id AND r.enabled AND left(p_name, char_length(r.path_prefix)) = r.path_prefix
  ORDER BY char_length(r.path_prefix) DESC LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;  -- not a ruled bucket or prefix: nothing to do, nothing recorded
  END IF;
  INSERT INTO app_private.storage_object_ingests (bucket_id, object_name, version, object_id, rule_id)
  VALUES (p_bucket_id, p_name, v_version, p_object_id, v_rule.id)
  ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN NULL;  -- this version was ingested already (the storage service writes the row twice)
  END IF;

  v_creator := (SELECT u.id FROM auth.users u WHERE u.id = p_owner);
  v_tenant := v_rule.tenant_id;
  IF v_tenant IS NULL THEN
    -- Tenant from the first path segment; the uploader must be an author there.
    BEGIN
      v_tenant := split_part(p_name, '/', 1)::uuid;
    EXCEPTION WHEN invalid_text_representation THEN
      v_tenant := NULL;
    END;
    IF v_tenant IS NULL OR v_creator IS NULL OR NOT EXISTS (
         SELECT 1 FROM public.tenant_memberships m
         WHERE m.tenant_id = v_tenant AND m.user_id = v_creator AND m.status = 'active'
           AND app.role_rank(m.role) >= app.role_rank('author')) THEN
      UPDATE app_private.storage_object_ingests i SET skipped_reason =
        'the first path segment must be the id of a tenant in which the uploader is an author'
      WHERE i.bucket_id = p_bucket_id AND i.object_name = p_name AND i.version = v_version;
      RETURN NULL;
    END IF;
  END IF;

  v_type := app_private.file_type_of(v_mime);
  INSERT INTO public.assets AS a (tenant_id, creator_id, original_filename, file_type, mime_type, file_size,
                                  storage_bucket, storage_path, processing_status)
  VALUES (v_tenant, v_creator, regexp_replace(p_name, '^.*/', ''), v_type, v_mime,
          greatest(coalesce((p_metadata ->> 'size')::bigint, (p_metadata ->> 'contentLength')::bigint, 0), 0),
          p_bucket_id, p_name, 'uploading')
  ON CONFLICT (storage_bucket, storage_path) DO UPDATE SET
    file_type = EXCLUDED.file_type, mime_type = EXCLUDED.mime_type, file_size = EXCLUDED.file_size
  WHERE a.tenant_id = EXCLUDED.tenant_id AND a.processing_status <> 'deleted'
  RETURNING a.id INTO v_asset;
  IF v_asset IS NULL THEN
    UPDATE app_private.storage_object_ingests i SET skipped_reason =
      'an asset of another tenant, or a deleted one, already names this object'
    WHERE i.bucket_id = p_bucket_id AND i.object_name = p_name AND i.version = v_version;
    RETURN NULL;
  END IF;

  -- The job types of the rule that apply to this file type; each job's parameters name the object
  -- version, so a new version gets new jobs even while the previous version's are still queued.
  SELECT array_agg(t ORDER BY o) INTO v_jobs
  FROM unnest(v_rule.job_types) WITH ORDINALITY AS u(t, o)
  JOIN app_private.job_types jt ON jt.job_type = u.t
  WHERE v_type = ANY (jt.file_types) AND jt.enabled;
  IF v_jobs IS NOT NULL THEN
    INSERT INTO public.asset_processing_jobs (tenant_id, asset_id, job_type, priority, input_params, max_attempts)
    SELECT v_tenant, v_asset, jt.job_type, coalesce(v_rule.priority, jt.priority),
           coalesce(v_rule.params -> jt.job_type, '{}') || jsonb_build_object('source_version', v_version),
           -- At least 10 attempts: the trigger can fire before the bytes are readable, and a worker
           -- that finds none yet retries with backoff (5 s doubling to 10 min: about half an hour).
           greatest(jt.default_max_attempts, 10)
    FROM unnest(v_jobs) AS u(t) JOIN app_private.job_types jt ON jt.job_type = u.t
    ON CONFLICT DO NOTHING;
  ELSE
    -- No job type of the rule applies to this file: nothing to process, the asset is ready as it is.
    UPDATE public.assets a SET processing_status = 'ready' WHERE a.id = v_asset AND a.processing_status = 'uploading';
  END IF;
  UPDATE app_private.storage_object_ingests i SET asset_id = v_asset
  WHERE i.bucket_id = p_bucket_id AND i.object_name = p_name AND i.version = v_version;
  RETURN v_asset;
END;
$$;

CREATE FUNCTION app_private.storage_object_ingest_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  PERFORM app_private.ingest_storage_object(NEW.id, NEW.bucket_id, NEW.name, NEW.owner, NEW.metadata, NEW.version);
  RETURN NULL;
END;
$$;

-- An API caller cannot create or move an asset onto an object of a bucket that an ingest rule
-- serves: it would claim another uploader's object name (the ingest skips objects an asset of
-- another tenant already names). The ingest's own insert runs inside the storage.objects trigger
-- (trigger depth 2); an API caller's insert or update is at depth 1, under an API role.
CREATE FUNCTION app_private.guard_ingested_storage() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF pg_catalog.pg_trigger_depth() = 1 AND app.caller_is_api()
     AND EXISTS (SELECT 1 FROM app_private.storage_ingest_rules r WHERE r.bucket_id = NEW.storage_bucket) THEN
    RAISE EXCEPTION 'bucket "%" is filled by uploads to Supabase Storage; assets there are created by the upload',
      NEW.storage_bucket USING ERRCODE = '42501';
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER assets_guard_ingested_storage BEFORE INSERT OR UPDATE OF storage_bucket, storage_path ON public.assets
FOR EACH ROW EXECUTE FUNCTION app_private.guard_ingested_storage();

-- Attach the trigger to storage.objects when that table exists (Supabase); a database that gets a
-- storage schema later calls this once. Returns whether the trigger is in place.
CREATE FUNCTION app_private.attach_storage_ingest() RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
BEGIN
  IF to_regclass('storage.objects') IS NULL THEN
    RETURN false;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                 WHERE t.tgrelid = 'storage.objects'::regclass AND t.tgname = 'contentforge_ingest') THEN
    EXECUTE 'CREATE TRIGGER contentforge_ingest AFTER INSERT OR UPDATE OF version, metadata ON storage.objects '
            'FOR EACH ROW EXECUTE FUNCTION app_private.storage_object_ingest_trigger()';
  END IF;
  RETURN true;
END;
$$;
SELECT app_private.attach_storage_ingest();

-- ---------------------------------------------------------------------------------------------
-- Privileges: tenant admins read their endpoints, events, deliveries and the attempt log; every
-- change goes through the RPCs above.

ALTER TABLE public.webhook_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.webhook_delivery_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE app_private.webhook_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE app_private.storage_ingest_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE app_private.storage_object_ingests ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.webhook_events, public.webhook_endpoints, public.webhook_deliveries,
  public.webhook_delivery_attempts FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.webhook_events, public.webhook_endpoints, public.webhook_deliveries,
  public.webhook_delivery_attempts TO authenticated;
GRANT ALL ON public.webhook_events, public.webhook_endpoints, public.webhook_deliveries,
  public.webhook_delivery_attempts TO service_role;
REVOKE ALL ON app_private.webhook_secrets, app_private.storage_ingest_rules, app_private.storage_object_ingests
  FROM PUBLIC;

CREATE POLICY webhook_events_select_admin ON public.webhook_events FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[]));
CREATE POLICY webhook_endpoints_select_admin ON public.webhook_endpoints FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[]));
CREATE POLICY webhook_deliveries_select_admin ON public.webhook_deliveries FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[]));
CREATE POLICY webhook_attempts_select_admin ON public.webhook_delivery_attempts FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[]));

REVOKE ALL ON FUNCTION
  public.create_webhook_endpoint(uuid, text, text[], text),
  public.update_webhook_endpoint(uuid, text, text[], boolean, text),
  public.rotate_webhook_secret(uuid, integer),
  public.delete_webhook_endpoint(uuid),
  public.replay_webhook_events(uuid, uuid, timestamptz, timestamptz)
FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION
  public.create_webhook_endpoint(uuid, text, text[], text),
  public.update_webhook_endpoint(uuid, text, text[], boolean, text),
  public.rotate_webhook_secret(uuid, integer),
  public.delete_webhook_endpoint(uuid),
  public.replay_webhook_events(uuid, uuid, timestamptz, timestamptz)
TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION app.webhook_event_types() TO anon, authenticated, service_role;
REVOKE ALL ON FUNCTION
  app_private.asset_event_data(public.assets), app_private.job_event_output_limit(), app_private.job_events(),
  app_private.max_webhook_endpoints_per_tenant(),
  app_private.asset_events(), app_private.new_webhook_secret(), app_private.managed_endpoint_tenant(uuid),
  app_private.check_webhook_settings(text, text[]), app_private.fan_out_event(),
  app_private.claim_webhook_deliveries(text, integer, integer, integer),
  app_private.record_webhook_attempt(uuid, text, integer, boolean, integer, integer, text, text,
                                     double precision, double precision, interval, interval),
  app_private.webhook_event_body(uuid), app_private.purge_webhook_events(interval, integer),
  app_private.file_type_of(text), app_private.ingest_storage_object(uuid, text, text, uuid, jsonb, text),
  app_private.storage_object_ingest_trigger(), app_private.attach_storage_ingest(),
  app_private.check_storage_ingest_rule(), app_private.guard_ingested_storage()
FROM PUBLIC;
