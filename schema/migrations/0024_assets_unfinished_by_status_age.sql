-- contentforge:no-transaction
-- The maintenance jobs' index on unfinished assets keyed by status_changed_at (0023) instead of
-- updated_at, built CONCURRENTLY so that applying this to a live database does not block writers;
-- then the old index goes, and with it the last index on updated_at (a roll-up's progress write can
-- now be a HOT update).

CREATE INDEX CONCURRENTLY IF NOT EXISTS assets_unfinished_status_age_idx
  ON public.assets (processing_status, status_changed_at) WHERE processing_status <> 'ready';

DROP INDEX CONCURRENTLY IF EXISTS public.assets_unfinished_idx;
