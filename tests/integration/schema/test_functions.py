"""Every function of the schema is called at least once: plpgsql bodies are only checked when run."""

from __future__ import annotations

import psycopg

from tests import factories as f

# One call per callable function, with arguments that make it do real work.
CALLS = {
    "app.role_rank": "SELECT app.role_rank('editor')",
    "app.my_tenant_ids": "SELECT app.my_tenant_ids('member')",
    "app.has_tenant_role": "SELECT app.has_tenant_role(%(tenant)s, 'owner')",
    "app.caller_is_api": "SELECT app.caller_is_api()",
    "app.jsonschema_error": "SELECT app.jsonschema_error('{\"type\":\"string\"}', '1', 'x')",
    "app.validate_blocks": "SELECT app.validate_blocks('[{\"type\":\"paragraph\",\"content\":\"a\"}]')",
    "app.can_edit_content": "SELECT app.can_edit_content(%(content)s)",
    "app.can_read_content": "SELECT app.can_read_content(%(content)s)",
    "app.can_edit_collection": "SELECT app.can_edit_collection(%(collection)s)",
    "app.collection_is_public": "SELECT app.collection_is_public(%(collection)s)",
    "app.term_labels_public_content": "SELECT app.term_labels_public_content(NULL, %(tag)s)",
    "public.get_current_tenant_id": "SELECT get_current_tenant_id()",
    "public.create_tenant": "SELECT create_tenant('New', 'new-tenant')",
    "public.enqueue_asset_job": "SELECT enqueue_asset_job(%(asset)s, 'noop')",
    "public.enqueue_asset_jobs": "SELECT * FROM enqueue_asset_jobs(%(asset)s, ARRAY['metadata', 'thumbnail'])",
    "public.cancel_asset_job": "SELECT cancel_asset_job((SELECT id FROM asset_processing_jobs WHERE job_type = 'noop'))",
    "public.retry_asset_job": "SELECT retry_asset_job((SELECT id FROM asset_processing_jobs WHERE job_type = 'noop'))",
    "public.track_engagement": "SELECT track_engagement(%(content)s, 'view', p_session_id => 's')",
    "public.update_content_progress": "SELECT update_content_progress(%(content)s, 10)",
    "public.content_performance": "SELECT * FROM content_performance(%(tenant)s)",
    "public.search_content": "SELECT * FROM search_content(%(tenant)s, 'article')",
    "public.generate_recommendations": "SELECT * FROM generate_recommendations(5, %(tenant)s)",
    "app_private.claim_job": "SELECT * FROM app_private.claim_job('w1', 30)",
    "app_private.claim_job_walk": "SELECT * FROM app_private.claim_job_walk('w1', 30, NULL)",
    "app_private.heartbeat_job": "SELECT app_private.heartbeat_job((SELECT id FROM asset_processing_jobs WHERE status = 'running' LIMIT 1), 'w1', 30, 50)",
    "app_private.release_job": "SELECT app_private.release_job((SELECT id FROM asset_processing_jobs WHERE status = 'running' LIMIT 1), 'w1')",
    "app_private.complete_and_claim_jobs": "SELECT * FROM app_private.complete_and_claim_jobs("
                                           "30, '{}', '{}', '{}', ARRAY['w1'], '[null]', 200)",
    "app_private.complete_job": "SELECT app_private.complete_job((SELECT id FROM app_private.claim_job('w1', 30)), 'w1', '{}')",
    "app_private.record_attempt_outputs": "SELECT app_private.record_attempt_outputs(gen_random_uuid(), gen_random_uuid(), "
                                          "'{}', '{}', NULL, false, NULL, NULL)",
    "app_private.output_keys_in_use": "SELECT app_private.output_keys_in_use(ARRAY[%(tenant)s || '/' || %(asset)s || "
                                      "'/variants/x'])",
    "app_private.fail_job": "SELECT app_private.fail_job((SELECT id FROM app_private.claim_job('w1', 30)), 'w1', 'bad', NULL, true, 1)",
    "app_private.reclaim_expired_jobs": "SELECT * FROM app_private.reclaim_expired_jobs()",
    "app_private.purge_finished_jobs": "SELECT app_private.purge_finished_jobs(interval '0')",
    "app_private.queue_ready": "SELECT * FROM app_private.queue_ready()",
    "app_private.roll_up_asset": "SELECT app_private.roll_up_asset(%(tenant)s, %(asset)s)",
    "app_private.engagement_partition_name": "SELECT app_private.engagement_partition_name(now())",
    "app_private.ensure_engagement_partitions": "SELECT * FROM app_private.ensure_engagement_partitions(1)",
    "app_private.expired_engagement_partitions": "SELECT * FROM app_private.expired_engagement_partitions(0, now() + interval '2 months')",
    "app_private.maintain_partitions": "SELECT * FROM app_private.maintain_partitions(4, 1)",
    "app_private.refresh_content_analytics": "SELECT app_private.refresh_content_analytics()",
    "app_private.roll_up_engagement": "SELECT * FROM app_private.roll_up_engagement(now() - interval '1 day')",
    "app_private.cleanup_old_editing_sessions": "SELECT * FROM app_private.cleanup_old_editing_sessions()",
    "app_private.recount_tag_usage": "SELECT app_private.recount_tag_usage()",
    "app_private.expire_stuck_uploads": "SELECT app_private.expire_stuck_uploads(interval '0')",
    "app_private.collect_orphaned_assets": "SELECT * FROM app_private.collect_orphaned_assets(interval '0')",
    "app_private.purge_deleted_assets": "SELECT app_private.purge_deleted_assets(ARRAY[]::uuid[])",
    "app_private.purge_search_queries": "SELECT app_private.purge_search_queries(interval '0')",
    "app_private.run_maintenance": "SELECT app_private.run_maintenance()",
    "app_private.publish_due_content": "SELECT * FROM app_private.publish_due_content(10)",
    "app_private.engagement_default_rows": "SELECT * FROM app_private.engagement_default_rows()",
    "app.search_config": "SELECT app.search_config('german')",
    "app_private.check_job_params": "SELECT app_private.check_job_params('transcode', '{\"renditions\": [720]}')",
    "app_private.check_job_param_value": "SELECT app_private.check_job_param_value('noop', f, '1', false) "
                                         "FROM app_private.job_params f WHERE f.name = 'sleep_seconds'",
    "public.get_content_by_slug": "SELECT * FROM get_content_by_slug(%(tenant)s, 'no-such-slug')",
    "public.get_collection_by_slug": "SELECT * FROM get_collection_by_slug(%(tenant)s, 'no-such-slug')",
    # Events and webhooks (0017), after the queue calls above have written events.
    "app.webhook_event_types": "SELECT app.webhook_event_types()",
    "app_private.asset_event_data": "SELECT app_private.asset_event_data(a) FROM assets a WHERE a.id = %(asset)s",
    "app_private.job_event_output_limit": "SELECT app_private.job_event_output_limit()",
    "app_private.max_webhook_endpoints_per_tenant": "SELECT app_private.max_webhook_endpoints_per_tenant()",
    "app_private.new_webhook_secret": "SELECT app_private.new_webhook_secret()",
    "app_private.check_webhook_settings": "SELECT app_private.check_webhook_settings('https://x.example/h', ARRAY['asset.ready'])",
    "public.create_webhook_endpoint": "SELECT * FROM create_webhook_endpoint(%(tenant)s, 'https://hooks.example.com/h')",
    "app_private.managed_endpoint_tenant": "SELECT app_private.managed_endpoint_tenant((SELECT id FROM webhook_endpoints LIMIT 1))",
    "public.update_webhook_endpoint": "SELECT update_webhook_endpoint((SELECT id FROM webhook_endpoints LIMIT 1), description => 'd')",
    "public.rotate_webhook_secret": "SELECT rotate_webhook_secret((SELECT id FROM webhook_endpoints LIMIT 1), 60)",
    "public.replay_webhook_events": "SELECT replay_webhook_events(endpoint_id => (SELECT id FROM webhook_endpoints LIMIT 1), since => now() - interval '1 day')",
    "app_private.claim_webhook_deliveries": "SELECT * FROM app_private.claim_webhook_deliveries('d1', 10, 60)",
    "app_private.record_webhook_attempt": "SELECT app_private.record_webhook_attempt((SELECT id FROM webhook_deliveries WHERE status = 'delivering' LIMIT 1), 'd1', 1, false, 500, 12, 'HTTP 500', 'no', 1, 10, interval '1 day', interval '5 days')",
    "app_private.webhook_event_body": "SELECT app_private.webhook_event_body((SELECT id FROM webhook_events LIMIT 1))",
    "app_private.purge_webhook_events": "SELECT app_private.purge_webhook_events(interval '0')",
    "public.delete_webhook_endpoint": "SELECT delete_webhook_endpoint((SELECT id FROM webhook_endpoints LIMIT 1))",
    "app_private.file_type_of": "SELECT app_private.file_type_of('video/mp4')",
    "app_private.ingest_storage_object": "SELECT app_private.ingest_storage_object(gen_random_uuid(), 'no-rule', 'a.png', NULL, '{}', 'v1')",
    "app_private.attach_storage_ingest": "SELECT app_private.attach_storage_ingest()",
    # Pools, caps and pauses (0019); claim_job and queue_ready above also have pool overloads.
    "app_private.pause_jobs": "SELECT app_private.pause_jobs('noop', %(tenant)s, 'test')",
    "app_private.resume_jobs": "SELECT app_private.resume_jobs('noop', %(tenant)s)",
    "app_private.set_tenant_job_limit": "SELECT app_private.set_tenant_job_limit(%(tenant)s, 2)",
    "app_private.pool_backlog": "SELECT * FROM app_private.pool_backlog('{thumbnail,metadata}')",
    "app_private.register_worker_pool": "SELECT app_private.register_worker_pool('s1', 'light', 'q-light', '{thumbnail}', 2)",
    "app_private.live_worker_pools": "SELECT * FROM app_private.live_worker_pools(30)",
}

# Trigger functions attached only where another schema exists: the storage.objects trigger exists
# on Supabase (tests/integration/ingest attaches and exercises it on the stand-in's storage schema).
ATTACHED_ELSEWHERE = {"storage_object_ingest_trigger"}


def test_every_function_is_called(conn: psycopg.Connection) -> None:
    """Each non-trigger function in public, app and app_private runs without error."""
    catalog = {r["f"] for r in conn.execute(
        """SELECT n.nspname || '.' || p.proname AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname IN ('public', 'app', 'app_private') AND p.prorettype <> 'trigger'::regtype""")}
    assert catalog == set(CALLS), f"functions without a call: {catalog - set(CALLS)}; stale: {set(CALLS) - catalog}"
    tenant, user = f.tenant(conn), f.user(conn)
    f.member(conn, tenant, user, "owner")
    content = f.content(conn, tenant, user)
    args = {
        "tenant": tenant,
        "content": content,
        "asset": f.asset(conn, tenant, user),
        "collection": f.insert(conn, "content_collections", tenant_id=tenant, creator_id=user, name="c", slug="c",
                               collection_type="course"),
        "tag": f.insert(conn, "content_tags", tenant_id=tenant, name="t", slug="t"),
    }
    conn.execute("SELECT set_config('request.jwt.claims', %s, false)", (f'{{"sub": "{user}"}}',))
    for name, call in CALLS.items():
        try:
            conn.execute(call, args).fetchall()
        except psycopg.Error as exc:
            raise AssertionError(f"{name}: {exc}") from exc


def test_every_trigger_function_is_attached(conn: psycopg.Connection) -> None:
    """Each trigger function is used by at least one trigger (so DML exercises it)."""
    rows = conn.execute(
        """SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname IN ('public', 'app', 'app_private') AND p.prorettype = 'trigger'::regtype
             AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid)""").fetchall()
    assert [r for r in rows if r["proname"] not in ATTACHED_ELSEWHERE] == []
