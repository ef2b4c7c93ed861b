-- Runtime queries of the scheduler, by name (loaded by schema.named_queries.queries("scheduler")).

-- name: start_run
INSERT INTO app_private.scheduler_runs (task, trigger, due_at, host, pid)
VALUES (%(task)s, %(trigger)s, %(due_at)s, %(host)s, %(pid)s)
ON CONFLICT (task, due_at) WHERE due_at IS NOT NULL DO NOTHING
RETURNING id;

-- name: finish_run
UPDATE app_private.scheduler_runs
SET finished_at = clock_timestamp(), outcome = %(outcome)s, rows_affected = %(rows)s,
    details = %(details)s, error = %(error)s
WHERE id = %(id)s;

-- name: last_runs
SELECT DISTINCT ON (task) task, trigger, due_at, started_at, finished_at, outcome, rows_affected, error
FROM app_private.scheduler_runs
ORDER BY task, started_at DESC;

-- name: last_scheduled_start
SELECT max(coalesce(due_at, started_at)) AS at FROM app_private.scheduler_runs
WHERE task = %(task)s AND trigger IN ('schedule', 'catch-up');

-- name: try_task_lock
SELECT pg_try_advisory_lock(%(key)s) AS locked;

-- name: task_unlock
SELECT pg_advisory_unlock(%(key)s) AS unlocked;

-- name: publish_due
SELECT published, archived FROM app_private.publish_due_content(%(batch)s);

-- name: ensure_partitions
SELECT partition_name, created, moved_rows FROM app_private.ensure_engagement_partitions(%(months_ahead)s);

-- name: expired_partitions
SELECT e.partition_name, i.inhdetachpending AS detach_pending
FROM app_private.expired_engagement_partitions(%(retention_months)s) e
JOIN pg_catalog.pg_class c ON c.relname = e.partition_name
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid;

-- name: default_partition_rows
SELECT row_count, oldest, newest FROM app_private.engagement_default_rows();

-- name: refresh_analytics
SELECT app_private.refresh_content_analytics() AS mode;

-- name: cleanup_sessions
SELECT sessions_removed, locks_released FROM app_private.cleanup_old_editing_sessions(%(max_idle)s);

-- name: recount_tags
SELECT app_private.recount_tag_usage() AS n;

-- name: expire_uploads
SELECT app_private.expire_stuck_uploads(%(older_than)s) AS n;

-- name: collect_orphans
SELECT asset_id, tenant_id, storage_bucket, storage_path, variant_keys
FROM app_private.collect_orphaned_assets(%(failed_older_than)s, %(batch)s);

-- name: purge_assets
SELECT app_private.purge_deleted_assets(%(ids)s) AS n;

-- name: purge_jobs
SELECT app_private.purge_finished_jobs(%(retention)s, %(batch)s) AS n;

-- name: purge_search_queries
SELECT app_private.purge_search_queries(%(retention)s) AS n;

-- name: reclaim_jobs
SELECT count(*) AS n FROM app_private.reclaim_expired_jobs();

-- name: table_exists
SELECT to_regclass(%(relation)s) IS NOT NULL AS exists;
