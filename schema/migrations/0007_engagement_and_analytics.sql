-- Phase 5: engagement events (partitioned by month in UTC), reading progress, and analytics.

CREATE TABLE public.content_engagement (
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  content_id uuid NOT NULL,
  user_id uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  session_id text,
  event_type public.engagement_event_enum NOT NULL,
  event_data jsonb NOT NULL DEFAULT '{}',
  -- Deduplication at ingest (defect 1): a client event id, or a per-minute fingerprint of
  -- (content, user or session, event type). Unique together with the partition key.
  idempotency_key text NOT NULL,
  user_agent text,
  ip_address inet,
  referrer text,
  utm_source text,
  utm_medium text,
  utm_campaign text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (id, created_at),
  UNIQUE (idempotency_key, created_at),
  FOREIGN KEY (tenant_id, content_id) REFERENCES public.content (tenant_id, id) ON DELETE CASCADE
) PARTITION BY RANGE (created_at);
CREATE INDEX engagement_content_time_idx ON public.content_engagement (tenant_id, content_id, created_at DESC);
CREATE INDEX engagement_user_time_idx ON public.content_engagement (user_id, created_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX engagement_events_idx ON public.content_engagement (event_type, created_at DESC);

-- Rows outside every monthly partition land here instead of failing (defect 31); maintenance
-- reports them and moves them out when it creates their month.
CREATE TABLE public.content_engagement_default PARTITION OF public.content_engagement DEFAULT;

-- Month partitions: one naming scheme and one routine for the migration and for maintenance
-- (defect 6). Bounds are UTC whatever the session's TimeZone (defect 31). The partition is created
-- on its own and then attached, which locks the parent with SHARE UPDATE EXCLUSIVE instead of the
-- ACCESS EXCLUSIVE of CREATE TABLE ... PARTITION OF; rows of that month found in the default
-- partition are moved in first.
CREATE FUNCTION app_private.engagement_partition_name(p_month_start timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = '' AS $$
  SELECT 'content_engagement_y' || to_char(p_month_start AT TIME ZONE 'UTC', 'YYYY') || 'm'
         || to_char(p_month_start AT TIME ZONE 'UTC', 'MM')
$$;

CREATE FUNCTION app_private.ensure_engagement_partitions(p_months_ahead integer DEFAULT 3,
                                                         p_from timestamptz DEFAULT now())
RETURNS TABLE (partition_name text, created boolean, moved_rows bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_first timestamptz := make_timestamptz(extract(year FROM p_from AT TIME ZONE 'UTC')::int,
                                          extract(month FROM p_from AT TIME ZONE 'UTC')::int, 1, 0, 0, 0, 'UTC');
  v_lo timestamptz;
  v_hi timestamptz;
  v_name text;
  v_moved bigint;
BEGIN
  IF p_months_ahead NOT BETWEEN 0 AND 120 THEN
    RAISE EXCEPTION 'months ahead must be between 0 and 120, got %', p_months_ahead;
  END IF;
  FOR i IN 0..p_months_ahead LOOP
    v_lo := (v_first AT TIME ZONE 'UTC' + make_interval(months => i)) AT TIME ZONE 'UTC';
    v_hi := (v_first AT TIME ZONE 'UTC' + make_interval(months => i + 1)) AT TIME ZONE 'UTC';
    v_name := app_private.engagement_partition_name(v_lo);
    partition_name := v_name;
    IF to_regclass(format('public.%I', v_name)) IS NOT NULL THEN
      created := false;
      moved_rows := 0;
      RETURN NEXT;
      CONTINUE;
    END IF;
    EXECUTE format('CREATE TABLE public.%I (LIKE public.content_engagement INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
    EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I CHECK (created_at >= %L AND created_at < %L)',
                   v_name, v_name || '_bounds', v_lo, v_hi);
    EXECUTE format(
      'WITH moved AS (DELETE FROM public.content_engagement_default WHERE created_at >= %L AND created_at < %L RETURNING *)
       INSERT INTO public.%I SELECT * FROM moved', v_lo, v_hi, v_name);
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    EXECUTE format('ALTER TABLE public.content_engagement ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
                   v_name, v_lo, v_hi);
    EXECUTE format('ALTER TABLE public.%I DROP CONSTRAINT %I', v_name, v_name || '_bounds');
    -- Every partition carries its own protection (defect 13): RLS on, no API grants.
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', v_name);
    EXECUTE format('REVOKE ALL ON public.%I FROM PUBLIC, anon, authenticated', v_name);
    created := true;
    moved_rows := v_moved;
    RETURN NEXT;
  END LOOP;
END;
$$;

-- Partitions whose whole month is older than the retention, oldest first.
CREATE FUNCTION app_private.expired_engagement_partitions(p_retention_months integer,
                                                          p_now timestamptz DEFAULT now())
RETURNS TABLE (partition_name text, range_end timestamptz)
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT c.relname::text, (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'public.content_engagement'::regclass
    AND c.relname ~ '^content_engagement_y[0-9]{4}m[0-9]{2}$'
    AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
        <= (make_timestamptz(extract(year FROM p_now AT TIME ZONE 'UTC')::int,
                             extract(month FROM p_now AT TIME ZONE 'UTC')::int, 1, 0, 0, 0, 'UTC')
            AT TIME ZONE 'UTC' - make_interval(months => p_retention_months)) AT TIME ZONE 'UTC'
  ORDER BY 2
$$;

-- The plan's maintain_partitions(), fixed: keeps p_months_ahead months ahead and drops months
-- older than the retention (the plan only computed the name). The scheduler uses DETACH ...
-- CONCURRENTLY outside any transaction instead; this is for calling from SQL.
CREATE FUNCTION app_private.maintain_partitions(p_months_ahead integer DEFAULT 3, p_retention_months integer DEFAULT 13)
RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM app_private.ensure_engagement_partitions(p_months_ahead) e WHERE e.created LOOP
    action := 'created';
    partition_name := r.partition_name;
    RETURN NEXT;
  END LOOP;
  FOR r IN SELECT * FROM app_private.expired_engagement_partitions(p_retention_months) LOOP
    EXECUTE format('ALTER TABLE public.content_engagement DETACH PARTITION public.%I', r.partition_name);
    EXECUTE format('DROP TABLE public.%I', r.partition_name);
    action := 'dropped';
    partition_name := r.partition_name;
    RETURN NEXT;
  END LOOP;
END;
$$;

SELECT count(*) FROM app_private.ensure_engagement_partitions(3);

ALTER TABLE public.content_engagement ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.content_engagement_default ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.content_engagement, public.content_engagement_default FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.content_engagement TO authenticated;
GRANT ALL ON public.content_engagement TO service_role;
-- Events are written through track_engagement(); editors and above read their tenant's, users
-- their own.
CREATE POLICY engagement_select ON public.content_engagement FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]) OR user_id = (SELECT auth.uid()));

-- True when the caller may read this content (the same rules as the content policies).
CREATE FUNCTION app.can_read_content(p_content_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM public.content c
    WHERE c.id = p_content_id
      AND ((c.status = 'published' AND c.visibility IN ('public', 'unlisted') AND c.access_level = 'free')
           OR (app.has_tenant_role(c.tenant_id, 'member')
               AND ((c.status = 'published' AND c.visibility <> 'private')
                    OR c.creator_id = auth.uid()
                    OR app.has_tenant_role(c.tenant_id, 'editor'))))
  )
$$;
REVOKE ALL ON FUNCTION app.can_read_content(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.can_read_content(uuid) TO anon, authenticated, service_role;

-- Record one engagement event for readable content. Returns false for a duplicate.
-- Retried client writes pass the same p_client_event_id and p_occurred_at; without an event id,
-- identical events of one user or session within the same minute count once.
CREATE FUNCTION public.track_engagement(
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
  IF app.caller_is_api() AND NOT app.can_read_content(p_content_id) THEN
    RAISE EXCEPTION 'content % is not readable' , p_content_id USING ERRCODE = '42501';
  END IF;
  SELECT c.tenant_id INTO v_tenant FROM public.content c WHERE c.id = p_content_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'content % does not exist', p_content_id USING ERRCODE = 'P0002';
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
CREATE TABLE public.user_content_progress (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  content_id uuid NOT NULL,
  collection_id uuid,
  progress_percentage integer NOT NULL DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
  completion_status text NOT NULL DEFAULT 'not_started'
    CHECK (completion_status IN ('not_started', 'in_progress', 'completed', 'abandoned')),
  started_at timestamptz,
  last_accessed_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  total_time_spent_seconds integer NOT NULL DEFAULT 0 CHECK (total_time_spent_seconds >= 0),
  visit_count integer NOT NULL DEFAULT 1 CHECK (visit_count >= 0),
  last_session_id text,
  block_progress jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- One row per user, content and collection (or none) (defect 23).
  UNIQUE NULLS NOT DISTINCT (user_id, content_id, collection_id),
  CHECK (completion_status <> 'completed' OR completed_at IS NOT NULL),
  FOREIGN KEY (tenant_id, content_id) REFERENCES public.content (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, collection_id) REFERENCES public.content_collections (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX progress_tenant_content_idx ON public.user_content_progress (tenant_id, content_id);
CREATE INDEX progress_collection_idx ON public.user_content_progress (tenant_id, collection_id) WHERE collection_id IS NOT NULL;
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.user_content_progress
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

-- The plan's update_content_progress(), fixed (defect 23): the user is the caller, inputs are
-- validated, status follows the highest progress on both paths and never leaves 'completed',
-- and a visit is counted once per session (or after 30 minutes away), not once per heartbeat.
CREATE FUNCTION public.update_content_progress(
  p_content_id uuid,
  p_progress_percentage integer,
  p_time_spent_seconds integer DEFAULT 0,
  p_collection_id uuid DEFAULT NULL,
  p_session_id text DEFAULT NULL
) RETURNS public.user_content_progress
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_uid uuid := auth.uid();
  v_tenant uuid;
  v_row public.user_content_progress;
BEGIN
  IF v_uid IS NULL THEN
    RAISE EXCEPTION 'update_content_progress needs a signed-in user' USING ERRCODE = '42501';
  END IF;
  IF p_progress_percentage IS NULL OR p_progress_percentage NOT BETWEEN 0 AND 100 THEN
    RAISE EXCEPTION 'progress must be between 0 and 100, got %', p_progress_percentage USING ERRCODE = '22023';
  END IF;
  IF p_time_spent_seconds IS NULL OR p_time_spent_seconds NOT BETWEEN 0 AND 86400 THEN
    RAISE EXCEPTION 'time spent must be between 0 and 86400 seconds, got %', p_time_spent_seconds USING ERRCODE = '22023';
  END IF;
  IF NOT app.can_read_content(p_content_id) THEN
    RAISE EXCEPTION 'content % is not readable', p_content_id USING ERRCODE = '42501';
  END IF;
  SELECT c.tenant_id INTO v_tenant FROM public.content c WHERE c.id = p_content_id;

  INSERT INTO public.user_content_progress AS p (
    tenant_id, user_id, content_id, collection_id, progress_percentage, total_time_spent_seconds,
    started_at, completion_status, completed_at, last_session_id)
  VALUES (
    v_tenant, v_uid, p_content_id, p_collection_id, p_progress_percentage, p_time_spent_seconds, now(),
    CASE WHEN p_progress_percentage >= 100 THEN 'completed'
         WHEN p_progress_percentage > 0 THEN 'in_progress' ELSE 'not_started' END,
    CASE WHEN p_progress_percentage >= 100 THEN now() END,
    p_session_id)
  ON CONFLICT (user_id, content_id, collection_id) DO UPDATE SET
    progress_percentage = greatest(p.progress_percentage, EXCLUDED.progress_percentage),
    total_time_spent_seconds = least(p.total_time_spent_seconds::bigint + EXCLUDED.total_time_spent_seconds, 2147483647)::int,
    last_accessed_at = now(),
    visit_count = p.visit_count + CASE
      WHEN EXCLUDED.last_session_id IS NOT NULL AND EXCLUDED.last_session_id IS DISTINCT FROM p.last_session_id THEN 1
      WHEN EXCLUDED.last_session_id IS NULL AND p.last_accessed_at < now() - interval '30 minutes' THEN 1
      ELSE 0 END,
    last_session_id = coalesce(EXCLUDED.last_session_id, p.last_session_id),
    started_at = coalesce(p.started_at, now()),
    completion_status = CASE
      WHEN p.completion_status = 'completed' OR greatest(p.progress_percentage, EXCLUDED.progress_percentage) >= 100 THEN 'completed'
      WHEN greatest(p.progress_percentage, EXCLUDED.progress_percentage) > 0 THEN 'in_progress'
      ELSE p.completion_status END,
    completed_at = CASE
      WHEN p.completed_at IS NOT NULL THEN p.completed_at
      WHEN greatest(p.progress_percentage, EXCLUDED.progress_percentage) >= 100 THEN now() END
  RETURNING p.* INTO v_row;
  RETURN v_row;
END;
$$;

ALTER TABLE public.user_content_progress ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.user_content_progress FROM PUBLIC, anon, authenticated;
GRANT SELECT, DELETE ON public.user_content_progress TO authenticated;
GRANT ALL ON public.user_content_progress TO service_role;
CREATE POLICY progress_select_own ON public.user_content_progress FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()));
CREATE POLICY progress_delete_own ON public.user_content_progress FOR DELETE TO authenticated
  USING (user_id = (SELECT auth.uid()));

-- ---------------------------------------------------------------------------------------------
-- Analytics (Step 5.2, defect 19): events and progress are aggregated separately per content and
-- then joined, so neither multiplies the other; recency counts only views. The view lives in
-- app_private (a materialized view cannot have RLS, defect 14) and is read through
-- content_performance(), which checks the caller's role in the tenant.
CREATE MATERIALIZED VIEW app_private.content_performance_summary AS
WITH ev AS (
  SELECT e.content_id,
         count(*) FILTER (WHERE e.event_type = 'view') AS total_views,
         count(DISTINCT coalesce(e.user_id::text, e.session_id)) FILTER (WHERE e.event_type = 'view') AS unique_views,
         count(*) FILTER (WHERE e.event_type = 'like') AS likes,
         count(*) FILTER (WHERE e.event_type = 'share') AS shares,
         count(*) FILTER (WHERE e.event_type = 'bookmark') AS bookmarks,
         count(*) FILTER (WHERE e.event_type = 'comment') AS comments,
         count(*) FILTER (WHERE e.event_type = 'completion') AS completions,
         max(e.created_at) AS last_activity,
         count(*) FILTER (WHERE e.event_type = 'view' AND e.created_at > now() - interval '7 days') AS views_last_7_days,
         count(*) FILTER (WHERE e.event_type = 'view' AND e.created_at > now() - interval '30 days') AS views_last_30_days
  FROM public.content_engagement e
  GROUP BY e.content_id
), pr AS (
  SELECT p.content_id,
         avg(p.progress_percentage) AS avg_progress,
         avg(p.total_time_spent_seconds) AS avg_time_spent
  FROM public.user_content_progress p
  GROUP BY p.content_id
)
SELECT c.id AS content_id, c.tenant_id, c.title, c.content_type, c.created_at, c.published_at,
       coalesce(ev.total_views, 0) AS total_views,
       coalesce(ev.unique_views, 0) AS unique_views,
       coalesce(ev.likes, 0) AS likes,
       coalesce(ev.shares, 0) AS shares,
       coalesce(ev.bookmarks, 0) AS bookmarks,
       coalesce(ev.comments, 0) AS comments,
       coalesce(ev.completions, 0) AS completions,
       CASE WHEN coalesce(ev.total_views, 0) > 0
            THEN round(ev.completions::numeric / ev.total_views * 100, 2) ELSE 0 END AS completion_rate,
       pr.avg_progress,
       pr.avg_time_spent,
       ev.last_activity,
       coalesce(ev.views_last_7_days, 0) AS views_last_7_days,
       coalesce(ev.views_last_30_days, 0) AS views_last_30_days
FROM public.content c
LEFT JOIN ev ON ev.content_id = c.id
LEFT JOIN pr ON pr.content_id = c.id
WHERE c.status = 'published'
WITH NO DATA;
CREATE UNIQUE INDEX content_performance_summary_pk ON app_private.content_performance_summary (content_id);
CREATE INDEX content_performance_summary_tenant_idx ON app_private.content_performance_summary (tenant_id);
REVOKE ALL ON app_private.content_performance_summary FROM PUBLIC, anon, authenticated;

-- When each view was last refreshed. Kept out of the view itself: a now() column would make every
-- row differ at each concurrent refresh and rewrite the whole view (bench/RESULTS.md, Scheduler).
CREATE TABLE app_private.analytics_refreshes (
  view_name text PRIMARY KEY,
  refreshed_at timestamptz NOT NULL,
  mode text NOT NULL CHECK (mode IN ('full', 'concurrent'))
);
ALTER TABLE app_private.analytics_refreshes ENABLE ROW LEVEL SECURITY;

-- Refresh without blocking readers; the first refresh of a never-populated view cannot be
-- concurrent (defect 2). Returns 'full' or 'concurrent'. Two refreshes never overlap: the second
-- waits on the view's lock. The aggregate sorts ~1 M events per refresh: give it memory, and skip
-- JIT, which costs more than it saves here.
CREATE FUNCTION app_private.refresh_content_analytics() RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = '' SET work_mem = '64MB' SET jit = off AS $$
DECLARE
  v_mode text;
BEGIN
  IF (SELECT c.relispopulated FROM pg_catalog.pg_class c
      WHERE c.oid = 'app_private.content_performance_summary'::regclass) THEN
    REFRESH MATERIALIZED VIEW CONCURRENTLY app_private.content_performance_summary;
    v_mode := 'concurrent';
  ELSE
    REFRESH MATERIALIZED VIEW app_private.content_performance_summary;
    v_mode := 'full';
  END IF;
  INSERT INTO app_private.analytics_refreshes (view_name, refreshed_at, mode)
  VALUES ('content_performance_summary', now(), v_mode)
  ON CONFLICT (view_name) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at, mode = EXCLUDED.mode;
  RETURN v_mode;
END;
$$;

CREATE FUNCTION public.content_performance(p_tenant_id uuid)
RETURNS SETOF app_private.content_performance_summary
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF app.caller_is_api() AND NOT app.has_tenant_role(p_tenant_id, 'editor') THEN
    RAISE EXCEPTION 'analytics of tenant % need editor rights or higher', p_tenant_id USING ERRCODE = '42501';
  END IF;
  IF NOT (SELECT c.relispopulated FROM pg_catalog.pg_class c
          WHERE c.oid = 'app_private.content_performance_summary'::regclass) THEN
    RETURN;  -- not refreshed yet
  END IF;
  RETURN QUERY SELECT s.* FROM app_private.content_performance_summary s WHERE s.tenant_id = p_tenant_id;
END;
$$;

REVOKE ALL ON FUNCTION public.track_engagement(uuid, public.engagement_event_enum, jsonb, text, text, timestamptz, text, text, text, text),
  public.update_content_progress(uuid, integer, integer, uuid, text),
  public.content_performance(uuid) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.track_engagement(uuid, public.engagement_event_enum, jsonb, text, text, timestamptz, text, text, text, text)
  TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION public.update_content_progress(uuid, integer, integer, uuid, text),
  public.content_performance(uuid) TO authenticated, service_role;
REVOKE ALL ON FUNCTION app_private.engagement_partition_name(timestamptz),
  app_private.ensure_engagement_partitions(integer, timestamptz),
  app_private.expired_engagement_partitions(integer, timestamptz),
  app_private.maintain_partitions(integer, integer), app_private.refresh_content_analytics() FROM PUBLIC;
