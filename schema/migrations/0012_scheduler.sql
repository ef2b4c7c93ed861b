-- The scheduler's record of every task run, and the scheduled publishing and unpublishing that
-- the plan left to a commented-out pg_cron line.

CREATE TABLE app_private.scheduler_runs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  task text NOT NULL,
  trigger text NOT NULL CHECK (trigger IN ('schedule', 'catch-up', 'manual')),
  -- The due time a scheduled run serves: unique per task, so that two schedulers (or a failover)
  -- never run the same due time twice.
  due_at timestamptz,
  started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at timestamptz,
  outcome text NOT NULL DEFAULT 'running' CHECK (outcome IN ('running', 'succeeded', 'failed')),
  rows_affected bigint,
  details jsonb NOT NULL DEFAULT '{}',
  error text,
  host text,
  pid integer,
  CHECK (outcome = 'running' OR finished_at IS NOT NULL)
);
CREATE UNIQUE INDEX scheduler_runs_due_idx ON app_private.scheduler_runs (task, due_at) WHERE due_at IS NOT NULL;
CREATE INDEX scheduler_runs_task_idx ON app_private.scheduler_runs (task, started_at DESC);
ALTER TABLE app_private.scheduler_runs ENABLE ROW LEVEL SECURITY;

-- Publish content whose scheduled time has passed, with published_at = the scheduled time, and
-- archive published content whose unpublish time has passed. Bounded; safe to run twice.
CREATE FUNCTION app_private.publish_due_content(p_batch integer DEFAULT 1000)
RETURNS TABLE (published integer, archived integer)
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
BEGIN
  WITH due AS (
    SELECT c.id FROM public.content c
    WHERE c.status = 'scheduled' AND c.scheduled_for <= now()
    ORDER BY c.scheduled_for
    LIMIT p_batch
    FOR UPDATE SKIP LOCKED
  ), done AS (
    UPDATE public.content c SET status = 'published', published_at = c.scheduled_for
    FROM due d WHERE c.id = d.id
    RETURNING 1
  )
  SELECT count(*)::int INTO published FROM done;

  WITH due AS (
    SELECT c.id FROM public.content c
    WHERE c.status = 'published' AND c.unpublish_at <= now()
    ORDER BY c.unpublish_at
    LIMIT p_batch
    FOR UPDATE SKIP LOCKED
  ), done AS (
    UPDATE public.content c SET status = 'archived', archived_at = c.unpublish_at
    FROM due d WHERE c.id = d.id
    RETURNING 1
  )
  SELECT count(*)::int INTO archived FROM done;
  RETURN NEXT;
END;
$$;

-- Rows that landed in the default engagement partition (no monthly partition for their time).
CREATE FUNCTION app_private.engagement_default_rows() RETURNS TABLE (row_count bigint, oldest timestamptz, newest timestamptz)
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT count(*), min(created_at), max(created_at) FROM public.content_engagement_default
$$;

REVOKE ALL ON FUNCTION app_private.publish_due_content(integer), app_private.engagement_default_rows() FROM PUBLIC;
