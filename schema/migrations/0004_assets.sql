-- Phase 3: assets and the links between content and assets.

CREATE TABLE public.assets (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  creator_id uuid REFERENCES auth.users (id) ON DELETE SET NULL,

  original_filename text NOT NULL,
  file_type public.asset_type_enum NOT NULL,
  mime_type text NOT NULL,
  file_size bigint NOT NULL CHECK (file_size >= 0),

  storage_bucket text NOT NULL DEFAULT 'assets',
  storage_path text NOT NULL,
  public_url text,

  processing_status public.asset_status_enum NOT NULL DEFAULT 'uploading',
  processing_progress integer NOT NULL DEFAULT 0 CHECK (processing_progress BETWEEN 0 AND 100),
  processing_error text,

  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  -- Derived files by variant name: {"thumb_320.webp": {"key", "format", "width", "height", "bytes"}}.
  variants jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(variants) = 'object'),
  -- Typed copy of metadata.duration filled by the processor (defect 28: no cast in an index).
  duration_seconds numeric CHECK (duration_seconds >= 0),
  -- Speech in the asset, so that content search finds what was said in a video or podcast.
  transcript_text text,
  transcript_language text,
  transcript_vector tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(transcript_text, ''))) STORED,

  access_count bigint NOT NULL DEFAULT 0,
  last_accessed_at timestamptz,

  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),

  UNIQUE (storage_bucket, storage_path),
  UNIQUE (tenant_id, id)
);
CREATE INDEX assets_tenant_created_idx ON public.assets (tenant_id, created_at DESC);
CREATE INDEX assets_creator_idx ON public.assets (creator_id, created_at DESC) WHERE creator_id IS NOT NULL;
CREATE INDEX assets_tenant_type_idx ON public.assets (tenant_id, file_type, processing_status);
CREATE INDEX assets_unfinished_idx ON public.assets (processing_status, updated_at) WHERE processing_status <> 'ready';
CREATE INDEX assets_transcript_idx ON public.assets USING gin (transcript_vector) WHERE transcript_text IS NOT NULL;

CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.assets
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

CREATE TABLE public.content_assets (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  content_id uuid NOT NULL,
  asset_id uuid NOT NULL,
  -- '' rather than NULL, so the unique key holds for links without a block (defect 26).
  block_id text NOT NULL DEFAULT '',
  usage_type text NOT NULL DEFAULT 'content' CHECK (usage_type IN ('content', 'thumbnail', 'cover', 'attachment')),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (content_id, asset_id, block_id, usage_type),
  -- Composite keys: a link can never join two tenants (defect 15).
  FOREIGN KEY (tenant_id, content_id) REFERENCES public.content (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, asset_id) REFERENCES public.assets (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX content_assets_tenant_content_idx ON public.content_assets (tenant_id, content_id);
CREATE INDEX content_assets_tenant_asset_idx ON public.content_assets (tenant_id, asset_id);

-- Assets used by media blocks are linked automatically (usage 'content', block id or index), so
-- cleanup never deletes an asset that a block shows and a block cannot use another tenant's asset.
CREATE FUNCTION app_private.sync_block_assets() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.blocks IS NOT DISTINCT FROM OLD.blocks THEN
    RETURN NULL;
  END IF;
  WITH wanted AS (
    SELECT DISTINCT (b.elem ->> 'asset_id')::uuid AS asset_id,
           coalesce(b.elem ->> 'id', (b.ord - 1)::text) AS block_id
    FROM jsonb_array_elements(NEW.blocks) WITH ORDINALITY AS b(elem, ord)
    WHERE b.elem ? 'asset_id'
  ), removed AS (
    DELETE FROM public.content_assets ca
    WHERE ca.content_id = NEW.id AND ca.usage_type = 'content' AND ca.block_id <> ''
      AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.asset_id = ca.asset_id AND w.block_id = ca.block_id)
  )
  INSERT INTO public.content_assets (tenant_id, content_id, asset_id, block_id, usage_type)
  SELECT NEW.tenant_id, NEW.id, w.asset_id, w.block_id, 'content' FROM wanted w
  ON CONFLICT (content_id, asset_id, block_id, usage_type) DO NOTHING;
  RETURN NULL;
END;
$$;
CREATE TRIGGER content_sync_block_assets AFTER INSERT OR UPDATE OF blocks ON public.content
  FOR EACH ROW EXECUTE FUNCTION app_private.sync_block_assets();
REVOKE ALL ON FUNCTION app_private.sync_block_assets() FROM PUBLIC;

ALTER TABLE public.assets ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.content_assets ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.assets, public.content_assets FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.assets, public.content_assets TO authenticated;
GRANT ALL ON public.assets, public.content_assets TO service_role;

-- Members read their tenant's assets (and so the processing roll-up); authors upload as themselves;
-- editors and above, or the uploader, change and delete.
CREATE POLICY assets_select_member ON public.assets FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[]));
CREATE POLICY assets_insert_author ON public.assets FOR INSERT TO authenticated
  WITH CHECK (creator_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]));
CREATE POLICY assets_update ON public.assets FOR UPDATE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
         OR (creator_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[])))
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
              OR (creator_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[])));
CREATE POLICY assets_delete ON public.assets FOR DELETE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
         OR (creator_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[])));

-- Links follow the right to edit the content they hang off.
CREATE FUNCTION app.can_edit_content(p_content_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM public.content c
    WHERE c.id = p_content_id
      AND (app.has_tenant_role(c.tenant_id, 'editor')
           OR (c.creator_id = auth.uid() AND app.has_tenant_role(c.tenant_id, 'author')))
  )
$$;
REVOKE ALL ON FUNCTION app.can_edit_content(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.can_edit_content(uuid) TO authenticated, service_role;

CREATE POLICY content_assets_select_member ON public.content_assets FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[]));
CREATE POLICY content_assets_insert ON public.content_assets FOR INSERT TO authenticated
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_content(content_id));
CREATE POLICY content_assets_update ON public.content_assets FOR UPDATE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_content(content_id))
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_content(content_id));
CREATE POLICY content_assets_delete ON public.content_assets FOR DELETE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_content(content_id));
