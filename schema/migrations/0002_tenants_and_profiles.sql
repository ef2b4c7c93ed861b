-- Phase 1: user profiles, tenants, memberships and the helper functions every policy uses.

CREATE TABLE public.user_profiles (
  id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  full_name text,
  avatar_url text,
  bio text,
  website text,
  social_links jsonb NOT NULL DEFAULT '{}',
  preferences jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.tenants (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]+$'),
  domain text UNIQUE,
  logo_url text,
  brand_colors jsonb NOT NULL DEFAULT '{}',
  settings jsonb NOT NULL DEFAULT '{}',
  plan_type text NOT NULL DEFAULT 'basic' CHECK (plan_type IN ('basic', 'pro', 'enterprise')),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'trial')),
  trial_ends_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.tenant_memberships (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  role text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'editor', 'author', 'member')),
  permissions jsonb NOT NULL DEFAULT '{}',
  invited_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  invited_at timestamptz NOT NULL DEFAULT now(),
  joined_at timestamptz,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('pending', 'active', 'suspended')),
  UNIQUE (tenant_id, user_id)
);
-- "Which tenants is this user in" is the lookup behind every policy (defect 34, section E).
CREATE INDEX tenant_memberships_user_idx ON public.tenant_memberships (user_id, status) INCLUDE (tenant_id, role);
CREATE INDEX tenant_memberships_invited_by_idx ON public.tenant_memberships (invited_by) WHERE invited_by IS NOT NULL;

CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.user_profiles
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.tenants
  FOR EACH ROW EXECUTE FUNCTION app_private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Helpers for policies. STABLE, SECURITY DEFINER with an empty search_path (defects 11, 33), and
-- called as (SELECT fn(...)) so the planner evaluates them once per statement, not once per row.

-- Rank of a membership role: member 1 < author 2 < editor 3 < admin 4 < owner 5.
CREATE FUNCTION app.role_rank(p_role text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = '' AS $$
  SELECT coalesce(array_position(ARRAY['member', 'author', 'editor', 'admin', 'owner'], p_role), 0)
$$;

-- Tenants in which the caller is an active member with at least p_min_role.
CREATE FUNCTION app.my_tenant_ids(p_min_role text DEFAULT 'member') RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT coalesce(array_agg(m.tenant_id), '{}')
  FROM public.tenant_memberships m
  WHERE m.user_id = auth.uid()
    AND m.status = 'active'
    AND app.role_rank(m.role) >= app.role_rank(p_min_role)
$$;

CREATE FUNCTION app.has_tenant_role(p_tenant_id uuid, p_min_role text DEFAULT 'member') RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM public.tenant_memberships m
    WHERE m.tenant_id = p_tenant_id
      AND m.user_id = auth.uid()
      AND m.status = 'active'
      AND app.role_rank(m.role) >= app.role_rank(p_min_role)
  )
$$;

-- True when the caller came through the API as anon or authenticated (PostgREST's SET ROLE),
-- false for service_role and for direct database logins (upload services, workers, operators).
CREATE FUNCTION app.caller_is_api() RETURNS boolean
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT coalesce(current_setting('role', true), 'none') IN ('anon', 'authenticated')
$$;

GRANT EXECUTE ON FUNCTION app.role_rank(text), app.my_tenant_ids(text), app.has_tenant_role(uuid, text),
  app.caller_is_api() TO anon, authenticated, service_role;

-- The plan's helper, fixed (defects 9-11): the tenant comes from the session setting
-- app.current_tenant_id or from the JWT (app_metadata.tenant_id or tenant_id), membership is always
-- checked, an empty setting counts as unset, and unset returns NULL instead of failing.
CREATE FUNCTION public.get_current_tenant_id() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_raw text;
  v_tenant_id uuid;
BEGIN
  v_raw := coalesce(
    nullif(current_setting('app.current_tenant_id', true), ''),
    nullif(auth.jwt() -> 'app_metadata' ->> 'tenant_id', ''),
    nullif(auth.jwt() ->> 'tenant_id', '')
  );
  IF v_raw IS NULL THEN
    RETURN NULL;
  END IF;
  BEGIN
    v_tenant_id := v_raw::uuid;
  EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'current tenant % is not a uuid', quote_literal(v_raw) USING ERRCODE = '22P02';
  END;
  IF NOT app.caller_is_api() THEN
    RETURN v_tenant_id;
  END IF;
  IF NOT EXISTS (
    SELECT 1 FROM public.tenant_memberships m
    WHERE m.tenant_id = v_tenant_id AND m.user_id = auth.uid() AND m.status = 'active'
  ) THEN
    RAISE EXCEPTION 'Access denied to tenant %', v_tenant_id USING ERRCODE = '42501';
  END IF;
  RETURN v_tenant_id;
END;
$$;

-- Create a tenant and make the caller its owner, in one call (a bare INSERT could not add the
-- first owner under RLS).
CREATE FUNCTION public.create_tenant(p_name text, p_slug text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_uid uuid := auth.uid();
  v_id uuid;
BEGIN
  IF v_uid IS NULL THEN
    RAISE EXCEPTION 'create_tenant needs a signed-in user' USING ERRCODE = '42501';
  END IF;
  INSERT INTO public.tenants (name, slug) VALUES (p_name, p_slug) RETURNING id INTO v_id;
  INSERT INTO public.tenant_memberships (tenant_id, user_id, role, joined_at)
  VALUES (v_id, v_uid, 'owner', now());
  RETURN v_id;
END;
$$;

-- Profiles are created with the user (defect 17). The trigger needs the TRIGGER privilege on
-- auth.users: a plain PostgreSQL (where we created auth.users) and Supabase's postgres role have it;
-- where it is missing the self-insert policy below lets the user create their own profile.
CREATE FUNCTION app_private.handle_new_user() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO public.user_profiles (id, full_name, avatar_url)
  VALUES (NEW.id, NEW.raw_user_meta_data ->> 'full_name', NEW.raw_user_meta_data ->> 'avatar_url')
  ON CONFLICT (id) DO NOTHING;
  RETURN NEW;
END;
$$;
DO $$
BEGIN
  IF has_table_privilege('auth.users', 'TRIGGER') THEN
    CREATE TRIGGER contentforge_create_profile AFTER INSERT ON auth.users
      FOR EACH ROW EXECUTE FUNCTION app_private.handle_new_user();
  ELSE
    RAISE NOTICE 'no TRIGGER privilege on auth.users: profiles are created by their users (INSERT policy)';
  END IF;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Row-level security (defect 17: every table gets policies, not RLS alone).
ALTER TABLE public.user_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tenant_memberships ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.user_profiles, public.tenants, public.tenant_memberships FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE ON public.user_profiles TO authenticated;
GRANT SELECT, UPDATE, DELETE ON public.tenants TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.tenant_memberships TO authenticated;
GRANT ALL ON public.user_profiles, public.tenants, public.tenant_memberships TO service_role;

CREATE POLICY user_profiles_select_own ON public.user_profiles FOR SELECT TO authenticated
  USING (id = (SELECT auth.uid()));
CREATE POLICY user_profiles_insert_own ON public.user_profiles FOR INSERT TO authenticated
  WITH CHECK (id = (SELECT auth.uid()));
CREATE POLICY user_profiles_update_own ON public.user_profiles FOR UPDATE TO authenticated
  USING (id = (SELECT auth.uid())) WITH CHECK (id = (SELECT auth.uid()));

CREATE POLICY tenants_select_member ON public.tenants FOR SELECT TO authenticated
  USING (id = ANY ((SELECT app.my_tenant_ids())::uuid[]));
CREATE POLICY tenants_update_admin ON public.tenants FOR UPDATE TO authenticated
  USING (id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[]))
  WITH CHECK (id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[]));
CREATE POLICY tenants_delete_owner ON public.tenants FOR DELETE TO authenticated
  USING (id = ANY ((SELECT app.my_tenant_ids('owner'))::uuid[]));

-- Members see their own memberships; admins see and manage their tenant's. Only owners grant or
-- hold the owner role.
CREATE POLICY memberships_select ON public.tenant_memberships FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()) OR tenant_id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[]));
CREATE POLICY memberships_insert_admin ON public.tenant_memberships FOR INSERT TO authenticated
  WITH CHECK (
    tenant_id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[])
    AND (role <> 'owner' OR tenant_id = ANY ((SELECT app.my_tenant_ids('owner'))::uuid[]))
  );
CREATE POLICY memberships_update_admin ON public.tenant_memberships FOR UPDATE TO authenticated
  USING (tenant_id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[])
         AND (role <> 'owner' OR tenant_id = ANY ((SELECT app.my_tenant_ids('owner'))::uuid[])))
  WITH CHECK (tenant_id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[])
              AND (role <> 'owner' OR tenant_id = ANY ((SELECT app.my_tenant_ids('owner'))::uuid[])));
CREATE POLICY memberships_delete ON public.tenant_memberships FOR DELETE TO authenticated
  USING (user_id = (SELECT auth.uid())
         OR (tenant_id = ANY ((SELECT app.my_tenant_ids('admin'))::uuid[])
             AND (role <> 'owner' OR tenant_id = ANY ((SELECT app.my_tenant_ids('owner'))::uuid[]))));

REVOKE ALL ON FUNCTION public.get_current_tenant_id(), public.create_tenant(text, text) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.get_current_tenant_id() TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION public.create_tenant(text, text) TO authenticated, service_role;
REVOKE ALL ON FUNCTION app_private.handle_new_user() FROM PUBLIC, anon, authenticated;
