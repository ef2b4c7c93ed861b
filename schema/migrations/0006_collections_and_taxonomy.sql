-- Phase 4: collections (courses, series, books), their items and prerequisites; categories and tags.

CREATE TABLE public.content_collections (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  creator_id uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  name text NOT NULL,
  description text,
  slug text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
  collection_type text NOT NULL CHECK (collection_type IN ('course', 'series', 'book', 'playlist', 'bundle')),
  settings jsonb NOT NULL DEFAULT '{}',
  -- A cover image never blocks deleting its asset (defect 30).
  cover_asset_id uuid,
  brand_colors jsonb NOT NULL DEFAULT '{}',
  visibility text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private', 'unlisted')),
  access_level text NOT NULL DEFAULT 'free' CHECK (access_level IN ('free', 'premium', 'paid')),
  price_cents integer NOT NULL DEFAULT 0 CHECK (price_cents >= 0),
  is_sequential boolean NOT NULL DEFAULT false,
  completion_certificate boolean NOT NULL DEFAULT false,
  status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
  published_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, slug),
  UNIQUE (tenant_id, id),
  CONSTRAINT collections_published_has_date CHECK (status <> 'published' OR published_at IS NOT NULL),
  CONSTRAINT collections_paid_has_price CHECK ((access_level = 'paid') = (price_cents > 0)),
  FOREIGN KEY (tenant_id, cover_asset_id) REFERENCES public.assets (tenant_id, id) ON DELETE SET NULL (cover_asset_id)
);
CREATE INDEX collections_creator_idx ON public.content_collections (creator_id) WHERE creator_id IS NOT NULL;
CREATE INDEX collections_cover_idx ON public.content_collections (tenant_id, cover_asset_id) WHERE cover_asset_id IS NOT NULL;
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.content_collections
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

CREATE TABLE public.content_collection_items (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  collection_id uuid NOT NULL,
  content_id uuid NOT NULL,
  sort_order integer NOT NULL,
  section_name text,
  is_required boolean NOT NULL DEFAULT true,
  unlock_delay_hours integer NOT NULL DEFAULT 0 CHECK (unlock_delay_hours >= 0),
  notes text,
  estimated_duration_minutes integer CHECK (estimated_duration_minutes >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (collection_id, content_id),
  -- Deferred, so reordering with sort_order = sort_order + 1 works (defect 27).
  CONSTRAINT collection_items_order_unique UNIQUE (collection_id, sort_order) DEFERRABLE INITIALLY DEFERRED,
  UNIQUE (tenant_id, id),
  FOREIGN KEY (tenant_id, collection_id) REFERENCES public.content_collections (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, content_id) REFERENCES public.content (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX collection_items_tenant_collection_idx ON public.content_collection_items (tenant_id, collection_id);
CREATE INDEX collection_items_tenant_content_idx ON public.content_collection_items (tenant_id, content_id);
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.content_collection_items
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

-- Prerequisites as rows with real keys instead of a text[] of ids (defect 27).
CREATE TABLE public.collection_item_prerequisites (
  tenant_id uuid NOT NULL,
  item_id uuid NOT NULL,
  required_item_id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (item_id, required_item_id),
  CHECK (item_id <> required_item_id),
  FOREIGN KEY (tenant_id, item_id) REFERENCES public.content_collection_items (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, required_item_id) REFERENCES public.content_collection_items (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX collection_prereq_tenant_item_idx ON public.collection_item_prerequisites (tenant_id, item_id);
CREATE INDEX collection_prereq_tenant_required_idx ON public.collection_item_prerequisites (tenant_id, required_item_id);

CREATE TABLE public.content_categories (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  name text NOT NULL,
  slug text NOT NULL,
  description text,
  color text,
  parent_id uuid,
  sort_order integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, slug),
  UNIQUE (tenant_id, id),
  CHECK (parent_id IS DISTINCT FROM id),
  FOREIGN KEY (tenant_id, parent_id) REFERENCES public.content_categories (tenant_id, id) ON DELETE SET NULL (parent_id)
);
CREATE INDEX categories_parent_idx ON public.content_categories (tenant_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.content_categories
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

CREATE TABLE public.content_tags (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  name text NOT NULL,
  slug text NOT NULL,
  color text,
  usage_count integer NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, slug),
  UNIQUE (tenant_id, id)
);
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.content_tags
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

CREATE TABLE public.content_categorizations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  content_id uuid NOT NULL,
  category_id uuid,
  tag_id uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((category_id IS NULL) <> (tag_id IS NULL)),
  UNIQUE (content_id, category_id),
  UNIQUE (content_id, tag_id),
  FOREIGN KEY (tenant_id, content_id) REFERENCES public.content (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, category_id) REFERENCES public.content_categories (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, tag_id) REFERENCES public.content_tags (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX categorizations_tenant_content_idx ON public.content_categorizations (tenant_id, content_id);
CREATE INDEX categorizations_category_idx ON public.content_categorizations (tenant_id, category_id) WHERE category_id IS NOT NULL;
CREATE INDEX categorizations_tag_idx ON public.content_categorizations (tenant_id, tag_id) WHERE tag_id IS NOT NULL;

-- Tag usage counts follow inserts, deletes and re-targeting updates; nightly maintenance recounts.
CREATE FUNCTION app_private.update_tag_usage_count() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.tag_id IS NOT NULL THEN
    UPDATE public.content_tags SET usage_count = greatest(usage_count - 1, 0) WHERE id = OLD.tag_id;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.tag_id IS NOT NULL THEN
    UPDATE public.content_tags SET usage_count = usage_count + 1 WHERE id = NEW.tag_id;
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER trigger_update_tag_usage AFTER INSERT OR DELETE OR UPDATE OF tag_id ON public.content_categorizations
  FOR EACH ROW EXECUTE FUNCTION app_private.update_tag_usage_count();
REVOKE ALL ON FUNCTION app_private.update_tag_usage_count() FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
ALTER TABLE public.content_collections ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.content_collection_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.collection_item_prerequisites ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.content_categories ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.content_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.content_categorizations ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.content_collections, public.content_collection_items, public.collection_item_prerequisites,
  public.content_categories, public.content_tags, public.content_categorizations FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.content_collections, public.content_collection_items, public.content_categories,
  public.content_tags TO anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.content_collections, public.content_collection_items,
  public.collection_item_prerequisites, public.content_categories, public.content_tags,
  public.content_categorizations TO authenticated;
GRANT ALL ON public.content_collections, public.content_collection_items, public.collection_item_prerequisites,
  public.content_categories, public.content_tags, public.content_categorizations TO service_role;

-- Collections follow the content rules: published public free ones are readable by anyone.
CREATE POLICY collections_select_public ON public.content_collections FOR SELECT TO anon, authenticated
  USING (status = 'published' AND visibility IN ('public', 'unlisted') AND access_level = 'free');
CREATE POLICY collections_select_member ON public.content_collections FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[])
         AND ((status = 'published' AND visibility <> 'private')
              OR creator_id = (SELECT auth.uid())
              OR tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])));
CREATE POLICY collections_insert_author ON public.content_collections FOR INSERT TO authenticated
  WITH CHECK (creator_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]));
CREATE POLICY collections_update ON public.content_collections FOR UPDATE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
         OR (creator_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[])))
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
              OR (creator_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[])));
CREATE POLICY collections_delete ON public.content_collections FOR DELETE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[])
         OR (creator_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[])));

CREATE FUNCTION app.can_edit_collection(p_collection_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM public.content_collections c
    WHERE c.id = p_collection_id
      AND (app.has_tenant_role(c.tenant_id, 'editor')
           OR (c.creator_id = auth.uid() AND app.has_tenant_role(c.tenant_id, 'author')))
  )
$$;
CREATE FUNCTION app.collection_is_public(p_collection_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM public.content_collections c
    WHERE c.id = p_collection_id AND c.status = 'published'
      AND c.visibility IN ('public', 'unlisted') AND c.access_level = 'free'
  )
$$;
REVOKE ALL ON FUNCTION app.can_edit_collection(uuid), app.collection_is_public(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.can_edit_collection(uuid) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION app.collection_is_public(uuid) TO anon, authenticated, service_role;

CREATE POLICY collection_items_select ON public.content_collection_items FOR SELECT TO anon, authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[]) OR app.collection_is_public(collection_id));
CREATE POLICY collection_items_insert ON public.content_collection_items FOR INSERT TO authenticated
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_collection(collection_id));
CREATE POLICY collection_items_update ON public.content_collection_items FOR UPDATE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_collection(collection_id))
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_collection(collection_id));
CREATE POLICY collection_items_delete ON public.content_collection_items FOR DELETE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_collection(collection_id));

CREATE POLICY prerequisites_select ON public.collection_item_prerequisites FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[]));
CREATE POLICY prerequisites_write ON public.collection_item_prerequisites FOR ALL TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]))
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]));

-- Taxonomy: members read their tenant's; anyone reads the terms that label public content;
-- editors and above manage them.
CREATE FUNCTION app.term_labels_public_content(p_category_id uuid, p_tag_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM public.content_categorizations cc
    JOIN public.content c ON c.tenant_id = cc.tenant_id AND c.id = cc.content_id
    WHERE (cc.category_id = p_category_id OR cc.tag_id = p_tag_id)
      AND c.status = 'published' AND c.visibility IN ('public', 'unlisted') AND c.access_level = 'free'
  )
$$;
REVOKE ALL ON FUNCTION app.term_labels_public_content(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.term_labels_public_content(uuid, uuid) TO anon, authenticated, service_role;

CREATE POLICY categories_select ON public.content_categories FOR SELECT TO anon, authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[]) OR app.term_labels_public_content(id, NULL));
CREATE POLICY categories_insert ON public.content_categories FOR INSERT TO authenticated
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]));
CREATE POLICY categories_update ON public.content_categories FOR UPDATE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]))
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]));
CREATE POLICY categories_delete ON public.content_categories FOR DELETE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]));
CREATE POLICY tags_select ON public.content_tags FOR SELECT TO anon, authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[]) OR app.term_labels_public_content(NULL, id));
CREATE POLICY tags_insert ON public.content_tags FOR INSERT TO authenticated
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]));
CREATE POLICY tags_update ON public.content_tags FOR UPDATE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]))
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]));
CREATE POLICY tags_delete ON public.content_tags FOR DELETE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('editor'))::uuid[]));

-- Categorising content takes the right to edit it.
CREATE POLICY categorizations_select ON public.content_categorizations FOR SELECT TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[]));
CREATE POLICY categorizations_insert ON public.content_categorizations FOR INSERT TO authenticated
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_content(content_id));
CREATE POLICY categorizations_update ON public.content_categorizations FOR UPDATE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_content(content_id))
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_content(content_id));
CREATE POLICY categorizations_delete ON public.content_categorizations FOR DELETE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('author'))::uuid[]) AND app.can_edit_content(content_id));
