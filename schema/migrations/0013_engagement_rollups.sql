-- Daily rollups of engagement (defect 36): the analytics view is built from per-day counts and a
-- table of distinct viewers instead of rescanning every engagement partition at each refresh.
--
-- Each roll-up recomputes only the recent days: an event can be written at most one day in the
-- past (track_engagement clamps the client's time), so re-rolling from two days before the last
-- roll-up's start catches every late event and every event of a transaction that was still open
-- then (one running for up to a day). A backfill of older raw events calls
-- app_private.roll_up_engagement(p_since => ...) once with its start.
--
-- The rollups are kept when raw monthly partitions pass the retention and are dropped, so the
-- all-time counts of the view no longer shrink with the retention.

CREATE TABLE app_private.content_engagement_daily (
  tenant_id uuid NOT NULL,
  content_id uuid NOT NULL,
  day date NOT NULL,  -- UTC
  event_type public.engagement_event_enum NOT NULL,
  events bigint NOT NULL CHECK (events > 0),
  last_event_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, content_id, day, event_type),
  FOREIGN KEY (tenant_id, content_id) REFERENCES public.content (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX engagement_daily_day_idx ON app_private.content_engagement_daily (day);
ALTER TABLE app_private.content_engagement_daily ENABLE ROW LEVEL SECURITY;

-- One row per content and viewer (a signed-in user, or else a session) who ever viewed it: the
-- exact "unique views" that per-day counts cannot add up to. The viewer is a hash, not the id.
CREATE TABLE app_private.content_viewers (
  tenant_id uuid NOT NULL,
  content_id uuid NOT NULL,
  viewer uuid NOT NULL,
  first_seen_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, content_id, viewer),
  FOREIGN KEY (tenant_id, content_id) REFERENCES public.content (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE app_private.content_viewers ENABLE ROW LEVEL SECURITY;

-- When the last roll-up started (its transaction's now()); NULL: never, roll up everything.
CREATE TABLE app_private.engagement_rollup_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_started_at timestamptz,
  last_since timestamptz
);
INSERT INTO app_private.engagement_rollup_state DEFAULT VALUES;
ALTER TABLE app_private.engagement_rollup_state ENABLE ROW LEVEL SECURITY;

-- The roll-up reads a time range of raw events; a BRIN index makes that a read of the recent
-- blocks only (events arrive in time order), at almost no cost on insert.
CREATE INDEX engagement_created_brin ON public.content_engagement USING brin (created_at);

-- Recompute the daily rows from p_since (default: two days before the last roll-up, or all
-- events the first time) and add the viewers seen since then. Two roll-ups never overlap (the
-- state row is locked); the result is the same whether it runs once or twice.
CREATE FUNCTION app_private.roll_up_engagement(p_since timestamptz DEFAULT NULL)
RETURNS TABLE (since timestamptz, daily_rows bigint, new_viewers bigint)
LANGUAGE plpgsql VOLATILE SET search_path = '' SET work_mem = '64MB' SET jit = off AS $$
DECLARE
  v_last timestamptz;
  v_from date;
  v_lo timestamptz;
BEGIN
  SELECT s.last_started_at INTO v_last FROM app_private.engagement_rollup_state s FOR UPDATE;
  v_lo := coalesce(p_since, v_last - interval '2 days');
  IF v_lo IS NOT NULL THEN
    -- Whole UTC days: the first day is recomputed from its midnight.
    v_from := (v_lo AT TIME ZONE 'UTC')::date;
    v_lo := v_from::timestamp AT TIME ZONE 'UTC';
  END IF;

  DELETE FROM app_private.content_engagement_daily d WHERE v_from IS NULL OR d.day >= v_from;
  INSERT INTO app_private.content_engagement_daily (tenant_id, content_id, day, event_type, events, last_event_at)
  SELECT e.tenant_id, e.content_id, (e.created_at AT TIME ZONE 'UTC')::date, e.event_type, count(*), max(e.created_at)
  FROM public.content_engagement e
  WHERE v_lo IS NULL OR e.created_at >= v_lo
  GROUP BY 1, 2, 3, 4;
  GET DIAGNOSTICS daily_rows = ROW_COUNT;

  INSERT INTO app_private.content_viewers AS v (tenant_id, content_id, viewer, first_seen_at)
  SELECT e.tenant_id, e.content_id, md5(coalesce(e.user_id::text, e.session_id))::uuid, min(e.created_at)
  FROM public.content_engagement e
  WHERE e.event_type = 'view' AND coalesce(e.user_id::text, e.session_id) IS NOT NULL
    AND (v_lo IS NULL OR e.created_at >= v_lo)
  GROUP BY 1, 2, 3
  ON CONFLICT (tenant_id, content_id, viewer) DO UPDATE SET first_seen_at = least(v.first_seen_at, EXCLUDED.first_seen_at)
    WHERE EXCLUDED.first_seen_at < v.first_seen_at;
  GET DIAGNOSTICS new_viewers = ROW_COUNT;

  UPDATE app_private.engagement_rollup_state SET last_started_at = now(), last_since = v_lo;
  since := v_lo;
  RETURN NEXT;
END;
$$;

-- The analytics view, now from the rollups; the same columns as before, so content_performance()
-- keeps its signature. Recency counts whole UTC days: "last 7 days" is today and the 6 before.
DROP FUNCTION public.content_performance(uuid);
DROP MATERIALIZED VIEW app_private.content_performance_summary;
CREATE MATERIALIZED VIEW app_private.content_performance_summary AS
WITH ev AS (
  SELECT d.content_id,
         sum(d.events) FILTER (WHERE d.event_type = 'view') AS total_views,
         sum(d.events) FILTER (WHERE d.event_type = 'like') AS likes,
         sum(d.events) FILTER (WHERE d.event_type = 'share') AS shares,
         sum(d.events) FILTER (WHERE d.event_type = 'bookmark') AS bookmarks,
         sum(d.events) FILTER (WHERE d.event_type = 'comment') AS comments,
         sum(d.events) FILTER (WHERE d.event_type = 'completion') AS completions,
         max(d.last_event_at) AS last_activity,
         sum(d.events) FILTER (WHERE d.event_type = 'view'
                                 AND d.day > (now() AT TIME ZONE 'UTC')::date - 7) AS views_last_7_days,
         sum(d.events) FILTER (WHERE d.event_type = 'view'
                                 AND d.day > (now() AT TIME ZONE 'UTC')::date - 30) AS views_last_30_days
  FROM app_private.content_engagement_daily d
  GROUP BY d.content_id
), uv AS (
  SELECT v.content_id, count(*) AS unique_views
  FROM app_private.content_viewers v
  GROUP BY v.content_id
), pr AS (
  SELECT p.content_id,
         avg(p.progress_percentage) AS avg_progress,
         avg(p.total_time_spent_seconds) AS avg_time_spent
  FROM public.user_content_progress p
  GROUP BY p.content_id
)
SELECT c.id AS content_id, c.tenant_id, c.title, c.content_type, c.created_at, c.published_at,
       coalesce(ev.total_views, 0)::bigint AS total_views,
       coalesce(uv.unique_views, 0)::bigint AS unique_views,
       coalesce(ev.likes, 0)::bigint AS likes,
       coalesce(ev.shares, 0)::bigint AS shares,
       coalesce(ev.bookmarks, 0)::bigint AS bookmarks,
       coalesce(ev.comments, 0)::bigint AS comments,
       coalesce(ev.completions, 0)::bigint AS completions,
       CASE WHEN coalesce(ev.total_views, 0) > 0
            THEN round(ev.completions::numeric / ev.total_views * 100, 2) ELSE 0 END AS completion_rate,
       pr.avg_progress,
       pr.avg_time_spent,
       ev.last_activity,
       coalesce(ev.views_last_7_days, 0)::bigint AS views_last_7_days,
       coalesce(ev.views_last_30_days, 0)::bigint AS views_last_30_days
FROM public.content c
LEFT JOIN ev ON ev.content_id = c.id
LEFT JOIN uv ON uv.content_id = c.id
LEFT JOIN pr ON pr.content_id = c.id
WHERE c.status = 'published'
WITH NO DATA;
CREATE UNIQUE INDEX content_performance_summary_pk ON app_private.content_performance_summary (content_id);
CREATE INDEX content_performance_summary_tenant_idx ON app_private.content_performance_summary (tenant_id);
REVOKE ALL ON app_private.content_performance_summary FROM PUBLIC, anon, authenticated;
DELETE FROM app_private.analytics_refreshes WHERE view_name = 'content_performance_summary';

-- Roll up, then refresh; the rest as in 0007 (full the first time, concurrent after).
CREATE OR REPLACE FUNCTION app_private.refresh_content_analytics() RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = '' SET work_mem = '64MB' SET jit = off AS $$
DECLARE
  v_mode text;
BEGIN
  PERFORM app_private.roll_up_engagement();
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
REVOKE ALL ON FUNCTION public.content_performance(uuid) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.content_performance(uuid) TO authenticated, service_role;
REVOKE ALL ON FUNCTION app_private.roll_up_engagement(timestamptz) FROM PUBLIC;
