-- Foundation: API roles, the minimal auth schema of Supabase (only where missing), our own schemas,
-- enum types and the shared trigger functions.
--
-- Schemas:
--   public       what the API (PostgREST) exposes: tables under RLS and the RPC functions.
--   app          helper functions that RLS policies call; usable by API roles, not exposed by the API.
--   app_private  queue internals, maintenance, analytics: no API role has USAGE on it.

-- API roles exist on Supabase; on a plain PostgreSQL create them (NOLOGIN) so policies can name them.
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
      IF r = 'service_role' THEN
        EXECUTE 'ALTER ROLE service_role BYPASSRLS';
      END IF;
    END IF;
  END LOOP;
END $$;

-- The parts of Supabase's auth schema that we use, created only where missing.
DO $$
BEGIN
  IF to_regnamespace('auth') IS NULL THEN
    CREATE SCHEMA auth;
  END IF;
  IF to_regclass('auth.users') IS NULL THEN
    CREATE TABLE auth.users (
      id uuid PRIMARY KEY,
      email varchar(255) UNIQUE,
      raw_app_meta_data jsonb,
      raw_user_meta_data jsonb,
      created_at timestamptz DEFAULT now(),
      updated_at timestamptz
    );
  END IF;
  IF to_regprocedure('auth.uid()') IS NULL THEN
    CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
      SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $f$;
  END IF;
  IF to_regprocedure('auth.jwt()') IS NULL THEN
    CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
      SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
    $f$;
  END IF;
  IF to_regprocedure('auth.role()') IS NULL THEN
    CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
      SELECT coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                      nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    $f$;
  END IF;
  -- Grants on auth objects we created ourselves (on Supabase they are already in place).
  IF has_schema_privilege('auth', 'CREATE') THEN
    GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
  END IF;
END $$;

CREATE SCHEMA IF NOT EXISTS app;
REVOKE ALL ON SCHEMA app FROM PUBLIC;
GRANT USAGE ON SCHEMA app TO anon, authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS app_private;
REVOKE ALL ON SCHEMA app_private FROM PUBLIC;

-- Functions are executable by PUBLIC unless revoked (per-schema default privileges cannot take
-- that away), so every migration revokes EXECUTE on the functions it creates; a lint test checks.

-- Enumerations of the plan (Step 1.3, 3.1, 5.1).
CREATE TYPE public.content_type_enum AS ENUM (
  'blog_post', 'article', 'newsletter', 'book_chapter', 'research_paper', 'case_study',
  'video_lesson', 'short_video', 'webinar', 'interview', 'livestream', 'video_series',
  'podcast_episode', 'audio_lesson', 'conference_talk', 'audiobook_chapter', 'meditation',
  'course_module', 'assessment', 'quiz', 'survey', 'workshop', 'certification',
  'infographic', 'presentation', 'social_graphic', 'gallery', 'diagram',
  'forum_post', 'discussion', 'comment', 'user_story', 'testimonial'
);
CREATE TYPE public.content_status_enum AS ENUM (
  'draft', 'in_review', 'scheduled', 'published', 'archived', 'deleted'
);
CREATE TYPE public.block_category_enum AS ENUM (
  'text', 'media', 'interactive', 'layout', 'embed', 'data'
);
CREATE TYPE public.asset_status_enum AS ENUM (
  'uploading', 'processing', 'ready', 'failed', 'deleted'
);
CREATE TYPE public.asset_type_enum AS ENUM (
  'image', 'video', 'audio', 'document', 'archive', 'other'
);
CREATE TYPE public.engagement_event_enum AS ENUM (
  'view', 'start_reading', 'progress', 'completion', 'bookmark', 'share', 'like', 'comment',
  'download', 'purchase'
);

-- updated_at maintained on every table that has the column (defect 32).
CREATE FUNCTION app_private.set_updated_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;
REVOKE ALL ON FUNCTION app_private.set_updated_at() FROM PUBLIC;
