-- Daily rollups of engagement (defect 36): the analytics view is built from per-content totals
-- and the last 30 days of per-day counts instead of rescanning every engagement partition at each
-- refresh. Per-day counts and a table of distinct viewers are kept too; the totals are recomputed
-- from them for the content whose recent days changed.
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
  PRIMARY KEY (tenant_id, content_id, day, event_type)
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
  PRIMARY KEY (tenant_id, content_id, viewer)
);
ALTER TABLE app_private.content_viewers ENABLE ROW LEVEL SECURITY;

-- All-time figures per content, kept by the roll-up for the content it touched.
CREATE TABLE app_private.content_engagement_totals (
  tenant_id uuid NOT NULL,
  content_id uuid NOT NULL,
  total_views bigint NOT NULL,
  unique_views bigint NOT NULL,
  likes bigint NOT NULL,
  shares bigint NOT NULL,
  bookmarks bigint NOT NULL,
  comments bigint NOT NULL,
  completions bigint NOT NULL,
  last_activity timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, content_id)
);
ALTER TABLE app_private.content_engagement_totals ENABLE ROW LEVEL SECURITY;

-- The rollups have no foreign keys: a check per rolled-up row made the first roll-up of 1 M
-- events several times slower. Deleted content takes its rollups with it through this trigger
-- (once per statement, also for content deleted by a tenant's deletion). SECURITY DEFINER: the
-- deleting API caller has no access to app_private.
CREATE FUNCTION app_private.drop_rollups_of_deleted_content() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  DELETE FROM app_private.content_engagement_daily d USING gone g
    WHERE d.tenant_id = g.tenant_id AND d.content_id = g.id;
  DELETE FROM app_private.content_viewers v USING gone g
    WHERE v.tenant_id = g.tenant_id AND v.content_id = g.id;
  DELETE FROM app_private.content_engagement_totals t USING gone g
    WHERE t.tenant_id = g.tenant_id AND t.content_id = g.id;
  RETURN NULL;
END;
$$;
CREATE TRIGGER drop_rollups AFTER DELETE ON public.content REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION app_private.drop_rollups_of_deleted_content();

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
-- events the first time), adjust the totals by the difference, and add the viewers seen since
-- then. Reads only the re-rolled days. Two roll-ups never overlap (the state row is locked); the
-- result is the same whether it runs once or twice.
CREATE FUNCTION app_private.roll_up_engagement(p_since timestamptz DEFAULT NULL)
RETURNS TABLE (since timestamptz, daily_rows bigint, content_updated bigint, new_viewers bigint)
LANGUAGE plpgsql VOLATILE SET search_path = '' SET work_mem = '64MB' SET jit = off AS $$
DECLARE
  v_last timestamptz;
  v_from date;
  v_lo timestamptz;
BEGIN
  SELECT s.last_started_at INTO v_last FROM app_private.engagement_rollup_state s FOR UPDATE;
  -- From -infinity the first time. (Plain bounds, no "IS NULL OR": the bound must reach the plan,
  -- so that only the recent partitions and blocks are read.) A p_since later than the usual
  -- window never skips it.
  v_lo := coalesce(least(p_since, v_last - interval '2 days'), '-infinity');
  IF p_since IS NOT NULL THEN
    -- Never re-roll days whose raw events the retention has dropped: their daily rows would be
    -- deleted and not rebuilt. (A scan of the retained events; only for a backfill.)
    v_lo := greatest(v_lo, coalesce((SELECT min(e.created_at) FROM public.content_engagement e), 'infinity'));
  END IF;
  -- Whole UTC days: the first day is recomputed from its midnight.
  v_from := (v_lo AT TIME ZONE 'UTC')::date;
  v_lo := v_from::timestamp AT TIME ZONE 'UTC';

  IF v_from = '-infinity' THEN  -- everything is rebuilt
    DELETE FROM app_private.content_engagement_totals;
    DELETE FROM app_private.content_viewers;
  END IF;

  -- The totals follow the daily rows by difference, so that only the re-rolled days are read:
  -- take out what the old rows of those days counted ...
  WITH old AS (
    DELETE FROM app_private.content_engagement_daily d WHERE d.day >= v_from RETURNING d.*
  ), per_content AS (
    SELECT o.tenant_id, o.content_id,
           coalesce(sum(o.events) FILTER (WHERE o.event_type = 'view'), 0) AS views,
           coalesce(sum(o.events) FILTER (WHERE o.event_type = 'like'), 0) AS likes,
           coalesce(sum(o.events) FILTER (WHERE o.event_type = 'share'), 0) AS shares,
           coalesce(sum(o.events) FILTER (WHERE o.event_type = 'bookmark'), 0) AS bookmarks,
           coalesce(sum(o.events) FILTER (WHERE o.event_type = 'comment'), 0) AS comments,
           coalesce(sum(o.events) FILTER (WHERE o.event_type = 'completion'), 0) AS completions
    FROM old o GROUP BY o.tenant_id, o.content_id
  )
  UPDATE app_private.content_engagement_totals t SET
    total_views = t.total_views - p.views, likes = t.likes - p.likes, shares = t.shares - p.shares,
    bookmarks = t.bookmarks - p.bookmarks, comments = t.comments - p.comments,
    completions = t.completions - p.completions
  FROM per_content p WHERE t.tenant_id = p.tenant_id AND t.content_id = p.content_id;

  -- ... and add what the raw events of those days count now (a late event included). The last
  -- activity only grows: every event it came from is counted again.
  WITH fresh AS (
    INSERT INTO app_private.content_engagement_daily (tenant_id, content_id, day, event_type, events, last_event_at)
    SELECT e.tenant_id, e.content_id, (e.created_at AT TIME ZONE 'UTC')::date, e.event_type, count(*), max(e.created_at)
    FROM public.content_engagement e
    WHERE e.created_at >= v_lo
    GROUP BY 1, 2, 3, 4
    RETURNING *
  ), per_content AS (
    SELECT f.tenant_id, f.content_id,
           coalesce(sum(f.events) FILTER (WHERE f.event_type = 'view'), 0) AS views,
           coalesce(sum(f.events) FILTER (WHERE f.event_type = 'like'), 0) AS likes,
           coalesce(sum(f.events) FILTER (WHERE f.event_type = 'share'), 0) AS shares,
           coalesce(sum(f.events) FILTER (WHERE f.event_type = 'bookmark'), 0) AS bookmarks,
           coalesce(sum(f.events) FILTER (WHERE f.event_type = 'comment'), 0) AS comments,
           coalesce(sum(f.events) FILTER (WHERE f.event_type = 'completion'), 0) AS completions,
           max(f.last_event_at) AS last_activity
    FROM fresh f GROUP BY f.tenant_id, f.content_id
  )
  INSERT INTO app_private.content_engagement_totals AS t
    (tenant_id, content_id, total_views, unique_views, likes, shares, bookmarks, comments, completions, last_activity)
  SELECT p.tenant_id, p.content_id, p.views, 0, p.likes, p.shares, p.bookmarks, p.comments, p.completions,
         p.last_activity
  FROM per_content p
  ON CONFLICT (tenant_id, content_id) DO UPDATE SET
    total_views = t.total_views + EXCLUDED.total_views, likes = t.likes + EXCLUDED.likes,
    shares = t.shares + EXCLUDED.shares, bookmarks = t.bookmarks + EXCLUDED.bookmarks,
    comments = t.comments + EXCLUDED.comments, completions = t.completions + EXCLUDED.completions,
    last_activity = greatest(t.last_activity, EXCLUDED.last_activity);
  GET DIAGNOSTICS content_updated = ROW_COUNT;
  SELECT count(*) INTO daily_rows FROM app_private.content_engagement_daily d WHERE d.day >= v_from;

  -- Viewers not seen before; each adds one unique view to its content.
  WITH added AS (
    INSERT INTO app_private.content_viewers (tenant_id, content_id, viewer, first_seen_at)
    SELECT e.tenant_id, e.content_id, md5(coalesce(e.user_id::text, e.session_id))::uuid, min(e.created_at)
    FROM public.content_engagement e
    WHERE e.event_type = 'view' AND coalesce(e.user_id::text, e.session_id) IS NOT NULL
      AND e.created_at >= v_lo
    GROUP BY 1, 2, 3
    ON CONFLICT (tenant_id, content_id, viewer) DO NOTHING
    RETURNING tenant_id, content_id, first_seen_at
  ), per_content AS (
    SELECT a.tenant_id, a.content_id, count(*) AS n, max(a.first_seen_at) AS seen
    FROM added a GROUP BY a.tenant_id, a.content_id
  ), counted AS (
    -- An upsert: a first view committed after the statement above has no totals row yet.
    INSERT INTO app_private.content_engagement_totals AS t
      (tenant_id, content_id, total_views, unique_views, likes, shares, bookmarks, comments, completions, last_activity)
    SELECT p.tenant_id, p.content_id, 0, p.n, 0, 0, 0, 0, 0, p.seen FROM per_content p
    ON CONFLICT (tenant_id, content_id) DO UPDATE SET unique_views = t.unique_views + EXCLUDED.unique_views
  )
  SELECT coalesce(sum(p.n), 0) INTO new_viewers FROM per_content p;  -- "counted" runs all the same

  -- Content deleted while this roll-up read its events: the deletion's trigger could not see the
  -- rows written here. Every content with rollups has a totals row, so that table finds them.
  WITH gone AS (
    DELETE FROM app_private.content_engagement_totals t
    WHERE NOT EXISTS (SELECT 1 FROM public.content c WHERE c.id = t.content_id AND c.tenant_id = t.tenant_id)
    RETURNING t.tenant_id, t.content_id
  ), viewers_gone AS (
    DELETE FROM app_private.content_viewers v USING gone g
    WHERE v.tenant_id = g.tenant_id AND v.content_id = g.content_id
  )
  DELETE FROM app_private.content_engagement_daily d USING gone g
  WHERE d.tenant_id = g.tenant_id AND d.content_id = g.content_id;

  UPDATE app_private.engagement_rollup_state SET last_started_at = now(),
    last_since = nullif(v_lo, '-infinity');
  since := nullif(v_lo, '-infinity');
  RETURN NEXT;
END;
$$;

-- The analytics view, now from the totals and the last 30 days of daily rows; the same columns as
-- before, so content_performance() keeps its signature. Recency counts whole UTC days: "last 7
-- days" is today and the 6 before.
DROP FUNCTION public.content_performance(uuid);
DROP MATERIALIZED VIEW app_private.content_performance_summary;
CREATE MATERIALIZED VIEW app_private.content_performance_summary AS
WITH recent AS (
  SELECT d.content_id,
         sum(d.events) FILTER (WHERE d.day > (now() AT TIME ZONE 'UTC')::date - 7) AS views_last_7_days,
         sum(d.events) AS views_last_30_days
  FROM app_private.content_engagement_daily d
  WHERE d.event_type = 'view' AND d.day > (now() AT TIME ZONE 'UTC')::date - 30
  GROUP BY d.content_id
), pr AS (
  SELECT p.content_id,
         avg(p.progress_percentage) AS avg_progress,
         avg(p.total_time_spent_seconds) AS avg_time_spent
  FROM public.user_content_progress p
  GROUP BY p.content_id
)
SELECT c.id AS content_id, c.tenant_id, c.title, c.content_type, c.created_at, c.published_at,
       coalesce(t.total_views, 0) AS total_views,
       coalesce(t.unique_views, 0) AS unique_views,
       coalesce(t.likes, 0) AS likes,
       coalesce(t.shares, 0) AS shares,
       coalesce(t.bookmarks, 0) AS bookmarks,
       coalesce(t.comments, 0) AS comments,
       coalesce(t.completions, 0) AS completions,
       CASE WHEN coalesce(t.total_views, 0) > 0
            THEN round(t.completions::numeric / t.total_views * 100, 2) ELSE 0 END AS completion_rate,
       pr.avg_progress,
       pr.avg_time_spent,
       t.last_activity,
       coalesce(recent.views_last_7_days, 0)::bigint AS views_last_7_days,
       coalesce(recent.views_last_30_days, 0)::bigint AS views_last_30_days
FROM public.content c
LEFT JOIN app_private.content_engagement_totals t ON t.tenant_id = c.tenant_id AND t.content_id = c.id
LEFT JOIN recent ON recent.content_id = c.id
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
REVOKE ALL ON FUNCTION app_private.roll_up_engagement(timestamptz),
  app_private.drop_rollups_of_deleted_content() FROM PUBLIC;
