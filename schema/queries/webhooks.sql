-- Webhooks and events (migration 0017): the dispatcher's and the operators' queries.
-- Each query starts with a "-- name: <name>" line; parameters are psycopg named placeholders.

-- name: claim_deliveries
SELECT c.delivery_id, c.event_id, c.endpoint_id, c.tenant_id, c.url, c.attempt, c.event_type,
       c.event_created_at, c.body, c.secrets
FROM app_private.claim_webhook_deliveries(%(dispatcher_id)s, %(limit)s, %(lease_seconds)s, %(per_tenant)s) c;

-- name: record_attempts
-- A whole batch's attempts in one round trip: %(results)s is a JSON array of
-- {delivery_id, attempt, succeeded, status_code, latency_ms, error, response_excerpt}.
SELECT r.delivery_id,
       app_private.record_webhook_attempt(
         r.delivery_id, %(dispatcher_id)s, r.attempt, r.succeeded, r.status_code, r.latency_ms, r.error,
         r.response_excerpt, %(retry_base_seconds)s, %(retry_max_seconds)s,
         make_interval(secs => %(give_up_after_seconds)s), make_interval(secs => %(disable_after_seconds)s)) AS status
FROM jsonb_to_recordset(%(results)s) AS r(delivery_id uuid, attempt integer, succeeded boolean, status_code integer,
                                          latency_ms integer, error text, response_excerpt text);

-- name: next_due
-- Seconds until the earliest pending delivery is due (NULL when none waits).
SELECT extract(epoch FROM min(d.due_at) - now())::float8 AS seconds
FROM public.webhook_deliveries d
JOIN public.webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
WHERE d.status IN ('pending', 'delivering') AND e.enabled;

-- name: purge_events
SELECT app_private.purge_webhook_events(make_interval(days => %(retention_days)s), %(batch)s) AS purged;

-- name: listen_events
LISTEN contentforge_events;

-- name: event_body
SELECT ev.tenant_id, app_private.webhook_event_body(ev.id) AS body
FROM public.webhook_events ev WHERE ev.id = %(event_id)s;

-- name: create_endpoint
SELECT c.endpoint_id, c.secret
FROM public.create_webhook_endpoint(tenant_id => %(tenant_id)s, url => %(url)s,
                                    event_types => %(event_types)s, description => %(description)s) c;

-- name: update_endpoint
SELECT public.update_webhook_endpoint(endpoint_id => %(endpoint_id)s, url => %(url)s,
                                      event_types => %(event_types)s, enabled => %(enabled)s,
                                      description => %(description)s) AS updated;

-- name: rotate_secret
SELECT public.rotate_webhook_secret(endpoint_id => %(endpoint_id)s, overlap_seconds => %(overlap_seconds)s) AS secret;

-- name: delete_endpoint
SELECT public.delete_webhook_endpoint(endpoint_id => %(endpoint_id)s) AS deleted;

-- name: replay
SELECT public.replay_webhook_events(endpoint_id => %(endpoint_id)s, event_id => %(event_id)s,
                                    since => %(since)s, until => %(until)s) AS queued;

-- name: list_endpoints
SELECT e.id, e.tenant_id, e.url, e.event_types, e.enabled, e.description, e.failing_since, e.disabled_at,
       e.disabled_reason, e.created_at,
       (SELECT count(*) FROM public.webhook_deliveries d
        WHERE d.tenant_id = e.tenant_id AND d.endpoint_id = e.id AND d.status IN ('pending', 'delivering')) AS queued
FROM public.webhook_endpoints e
WHERE %(tenant_id)s::uuid IS NULL OR e.tenant_id = %(tenant_id)s
ORDER BY e.enabled, e.tenant_id, e.created_at;

-- name: list_deliveries
SELECT d.id, d.event_id, ev.event_type, d.endpoint_id, d.status, d.attempts, d.last_status_code,
       d.last_latency_ms, d.last_error, d.due_at, d.created_at, d.completed_at
FROM public.webhook_deliveries d JOIN public.webhook_events ev ON ev.id = d.event_id
WHERE (%(endpoint_id)s::uuid IS NULL OR d.endpoint_id = %(endpoint_id)s)
  AND (%(event_id)s::uuid IS NULL OR d.event_id = %(event_id)s)
ORDER BY d.created_at DESC
LIMIT %(limit)s;
