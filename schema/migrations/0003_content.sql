-- Phase 2: content, its versions, the block registry and block validation.

CREATE TABLE public.content (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  -- Attribution survives the user's deletion as NULL (defect 18).
  creator_id uuid REFERENCES auth.users (id) ON DELETE SET NULL,

  content_type public.content_type_enum NOT NULL,
  title text NOT NULL,
  slug text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
  excerpt text,

  blocks jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(blocks) = 'array'),
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),

  status public.content_status_enum NOT NULL DEFAULT 'draft',
  published_at timestamptz,
  scheduled_for timestamptz,
  -- Scheduled archiving ("unpublish at"), and lifecycle stamps instead of overloading published_at.
  unpublish_at timestamptz,
  archived_at timestamptz,
  deleted_at timestamptz,

  seo_title text,
  seo_description text,
  keywords text[],
  canonical_url text,
  search_language regconfig NOT NULL DEFAULT 'english',

  visibility text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private', 'unlisted', 'members')),
  access_level text NOT NULL DEFAULT 'free' CHECK (access_level IN ('free', 'premium', 'paid')),
  price_cents integer NOT NULL DEFAULT 0 CHECK (price_cents >= 0),

  -- Optimistic locking: every change to title, excerpt or blocks bumps version and snapshots the
  -- previous state into content_versions (defect 22: versions are not sibling rows).
  version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
  lock_owner_id uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  lock_expires_at timestamptz,

  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  last_edited_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,

  -- Ranked search over title (A), excerpt (B), SEO description (C) and the blocks' text (D)
  -- (defects 5, 38), in the content's own language.
  search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector(search_language, coalesce(title, '')), 'A')
    || setweight(to_tsvector(search_language, coalesce(excerpt, '')), 'B')
    || setweight(to_tsvector(search_language, coalesce(seo_description, '')), 'C')
    || setweight(jsonb_to_tsvector(search_language, blocks, '["string"]'), 'D')
  ) STORED,

  UNIQUE (tenant_id, slug),
  UNIQUE (tenant_id, id),
  -- Defect 21: a published row needs a date; archiving keeps it.
  CONSTRAINT content_published_has_date CHECK (status <> 'published' OR published_at IS NOT NULL),
  CONSTRAINT content_scheduled_has_time CHECK (status <> 'scheduled' OR scheduled_for IS NOT NULL),
  CONSTRAINT content_paid_has_price CHECK ((access_level = 'paid') = (price_cents > 0)),
  CONSTRAINT content_lock_complete CHECK ((lock_owner_id IS NULL) = (lock_expires_at IS NULL))
);

-- Listing a tenant's published content, newest first (the plan's covering index without the
-- unbounded text columns of defect 29, and without its duplicates of defect 35).
CREATE INDEX content_listing_idx ON public.content (tenant_id, status, published_at DESC);
-- The same listing under RLS: enum equality is not LEAKPROOF, so the planner cannot push the
-- query's status = 'published' ahead of the policies into content_listing_idx and would sort every
-- published row of the tenant; this partial index serves it in order (bench/RESULTS.md, Schema).
CREATE INDEX content_published_listing_idx ON public.content (tenant_id, published_at DESC)
  WHERE status = 'published';
CREATE INDEX content_tenant_type_idx ON public.content (tenant_id, content_type);
CREATE INDEX content_scheduled_idx ON public.content (scheduled_for) WHERE status = 'scheduled';
CREATE INDEX content_unpublish_idx ON public.content (unpublish_at) WHERE status = 'published' AND unpublish_at IS NOT NULL;
CREATE INDEX content_search_idx ON public.content USING gin (search_vector);
CREATE INDEX content_lock_owner_idx ON public.content (lock_owner_id) WHERE lock_owner_id IS NOT NULL;
CREATE INDEX content_last_edited_by_idx ON public.content (last_edited_by) WHERE last_edited_by IS NOT NULL;

CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.content
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

CREATE TABLE public.content_versions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  content_id uuid NOT NULL,
  version integer NOT NULL,
  title text NOT NULL,
  excerpt text,
  blocks jsonb NOT NULL,
  metadata jsonb NOT NULL,
  edited_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (content_id, version),
  FOREIGN KEY (tenant_id, content_id) REFERENCES public.content (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX content_versions_tenant_content_idx ON public.content_versions (tenant_id, content_id);
CREATE INDEX content_versions_edited_by_idx ON public.content_versions (edited_by) WHERE edited_by IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- Block registry (Step 2.2).
CREATE TABLE public.block_types (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_]*$'),
  display_name text NOT NULL,
  description text,
  category public.block_category_enum NOT NULL,
  content_schema jsonb NOT NULL CHECK (jsonb_typeof(content_schema) = 'object'),
  settings_schema jsonb NOT NULL DEFAULT '{}',
  component_name text NOT NULL,
  icon text,
  preview_template text,
  enabled boolean NOT NULL DEFAULT true,
  premium_only boolean NOT NULL DEFAULT false,
  version text NOT NULL DEFAULT '1.0.0',
  deprecated boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.block_types
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

-- The plan's registry; media blocks additionally require a uuid asset_id, which is what lets the
-- schema track (and protect from cleanup) the assets a content's blocks use.
INSERT INTO public.block_types (name, display_name, description, category, content_schema, component_name, icon) VALUES
('paragraph', 'Paragraph', 'Rich text paragraph with formatting', 'text',
 '{"type": "object", "properties": {"content": {"type": "string"}, "format": {"type": "object"}}}', 'ParagraphBlock', 'type'),
('heading', 'Heading', 'Section heading (H1-H6)', 'text',
 '{"type": "object", "properties": {"content": {"type": "string"}, "level": {"type": "integer", "minimum": 1, "maximum": 6}}}', 'HeadingBlock', 'heading'),
('quote', 'Quote', 'Blockquote with attribution', 'text',
 '{"type": "object", "properties": {"content": {"type": "string"}, "attribution": {"type": "string"}}}', 'QuoteBlock', 'quote'),
('image', 'Image', 'Single image with caption', 'media',
 '{"type": "object", "required": ["asset_id"], "properties": {"asset_id": {"type": "string", "format": "uuid"}, "alt": {"type": "string"}, "caption": {"type": "string"}}}', 'ImageBlock', 'image'),
('video', 'Video', 'Video player with controls', 'media',
 '{"type": "object", "required": ["asset_id"], "properties": {"asset_id": {"type": "string", "format": "uuid"}, "title": {"type": "string"}, "autoplay": {"type": "boolean"}}}', 'VideoBlock', 'video'),
('audio', 'Audio', 'Audio player with transcript', 'media',
 '{"type": "object", "required": ["asset_id"], "properties": {"asset_id": {"type": "string", "format": "uuid"}, "title": {"type": "string"}, "show_transcript": {"type": "boolean"}}}', 'AudioBlock', 'volume-2'),
('quiz', 'Quiz', 'Interactive quiz with questions', 'interactive',
 '{"type": "object", "properties": {"questions": {"type": "array"}, "settings": {"type": "object"}}}', 'QuizBlock', 'help-circle'),
('form', 'Form', 'Custom form with validation', 'interactive',
 '{"type": "object", "properties": {"fields": {"type": "array"}, "settings": {"type": "object"}}}', 'FormBlock', 'clipboard'),
('columns', 'Columns', 'Multi-column layout', 'layout',
 '{"type": "object", "properties": {"columns": {"type": "array"}, "gap": {"type": "string"}}}', 'ColumnsBlock', 'columns'),
('spacer', 'Spacer', 'Vertical spacing', 'layout',
 '{"type": "object", "properties": {"height": {"type": "string"}}}', 'SpacerBlock', 'minus'),
('youtube', 'YouTube', 'YouTube video embed', 'embed',
 '{"type": "object", "properties": {"video_id": {"type": "string"}, "start_time": {"type": "integer"}}}', 'YouTubeBlock', 'youtube'),
('tweet', 'Tweet', 'Twitter/X post embed', 'embed',
 '{"type": "object", "properties": {"tweet_id": {"type": "string"}}}', 'TweetBlock', 'twitter');

-- ---------------------------------------------------------------------------------------------
-- Block validation. Our own validator covers the JSON Schema keywords the registry uses (type,
-- properties, required, enum, minimum, maximum, minLength, maxLength, format uuid,
-- additionalProperties false); where the pg_jsonschema extension is installed, each block is also
-- checked with it, so keywords beyond ours still hold. Errors name the block index and the field.

-- Enable pg_jsonschema where the server offers it (Supabase does), in the extensions schema.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_jsonschema')
     AND to_regnamespace('extensions') IS NOT NULL THEN
    CREATE EXTENSION IF NOT EXISTS pg_jsonschema WITH SCHEMA extensions;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'pg_jsonschema is available but this role may not create it; blocks use our validator alone';
END $$;

-- First violation of p_schema by p_value at p_path, or NULL.
CREATE FUNCTION app.jsonschema_error(p_schema jsonb, p_value jsonb, p_path text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = '' AS $$
DECLARE
  v_type text := p_schema ->> 'type';
  v_actual text := jsonb_typeof(p_value);
  v_key text;
  v_sub jsonb;
  v_err text;
  v_num numeric;
BEGIN
  IF v_type IS NOT NULL AND NOT (
       v_type = v_actual
       OR (v_type = 'integer' AND v_actual = 'number' AND (p_value #>> '{}')::numeric = trunc((p_value #>> '{}')::numeric))
     ) THEN
    RETURN format('%s must be of type %s, not %s', p_path, v_type, v_actual);
  END IF;
  IF p_schema ? 'enum' AND NOT (p_schema -> 'enum') @> jsonb_build_array(p_value) THEN
    RETURN format('%s must be one of %s', p_path, p_schema -> 'enum');
  END IF;
  IF v_actual = 'number' THEN
    v_num := (p_value #>> '{}')::numeric;
    IF p_schema ? 'minimum' AND v_num < (p_schema ->> 'minimum')::numeric THEN
      RETURN format('%s must be at least %s', p_path, p_schema ->> 'minimum');
    END IF;
    IF p_schema ? 'maximum' AND v_num > (p_schema ->> 'maximum')::numeric THEN
      RETURN format('%s must be at most %s', p_path, p_schema ->> 'maximum');
    END IF;
  ELSIF v_actual = 'string' THEN
    IF p_schema ? 'minLength' AND char_length(p_value #>> '{}') < (p_schema ->> 'minLength')::int THEN
      RETURN format('%s must be at least %s characters long', p_path, p_schema ->> 'minLength');
    END IF;
    IF p_schema ? 'maxLength' AND char_length(p_value #>> '{}') > (p_schema ->> 'maxLength')::int THEN
      RETURN format('%s must be at most %s characters long', p_path, p_schema ->> 'maxLength');
    END IF;
    IF p_schema ->> 'format' = 'uuid'
       AND (p_value #>> '{}') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
      RETURN format('%s must be a uuid', p_path);
    END IF;
  ELSIF v_actual = 'object' THEN
    IF p_schema ? 'required' THEN
      FOR v_key IN SELECT jsonb_array_elements_text(p_schema -> 'required') LOOP
        IF NOT p_value ? v_key THEN
          RETURN format('%s.%s is required', p_path, v_key);
        END IF;
      END LOOP;
    END IF;
    FOR v_key, v_sub IN SELECT * FROM jsonb_each(coalesce(p_schema -> 'properties', '{}')) LOOP
      IF p_value ? v_key THEN
        v_err := app.jsonschema_error(v_sub, p_value -> v_key, p_path || '.' || v_key);
        IF v_err IS NOT NULL THEN
          RETURN v_err;
        END IF;
      END IF;
    END LOOP;
    IF p_schema -> 'additionalProperties' = 'false'::jsonb THEN
      FOR v_key IN SELECT jsonb_object_keys(p_value) LOOP
        IF NOT coalesce(p_schema -> 'properties', '{}') ? v_key THEN
          RETURN format('%s.%s is not allowed', p_path, v_key);
        END IF;
      END LOOP;
    END IF;
  ELSIF v_actual = 'array' AND p_schema ? 'items' THEN
    FOR v_key, v_sub IN SELECT (ord - 1)::text, elem FROM jsonb_array_elements(p_value) WITH ORDINALITY AS t(elem, ord) LOOP
      v_err := app.jsonschema_error(p_schema -> 'items', v_sub, p_path || '[' || v_key || ']');
      IF v_err IS NOT NULL THEN
        RETURN v_err;
      END IF;
    END LOOP;
  END IF;
  RETURN NULL;
END;
$$;

-- Raises on the first invalid block: "block 2 (heading): level must be at most 6".
CREATE FUNCTION app.validate_blocks(p_blocks jsonb) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_block jsonb;
  v_index integer;
  v_type text;
  v_bt record;
  v_err text;
  v_props jsonb;
  v_has_pg_jsonschema boolean := to_regproc('extensions.jsonb_matches_schema') IS NOT NULL;
  v_ok boolean;
BEGIN
  IF jsonb_typeof(p_blocks) <> 'array' THEN
    RAISE EXCEPTION 'blocks must be a JSON array' USING ERRCODE = '22023';
  END IF;
  FOR v_block, v_index IN SELECT elem, (ord - 1)::int FROM jsonb_array_elements(p_blocks) WITH ORDINALITY AS t(elem, ord) LOOP
    IF jsonb_typeof(v_block) <> 'object' THEN
      RAISE EXCEPTION 'block %: must be a JSON object', v_index USING ERRCODE = '22023';
    END IF;
    v_type := v_block ->> 'type';
    IF v_type IS NULL THEN
      RAISE EXCEPTION 'block %: type is required', v_index USING ERRCODE = '22023';
    END IF;
    IF v_block ? 'id' AND jsonb_typeof(v_block -> 'id') <> 'string' THEN
      RAISE EXCEPTION 'block % (%): id must be a string', v_index, v_type USING ERRCODE = '22023';
    END IF;
    SELECT bt.content_schema, bt.enabled INTO v_bt FROM public.block_types bt WHERE bt.name = v_type;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'block %: unknown block type "%"', v_index, v_type USING ERRCODE = '22023';
    END IF;
    IF NOT v_bt.enabled THEN
      RAISE EXCEPTION 'block %: block type "%" is disabled', v_index, v_type USING ERRCODE = '22023';
    END IF;
    v_props := v_block - 'type' - 'id';
    v_err := app.jsonschema_error(v_bt.content_schema, v_props, 'block');
    IF v_err IS NOT NULL THEN
      RAISE EXCEPTION 'block % (%): %', v_index, v_type, substr(v_err, length('block.') + 1)
        USING ERRCODE = '22023';
    END IF;
    IF v_has_pg_jsonschema THEN
      EXECUTE 'SELECT extensions.jsonb_matches_schema($1::json, $2)' INTO v_ok USING v_bt.content_schema, v_props;
      IF NOT v_ok THEN
        RAISE EXCEPTION 'block % (%): does not match the block type''s JSON schema', v_index, v_type
          USING ERRCODE = '22023';
      END IF;
    END IF;
  END LOOP;
END;
$$;

CREATE FUNCTION app_private.content_before_write() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_uid uuid := auth.uid();
BEGIN
  IF TG_OP = 'INSERT' OR NEW.blocks IS DISTINCT FROM OLD.blocks THEN
    PERFORM app.validate_blocks(NEW.blocks);
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF (NEW.title, NEW.excerpt, NEW.blocks) IS DISTINCT FROM (OLD.title, OLD.excerpt, OLD.blocks) THEN
      -- A collaboration lock held by someone else blocks edits until it expires.
      IF OLD.lock_owner_id IS NOT NULL AND OLD.lock_expires_at > now()
         AND v_uid IS NOT NULL AND v_uid <> OLD.lock_owner_id THEN
        RAISE EXCEPTION 'content % is locked by another editor until %', OLD.id, OLD.lock_expires_at
          USING ERRCODE = '55P03';
      END IF;
      INSERT INTO public.content_versions (tenant_id, content_id, version, title, excerpt, blocks, metadata, edited_by)
      VALUES (OLD.tenant_id, OLD.id, OLD.version, OLD.title, OLD.excerpt, OLD.blocks, OLD.metadata, OLD.last_edited_by)
      ON CONFLICT (content_id, version) DO NOTHING;
      IF NEW.version <= OLD.version THEN
        NEW.version := OLD.version + 1;
      END IF;
      NEW.last_edited_by := coalesce(v_uid, NEW.last_edited_by);
    END IF;
    IF NEW.status = 'archived' AND OLD.status <> 'archived' THEN
      NEW.archived_at := coalesce(NEW.archived_at, now());
    ELSIF NEW.status = 'deleted' AND OLD.status <> 'deleted' THEN
      NEW.deleted_at := coalesce(NEW.deleted_at, now());
    END IF;
    IF NEW.status = 'published' AND OLD.status = 'scheduled' THEN
      NEW.scheduled_for := NULL;  -- the plan's CHECK forbade publishing a scheduled row (defect 21)
    END IF;
  ELSE
    NEW.last_edited_by := coalesce(NEW.last_edited_by, v_uid);
  END IF;
  IF NEW.status = 'published' AND NEW.published_at IS NULL THEN
    NEW.published_at := now();
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER content_before_write BEFORE INSERT OR UPDATE ON public.content
  FOR EACH ROW EXECUTE FUNCTION app_private.content_before_write();

-- ---------------------------------------------------------------------------------------------
-- Security. Published, public (or unlisted) free content is readable by anyone (defect 17).
-- Members read their tenant's published content except private items; authors also read their
-- own drafts; editors and above read everything of the tenant. Writes need author rights and the
-- caller as creator; editors and above edit and delete anything of the tenant (defect 12).
ALTER TABLE public.content ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.content_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.block_types ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.content, public.content_versions, public.block_types FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.content TO anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.content TO authenticated;
GRANT SELECT ON public.content_versions TO authenticated;
GRANT SELECT ON public.block_types TO anon, authenticated;
GRANT ALL ON public.content, public.content_versions, public.block_types TO service_role;

CREATE POLICY content_select_public ON public.content FOR SELECT TO anon, authenticated
  USING (status = 'published' AND visibility IN ('public', 'unlisted') AND access_level = 'free');
CREATE POLICY content_select_member ON public.content FOR SELECT TO authenticated
  USING (
    tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[])
    AND (
      (status = 'published' AND visibility <> 'private')
      OR creator_id = (SELECT auth.uid())
      OR tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
    )
  );
CREATE POLICY content_insert_author ON public.content FOR INSERT TO authenticated
  WITH CHECK (
    creator_id = (SELECT auth.uid())
    AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[])
  );
CREATE POLICY content_update ON public.content FOR UPDATE TO authenticated
  USING (
    tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
    OR (creator_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]))
  )
  WITH CHECK (
    tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
    OR (creator_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]))
  );
CREATE POLICY content_delete ON public.content FOR DELETE TO authenticated
  USING (
    tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
    OR (creator_id = (SELECT auth.uid()) AND status <> 'published'
        AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]))
  );

CREATE POLICY content_versions_select ON public.content_versions FOR SELECT TO authenticated
  USING (
    tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
    OR (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND edited_by = (SELECT auth.uid()))
  );

CREATE POLICY block_types_select ON public.block_types FOR SELECT TO anon, authenticated
  USING (enabled);

REVOKE ALL ON FUNCTION app.jsonschema_error(jsonb, jsonb, text), app.validate_blocks(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.validate_blocks(jsonb) TO authenticated, service_role;
REVOKE ALL ON FUNCTION app_private.content_before_write() FROM PUBLIC;
