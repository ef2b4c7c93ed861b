-- Supabase stand-in, storage part (this repository's addition; roles.sql and standin.sql are the team's
-- shared copies). Run as a superuser on a database prepared with standin.sql, before our migrations.
-- Mirrors the `storage` schema that Supabase's storage service (supabase/storage, migrations/tenant)
-- creates: buckets and objects with the service's columns (0002 storage-schema, pathtoken-column,
-- add-public-to-buckets, avif-autodetection, bucket-custom-limits, add-version, alter-owner-data-type,
-- custom-metadata), the (bucket_id, name) uniqueness of a single-version bucket, owned by
-- supabase_storage_admin; and Supabase's grant of everything in it to the project's `postgres` role
-- (here supabase_admin_standin), which is what lets a project's migrations put triggers on
-- storage.objects. The bytes live elsewhere (S3; moto's server in the tests).

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'supabase_storage_admin') THEN
    CREATE ROLE supabase_storage_admin NOINHERIT CREATEROLE LOGIN NOREPLICATION;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;  -- another test run created it at the same moment
END $$;

CREATE SCHEMA storage AUTHORIZATION supabase_storage_admin;
GRANT USAGE ON SCHEMA storage TO anon, authenticated, service_role, supabase_admin_standin;

CREATE TABLE storage.buckets (
  id text NOT NULL PRIMARY KEY,
  name text NOT NULL,
  owner uuid,
  owner_id text,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now(),
  public boolean DEFAULT false,
  avif_autodetection boolean DEFAULT false,
  file_size_limit bigint,
  allowed_mime_types text[]
);
CREATE UNIQUE INDEX bname ON storage.buckets USING btree (name);

CREATE TABLE storage.objects (
  id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  bucket_id text REFERENCES storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now(),
  last_accessed_at timestamptz DEFAULT now(),
  -- Set by the service after the upload: eTag, size, mimetype, cacheControl, lastModified, contentLength, httpStatusCode.
  metadata jsonb,
  path_tokens text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED,
  -- The version of the bytes in the backend: a new upload to the same name gets a new version.
  version text,
  user_metadata jsonb
);
CREATE UNIQUE INDEX bucketid_objname ON storage.objects USING btree (bucket_id, name);
CREATE INDEX name_prefix_search ON storage.objects (name text_pattern_ops);
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;

ALTER TABLE storage.buckets OWNER TO supabase_storage_admin;
ALTER TABLE storage.objects OWNER TO supabase_storage_admin;
GRANT ALL ON ALL TABLES IN SCHEMA storage TO supabase_storage_admin, supabase_admin_standin, service_role;
GRANT ALL ON storage.objects, storage.buckets TO anon, authenticated;
