-- contentforge:no-transaction
-- Step 8.1's indexes that serve known queries, built CONCURRENTLY so that applying this to a live
-- database does not block writers (defect 4). Each statement runs on its own; an INVALID index
-- left by an interrupted build is dropped and rebuilt by the runner. The plan's duplicate and
-- broken indexes are replaced: idx_content_blocks_text by content.search_vector (defect 5),
-- idx_assets_metadata_duration by the typed duration_seconds (defect 28), idx_content_list_covering
-- by content_listing_idx without unbounded text (defects 29, 35).

CREATE INDEX CONCURRENTLY IF NOT EXISTS content_tenant_status_type_published_idx
  ON public.content (tenant_id, status, content_type, published_at DESC)
  WHERE status IN ('published', 'scheduled');

CREATE INDEX CONCURRENTLY IF NOT EXISTS content_creator_type_status_idx
  ON public.content (creator_id, content_type, status, created_at DESC);

CREATE INDEX CONCURRENTLY IF NOT EXISTS content_premium_idx
  ON public.content (tenant_id, access_level, published_at DESC)
  WHERE access_level IN ('premium', 'paid') AND status = 'published';

CREATE INDEX CONCURRENTLY IF NOT EXISTS assets_processing_idx
  ON public.assets (tenant_id, processing_status, created_at)
  WHERE processing_status IN ('uploading', 'processing');

CREATE INDEX CONCURRENTLY IF NOT EXISTS assets_video_duration_idx
  ON public.assets (tenant_id, duration_seconds)
  WHERE file_type = 'video' AND duration_seconds IS NOT NULL;
