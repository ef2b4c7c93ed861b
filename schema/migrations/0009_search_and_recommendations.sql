-- Phase 7: search and recommendations.

CREATE TABLE public.search_queries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  query text NOT NULL CHECK (char_length(query) <= 500),
  result_count integer CHECK (result_count >= 0),
  user_id uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX search_queries_popular_idx ON public.search_queries (tenant_id, query, created_at DESC);
CREATE INDEX search_queries_user_idx ON public.search_queries (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX search_queries_created_idx ON public.search_queries (created_at);

-- The plan's search_content(), fixed (defects 20, 38): matches are ranked from the stored,
-- weighted search vector and from the transcripts of the content's media; category and tag filters
-- are separate semi-joins (so they combine and never duplicate rows); only published content that
-- the caller may find is returned: public items (paid ones only to members), members-only items
-- to members. Unlisted and private content never appears in search.
CREATE FUNCTION public.search_content(
  p_tenant_id uuid,
  p_query text,
  p_content_types public.content_type_enum[] DEFAULT NULL,
  p_categories uuid[] DEFAULT NULL,
  p_tags uuid[] DEFAULT NULL,
  p_limit integer DEFAULT 20,
  p_offset integer DEFAULT 0,
  p_language regconfig DEFAULT 'english'
)
RETURNS TABLE (content_id uuid, title text, excerpt text, content_type public.content_type_enum,
               published_at timestamptz, rank real)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_tenant uuid := coalesce(p_tenant_id, public.get_current_tenant_id());
  v_member boolean;
BEGIN
  IF v_tenant IS NULL THEN
    RAISE EXCEPTION 'search_content needs a tenant (p_tenant_id or app.current_tenant_id)' USING ERRCODE = '22023';
  END IF;
  IF p_limit NOT BETWEEN 1 AND 100 OR p_offset < 0 THEN
    RAISE EXCEPTION 'p_limit must be between 1 and 100 and p_offset at least 0' USING ERRCODE = '22023';
  END IF;
  v_member := NOT app.caller_is_api() OR app.has_tenant_role(v_tenant, 'member');
  RETURN QUERY
  WITH q AS (
    SELECT websearch_to_tsquery(p_language, p_query) AS words, websearch_to_tsquery('simple', p_query) AS spoken
  ), hits AS (
    -- Filters that need only the content row are applied while scanning, so hits never go back
    -- to the table a second time.
    SELECT c.id, ts_rank(c.search_vector, q.words) AS r
    FROM public.content c, q
    WHERE c.tenant_id = v_tenant AND c.search_vector @@ q.words
      AND c.status = 'published' AND c.visibility IN ('public', 'members')
    UNION ALL
    SELECT ca.content_id, 0.5 * ts_rank(a.transcript_vector, q.spoken)
    FROM public.assets a
    JOIN public.content_assets ca ON ca.tenant_id = a.tenant_id AND ca.asset_id = a.id, q
    WHERE a.tenant_id = v_tenant AND a.transcript_text IS NOT NULL AND a.transcript_vector @@ q.spoken
  ), best AS (
    SELECT h.id, max(h.r)::real AS r FROM hits h GROUP BY h.id
  )
  SELECT c.id, c.title, c.excerpt, c.content_type, c.published_at, b.r
  FROM best b
  JOIN public.content c ON c.id = b.id
  WHERE c.status = 'published'
    AND ((c.visibility = 'public' AND (c.access_level = 'free' OR v_member))
         OR (c.visibility = 'members' AND v_member))
    AND (p_content_types IS NULL OR c.content_type = ANY (p_content_types))
    AND (p_categories IS NULL OR EXISTS (
          SELECT 1 FROM public.content_categorizations cc
          WHERE cc.tenant_id = c.tenant_id AND cc.content_id = c.id AND cc.category_id = ANY (p_categories)))
    AND (p_tags IS NULL OR EXISTS (
          SELECT 1 FROM public.content_categorizations ct
          WHERE ct.tenant_id = c.tenant_id AND ct.content_id = c.id AND ct.tag_id = ANY (p_tags)))
  ORDER BY b.r DESC, c.published_at DESC, c.id
  LIMIT p_limit OFFSET p_offset;
END;
$$;

-- ---------------------------------------------------------------------------------------------
CREATE TABLE public.content_recommendations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  content_id uuid NOT NULL,
  recommendation_type text NOT NULL CHECK (recommendation_type IN ('similar', 'popular', 'trending', 'personalized')),
  confidence_score real NOT NULL DEFAULT 0.5 CHECK (confidence_score BETWEEN 0 AND 1),
  reason text,
  generated_at timestamptz NOT NULL DEFAULT now(),
  shown_at timestamptz,
  clicked_at timestamptz,
  CONSTRAINT recommendations_unique UNIQUE (user_id, content_id, recommendation_type),
  FOREIGN KEY (tenant_id, content_id) REFERENCES public.content (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX recommendations_tenant_content_idx ON public.content_recommendations (tenant_id, content_id);

-- The plan's generate_recommendations(), fixed (defects 3, 25): for the calling user, within one
-- tenant; what the user already started is never recommended; candidates are restricted to
-- published content the user may read before they are ranked and limited. The results are also
-- stored in content_recommendations.
CREATE FUNCTION public.generate_recommendations(p_limit integer DEFAULT 10, p_tenant_id uuid DEFAULT NULL)
RETURNS TABLE (content_id uuid, title text, content_type public.content_type_enum, confidence_score real, reason text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_uid uuid := auth.uid();
  v_tenant uuid := coalesce(p_tenant_id, public.get_current_tenant_id());
BEGIN
  IF v_uid IS NULL THEN
    RAISE EXCEPTION 'generate_recommendations needs a signed-in user' USING ERRCODE = '42501';
  END IF;
  IF v_tenant IS NULL OR NOT app.has_tenant_role(v_tenant, 'member') THEN
    RAISE EXCEPTION 'generate_recommendations needs a tenant the user is a member of' USING ERRCODE = '42501';
  END IF;
  IF p_limit NOT BETWEEN 1 AND 100 THEN
    RAISE EXCEPTION 'p_limit must be between 1 and 100' USING ERRCODE = '22023';
  END IF;
  RETURN QUERY
  WITH started AS (
    SELECT DISTINCT p.content_id FROM public.user_content_progress p
    WHERE p.user_id = v_uid AND p.tenant_id = v_tenant
  ), consumed AS (
    SELECT DISTINCT p.content_id FROM public.user_content_progress p
    WHERE p.user_id = v_uid AND p.tenant_id = v_tenant AND p.progress_percentage > 50
  ), similar_users AS (
    SELECT p.user_id, count(*) AS shared
    FROM public.user_content_progress p JOIN consumed c ON c.content_id = p.content_id
    WHERE p.tenant_id = v_tenant AND p.user_id <> v_uid AND p.progress_percentage > 50
    GROUP BY p.user_id HAVING count(*) >= 2
    ORDER BY shared DESC LIMIT 50
  ), candidates AS (
    SELECT p.content_id, count(*) AS strength
    FROM public.user_content_progress p
    JOIN similar_users su ON su.user_id = p.user_id
    JOIN public.content c ON c.id = p.content_id
    WHERE p.tenant_id = v_tenant AND p.progress_percentage > 75
      AND NOT EXISTS (SELECT 1 FROM started s WHERE s.content_id = p.content_id)
      AND c.status = 'published' AND c.visibility IN ('public', 'members', 'unlisted')
    GROUP BY p.content_id
    ORDER BY strength DESC, p.content_id
    LIMIT p_limit
  ), stored AS (
    INSERT INTO public.content_recommendations AS r (tenant_id, user_id, content_id, recommendation_type, confidence_score, reason)
    SELECT v_tenant, v_uid, k.content_id, 'personalized', least(k.strength / 10.0, 1.0)::real,
           'Based on similar users'' preferences'
    FROM candidates k
    ON CONFLICT ON CONSTRAINT recommendations_unique DO UPDATE
      SET confidence_score = EXCLUDED.confidence_score, generated_at = now()
    RETURNING r.content_id
  )
  SELECT c.id, c.title, c.content_type, least(k.strength / 10.0, 1.0)::real,
         'Based on similar users'' preferences'::text
  FROM candidates k JOIN public.content c ON c.id = k.content_id
  ORDER BY k.strength DESC, c.id;
END;
$$;

ALTER TABLE public.search_queries ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.content_recommendations ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.search_queries, public.content_recommendations FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT ON public.search_queries TO authenticated;
GRANT SELECT, UPDATE, DELETE ON public.content_recommendations TO authenticated;
GRANT ALL ON public.search_queries, public.content_recommendations TO service_role;

CREATE POLICY search_queries_select ON public.search_queries FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()) OR tenant_id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[]));
CREATE POLICY search_queries_insert ON public.search_queries FOR INSERT TO authenticated
  WITH CHECK (user_id = (SELECT auth.uid()) AND tenant_id = ANY ((SELECT app.my_tenant_ids())::uuid[]));

CREATE POLICY recommendations_select_own ON public.content_recommendations FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()));
CREATE POLICY recommendations_update_own ON public.content_recommendations FOR UPDATE TO authenticated
  USING (user_id = (SELECT auth.uid())) WITH CHECK (user_id = (SELECT auth.uid()));
CREATE POLICY recommendations_delete_own ON public.content_recommendations FOR DELETE TO authenticated
  USING (user_id = (SELECT auth.uid()));

REVOKE ALL ON FUNCTION public.search_content(uuid, text, public.content_type_enum[], uuid[], uuid[], integer, integer, regconfig),
  public.generate_recommendations(integer, uuid) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.search_content(uuid, text, public.content_type_enum[], uuid[], uuid[], integer, integer, regconfig)
  TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION public.generate_recommendations(integer, uuid) TO authenticated, service_role;
