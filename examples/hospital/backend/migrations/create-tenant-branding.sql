-- Migration: Create tenant branding tables
-- Date: 2025-11-07 (Phase 7)
-- Author: Backend team (multi-tenancy)
--
-- What:
--   tenant_branding         one row per hospital: display name, colours, login message,
--                           e-mail footer and optional custom CSS;
--   tenant_branding_assets  uploaded files (logos, favicon, report header), with history;
--                           exactly one current file per hospital and kind.
--   tenant_branding_normalize()  trigger function that tidies input before the CHECKs run.
--
-- Why: each hospital shows its own identity on the login page, in the app and on printed
-- reports. Colours are validated in the database because they are injected into CSS.
--
-- Tenancy: both tables are tenant-owned (tenant_id NOT NULL, ON DELETE CASCADE, indexed).
-- Relies on set_updated_at() from 1678886400000_initial-migration.
--
-- Rollback: the Down Migration drops both tables and the function; branding falls back to the
-- platform defaults. Uploaded files stay in object storage (only their rows are dropped).

-- Up Migration

CREATE TABLE IF NOT EXISTS tenant_branding (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  display_name    varchar(200),
  primary_color   varchar(7) NOT NULL DEFAULT '#0b5fff',
  secondary_color varchar(7) NOT NULL DEFAULT '#1f2937',
  accent_color    varchar(7),
  font_family     varchar(100),
  login_message   text,
  email_footer    text,
  custom_css      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  -- One branding row per hospital; the unique index also serves tenant_id lookups.
  CONSTRAINT tenant_branding_tenant_id_key UNIQUE (tenant_id),
  CONSTRAINT tenant_branding_colors_check CHECK (
    primary_color ~ '^#[0-9a-f]{6}$'
    AND secondary_color ~ '^#[0-9a-f]{6}$'
    AND (accent_color IS NULL OR accent_color ~ '^#[0-9a-f]{6}$')
  ),
  -- Custom CSS is size-capped; it is sanitised by the application before it is stored.
  CONSTRAINT tenant_branding_custom_css_check CHECK (
    custom_css IS NULL OR octet_length(custom_css) <= 65536
  )
);

COMMENT ON TABLE tenant_branding IS
  'Look and feel of one hospital; one row per tenant. Missing row: platform defaults apply.';
COMMENT ON COLUMN tenant_branding.primary_color IS
  'Lowercase #rrggbb; input such as #0B5FFF is lowercased by tenant_branding_normalize().';

CREATE TABLE IF NOT EXISTS tenant_branding_assets (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  kind         varchar(32) NOT NULL,
  storage_key  text NOT NULL,
  content_type varchar(64) NOT NULL,
  byte_size    integer NOT NULL,
  sha256       bytea NOT NULL,
  is_current   boolean NOT NULL DEFAULT true,
  uploaded_by  uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT tenant_branding_assets_kind_check CHECK (
    kind IN ('logo', 'logo_dark', 'favicon', 'login_background', 'report_header')
  ),
  CONSTRAINT tenant_branding_assets_content_type_check CHECK (
    content_type IN ('image/png', 'image/jpeg', 'image/svg+xml', 'image/webp', 'image/x-icon')
  ),
  -- 5 MiB at most; larger files are rejected by the upload endpoint too.
  CONSTRAINT tenant_branding_assets_byte_size_check CHECK (byte_size > 0 AND byte_size <= 5242880),
  CONSTRAINT tenant_branding_assets_sha256_check CHECK (octet_length(sha256) = 32),
  CONSTRAINT tenant_branding_assets_storage_key_key UNIQUE (storage_key)
);

COMMENT ON TABLE tenant_branding_assets IS
  'Uploaded branding files per hospital; older versions are kept with is_current = false.';

-- Tenant lookups and the asset history of one kind, newest first.
CREATE INDEX IF NOT EXISTS idx_tenant_branding_assets_tenant_kind
  ON tenant_branding_assets (tenant_id, kind, created_at DESC);

-- Exactly one current file per hospital and kind (partial unique index).
CREATE UNIQUE INDEX IF NOT EXISTS idx_tenant_branding_assets_current
  ON tenant_branding_assets (tenant_id, kind)
  WHERE is_current;

-- ON DELETE SET NULL from users.
CREATE INDEX IF NOT EXISTS idx_tenant_branding_assets_uploaded_by
  ON tenant_branding_assets (uploaded_by)
  WHERE uploaded_by IS NOT NULL;

/*
 * Normalise branding input before the CHECK constraints see it:
 * colours are lowercased; blank optional texts become NULL; display names are trimmed.
 */
CREATE OR REPLACE FUNCTION tenant_branding_normalize()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  NEW.primary_color   := lower(btrim(NEW.primary_color));
  NEW.secondary_color := lower(btrim(NEW.secondary_color));
  NEW.accent_color    := lower(nullif(btrim(NEW.accent_color), ''));
  NEW.display_name    := nullif(btrim(NEW.display_name), '');
  NEW.font_family     := nullif(btrim(NEW.font_family), '');
  -- Empty strings are not "no value"; store NULL so the defaults apply.
  NEW.login_message   := nullif(btrim(NEW.login_message), '');
  NEW.email_footer    := nullif(btrim(NEW.email_footer), '');
  RETURN NEW;
END;
$$;

COMMENT ON FUNCTION tenant_branding_normalize() IS
  'BEFORE INSERT OR UPDATE trigger on tenant_branding: lowercases colours; blank texts become NULL.';

CREATE OR REPLACE TRIGGER tenant_branding_normalize
  BEFORE INSERT OR UPDATE ON tenant_branding
  FOR EACH ROW
  EXECUTE FUNCTION tenant_branding_normalize();

CREATE OR REPLACE TRIGGER tenant_branding_set_updated_at
  BEFORE UPDATE ON tenant_branding
  FOR EACH ROW
  EXECUTE FUNCTION set_updated_at();

-- Down Migration

DROP TABLE IF EXISTS tenant_branding_assets;
DROP TABLE IF EXISTS tenant_branding;
DROP FUNCTION IF EXISTS tenant_branding_normalize();
