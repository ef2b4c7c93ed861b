-- Runtime queries of the job queue, by name (loaded by contentforge.api.QUEUE_QUERIES).
-- Each query starts with a "-- name: <name>" line; parameters are psycopg named placeholders.
-- The rules live in the SQL functions of migration 0005; these only call them.

-- name: enqueue
SELECT public.enqueue_asset_job(
  asset_id => %(asset_id)s, job_type => %(job_type)s, params => %(params)s,
  priority => %(priority)s, run_after => coalesce(%(run_after)s, now()),
  idempotency_key => %(idempotency_key)s) AS job_id;

-- name: enqueue_many
SELECT e.job_type, e.job_id FROM public.enqueue_asset_jobs(
  asset_id => %(asset_id)s, job_types => %(job_types)s, params => %(params)s,
  priority => %(priority)s, run_after => coalesce(%(run_after)s, now()),
  idempotency_key => %(idempotency_key)s) AS e;

-- name: cancel
SELECT public.cancel_asset_job(job_id => %(job_id)s) AS changed;

-- name: retry
SELECT public.retry_asset_job(job_id => %(job_id)s) AS changed;

-- name: get_job
SELECT j.id, j.tenant_id, j.asset_id, j.job_type, j.priority, j.status, j.input_params, j.output_data,
       j.error_message, j.error_details, j.progress, j.attempts, j.max_attempts, j.run_after,
       j.idempotency_key, j.worker_id, j.heartbeat_at, j.lease_expires_at, j.created_at, j.updated_at,
       j.started_at, j.completed_at
FROM public.asset_processing_jobs j WHERE j.id = %(job_id)s;

-- name: list_jobs
SELECT j.id, j.tenant_id, j.asset_id, j.job_type, j.priority, j.status, j.progress, j.attempts,
       j.max_attempts, j.run_after, j.error_message, j.worker_id, j.created_at, j.started_at,
       j.completed_at
FROM public.asset_processing_jobs j
WHERE (%(tenant_id)s::uuid IS NULL OR j.tenant_id = %(tenant_id)s::uuid)
  AND (%(status)s::text IS NULL OR j.status = %(status)s::text)
  AND (%(job_type)s::text IS NULL OR j.job_type = %(job_type)s::text)
ORDER BY j.created_at DESC, j.id
LIMIT %(limit)s;

-- name: claim
SELECT j.id, j.tenant_id, j.asset_id, j.job_type, j.priority, j.input_params, j.attempts,
       j.max_attempts, j.created_at, j.started_at, j.claim_token
FROM app_private.claim_job(%(worker_id)s, %(lease_seconds)s, %(job_types)s::text[]) j;

-- name: complete_and_claim
-- The hot path of a busy worker, one round trip and one commit per job: record success
-- (complete_job), then, when claim_next, take the lease of the next best job (claim_job). The claim
-- is a scalar subquery inside a CASE over the completion's row, so it runs only when asked to and
-- only after the completion (it then no longer counts the finished job as running).
WITH done AS MATERIALIZED (
  SELECT app_private.complete_job(%(job_id)s, %(worker_id)s, %(output)s) AS ours
), claimed AS MATERIALIZED (
  SELECT d.ours,
         CASE WHEN %(claim_next)s AND d.ours IS NOT NULL THEN
           (SELECT c FROM app_private.claim_job(%(worker_id)s, %(lease_seconds)s, %(job_types)s::text[]) c LIMIT 1)
         END AS job
  FROM done d
)
SELECT r.ours, (r.job).id, (r.job).tenant_id, (r.job).asset_id, (r.job).job_type, (r.job).priority,
       (r.job).input_params, (r.job).attempts, (r.job).max_attempts, (r.job).created_at, (r.job).started_at,
       (r.job).claim_token
FROM claimed r;

-- name: complete_and_claim_jobs
-- What several worker threads of one process have to say at the same moment (workers/claim.py,
-- the combiner), in one round trip and one commit: each completion, then each claim, exactly as
-- complete_and_claim would have run them one by one (migration 0025).
SELECT b.kind, b.ord, b.ours, b.id, b.tenant_id, b.asset_id, b.job_type, b.priority, b.input_params,
       b.attempts, b.max_attempts, b.created_at, b.started_at, b.claim_token
FROM app_private.complete_and_claim_jobs(%(lease_seconds)s, %(done_ids)s::uuid[], %(done_workers)s::text[],
                                         %(outputs)s::jsonb[], %(claim_workers)s::text[], %(claim_types)s::jsonb,
                                         %(lock_timeout_ms)s) b;

-- name: heartbeat
SELECT app_private.heartbeat_job(%(job_id)s, %(worker_id)s, %(lease_seconds)s, %(progress)s) AS ours;

-- name: complete
SELECT app_private.complete_job(%(job_id)s, %(worker_id)s, %(output)s) AS ours;

-- name: fail
SELECT app_private.fail_job(%(job_id)s, %(worker_id)s, %(message)s, %(details)s, %(transient)s,
                            %(retry_delay_seconds)s) AS status;

-- name: release
SELECT app_private.release_job(%(job_id)s, %(worker_id)s) AS released;

-- name: reclaim_expired
SELECT r.job_id, r.new_status FROM app_private.reclaim_expired_jobs(%(limit)s) r;

-- name: purge_finished
SELECT app_private.purge_finished_jobs(make_interval(days => %(retention_days)s), %(batch)s) AS purged;

-- name: queue_ready
-- Ready jobs of a pool's types (NULL: all), not paused, counted up to %(limit)s (migration 0019).
SELECT q.ready, q.next_run_after FROM app_private.queue_ready(%(limit)s, %(job_types)s::text[]) q;

-- name: asset_for_job
SELECT a.id, a.tenant_id, a.file_type::text AS file_type, a.storage_bucket, a.storage_path,
       a.original_filename
FROM public.assets a WHERE a.tenant_id = %(tenant_id)s AND a.id = %(asset_id)s;

-- name: record_attempt_outputs
-- Points the asset at this attempt's files (fenced outputs, migration 0021): false when the claim
-- token is no longer the job's. Run in the transaction whose complete_job succeeded.
SELECT app_private.record_attempt_outputs(
  %(job_id)s, %(claim_token)s, %(variants)s, %(metadata)s, %(duration_seconds)s::numeric,
  %(set_transcript)s, %(transcript_text)s::text, %(transcript_language)s::text) AS ours;

-- name: queue_depth
-- Cheap on millions of rows, per scrape. Pending and running jobs are counted exactly from their
-- partial indexes, up to %(limit)s each (a count equal to the limit means "at least that many").
-- Finished jobs (completed, failed, cancelled) are estimates: the table's row estimate
-- (pg_class.reltuples) times the status's share in the planner statistics (pg_stats), as fresh as
-- the last ANALYZE (autovacuum analyzes the table after 5 percent of its rows change); 0 before the
-- first ANALYZE. The "exact" column says which is which.
SELECT 'pending' AS status, true AS exact,
       (SELECT count(*) FROM (SELECT 1 FROM public.asset_processing_jobs j
                              WHERE j.status = 'pending' LIMIT %(limit)s) p) AS jobs
UNION ALL
SELECT 'running', true,
       (SELECT count(*) FROM (SELECT 1 FROM public.asset_processing_jobs j
                              WHERE j.status = 'running' LIMIT %(limit)s) r)
UNION ALL
SELECT f.status, false, round(greatest(c.reltuples, 0) * f.freq)::bigint
FROM pg_catalog.pg_class c
CROSS JOIN LATERAL (
  SELECT u.status, u.freq
  FROM pg_catalog.pg_stats st,
       unnest(st.most_common_vals::text::text[], st.most_common_freqs) AS u(status, freq)
  WHERE st.schemaname = 'public' AND st.tablename = 'asset_processing_jobs' AND st.attname = 'status'
) f
WHERE c.oid = 'public.asset_processing_jobs'::regclass AND f.status IN ('completed', 'failed', 'cancelled');

-- name: oldest_pending_age
SELECT coalesce(extract(epoch FROM now() - min(j.run_after)), 0)::float8 AS seconds
FROM public.asset_processing_jobs j WHERE j.status = 'pending' AND j.run_after <= now();

-- name: try_relay_lock
SELECT pg_try_advisory_lock(%(key)s) AS ok;

-- name: listen
LISTEN contentforge_jobs;

-- name: set_test_job_types
-- The operator's switch for test-only job types (noop): enqueue_asset_job refuses them while off.
UPDATE app_private.job_types t SET enabled = %(enabled)s WHERE t.test_only RETURNING t.job_type;

-- --- pools, caps, pauses (migration 0019) -----------------------------------------------------

-- name: register_worker_pool
SELECT app_private.register_worker_pool(%(supervisor_id)s, %(pool)s, %(queue_name)s, %(job_types)s::text[],
                                        %(threads)s);

-- name: unregister_worker_pool
DELETE FROM app_private.worker_pools w WHERE w.supervisor_id = %(supervisor_id)s;

-- name: live_worker_pools
SELECT p.pool, p.queue_name, p.job_types, p.threads, p.supervisors
FROM app_private.live_worker_pools(%(stale_seconds)s) p;

-- name: reported_worker_pools
-- The pools running supervisors reported (read only: the relay's live_worker_pools also deletes).
SELECT DISTINCT ON (w.pool) w.pool, w.job_types FROM app_private.worker_pools w
WHERE w.last_seen >= now() - make_interval(secs => %(stale_seconds)s) ORDER BY w.pool, w.last_seen DESC;

-- name: pool_backlog
SELECT b.ready, b.oldest_ready_seconds FROM app_private.pool_backlog(%(job_types)s::text[]) b;

-- name: job_type_stats
-- Per job type: ready (pending, due, not paused), paused pending, running, the oldest ready job's
-- age, whether the type is paused fleet-wide, and the live pools that serve it (a NULL job_types
-- pool serves every type).
SELECT t.job_type,
       (SELECT count(*) FROM public.asset_processing_jobs j
        WHERE j.status = 'pending' AND j.job_type = t.job_type AND j.run_after <= now()
          AND NOT EXISTS (SELECT 1 FROM app_private.job_pauses p
                          WHERE (p.job_type IS NULL OR p.job_type = j.job_type)
                            AND (p.tenant_id IS NULL OR p.tenant_id = j.tenant_id))) AS ready,
       (SELECT count(*) FROM public.asset_processing_jobs j
        WHERE j.status = 'pending' AND j.job_type = t.job_type AND j.run_after <= now()
          AND EXISTS (SELECT 1 FROM app_private.job_pauses p
                      WHERE (p.job_type IS NULL OR p.job_type = j.job_type)
                        AND (p.tenant_id IS NULL OR p.tenant_id = j.tenant_id))) AS paused_ready,
       (SELECT count(*) FROM public.asset_processing_jobs j
        WHERE j.status = 'running' AND j.job_type = t.job_type) AS running,
       b.oldest_ready_seconds,
       EXISTS (SELECT 1 FROM app_private.job_pauses p WHERE p.job_type = t.job_type AND p.tenant_id IS NULL)
         AS paused,
       coalesce((SELECT array_agg(DISTINCT w.pool ORDER BY w.pool) FROM app_private.worker_pools w
                 WHERE w.last_seen >= now() - make_interval(secs => %(stale_seconds)s)
                   AND (w.job_types IS NULL OR t.job_type = ANY (w.job_types))), '{}') AS pools
FROM app_private.job_types t
CROSS JOIN LATERAL app_private.pool_backlog(ARRAY[t.job_type]) b
WHERE t.enabled OR EXISTS (SELECT 1 FROM public.asset_processing_jobs j WHERE j.job_type = t.job_type)
ORDER BY t.job_type;

-- name: pause_jobs
SELECT app_private.pause_jobs(%(job_type)s, %(tenant_id)s, %(reason)s) AS changed;

-- name: resume_jobs
SELECT app_private.resume_jobs(%(job_type)s, %(tenant_id)s) AS changed;

-- name: list_pauses
SELECT p.job_type, p.tenant_id, p.reason, p.paused_at, p.paused_by,
       (SELECT count(*) FROM public.asset_processing_jobs j
        WHERE j.status = 'pending' AND (p.job_type IS NULL OR j.job_type = p.job_type)
          AND (p.tenant_id IS NULL OR j.tenant_id = p.tenant_id)) AS pending
FROM app_private.job_pauses p ORDER BY p.paused_at, p.id;

-- name: set_tenant_job_limit
SELECT app_private.set_tenant_job_limit(%(tenant_id)s, %(max_running)s);

-- name: list_tenant_job_limits
SELECT l.tenant_id, l.max_running, l.updated_at, l.updated_by,
       (SELECT count(*) FROM public.asset_processing_jobs j
        WHERE j.status = 'running' AND j.tenant_id = l.tenant_id) AS running
FROM app_private.tenant_job_limits l ORDER BY l.tenant_id;
