-- Migration: Add subdomain to tenants
-- Date: 2025-11-06 (Phase 6)
-- Author: Backend team (multi-tenancy)
--
-- What: adds tenants.subdomain, the DNS label each hospital is served from
-- (for example st-marys.hospital.example), with a format check and a partial unique index.
--
-- Why: the front end resolves the tenant from the Host header; a lookup by subdomain must be
-- fast and unambiguous. Archived hospitals release their subdomain, so uniqueness only applies
-- to tenants that are not archived (hence a partial unique index rather than UNIQUE).
--
-- The column stays nullable: existing hospitals get a subdomain during onboarding; until then
-- they are reached through the default host.
--
-- Rollback: the Down Migration drops the index, the check constraint and the column; every
-- tenant loses its subdomain, so export tenants(id, subdomain) first if it must be restored.

-- Up Migration

ALTER TABLE tenants
  ADD COLUMN IF NOT EXISTS subdomain varchar(63);

-- A DNS label: lowercase letters, digits and inner hyphens; 3 to 63 characters.
-- ADD CONSTRAINT has no IF NOT EXISTS; check the catalog so a re-run is harmless.
DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1
    FROM pg_constraint
    WHERE conname = 'tenants_subdomain_format_check'
      AND conrelid = 'tenants'::regclass
  ) THEN
    ALTER TABLE tenants
      ADD CONSTRAINT tenants_subdomain_format_check
      CHECK (
        subdomain ~ '^[a-z0-9]([a-z0-9-]{1,61})[a-z0-9]$'
        AND subdomain NOT IN ('www', 'api', 'app', 'admin', 'mail', 'static', 'status')
      );
  END IF;
END
$$;

-- Unique among live tenants only; an archived hospital's subdomain can be reused.
CREATE UNIQUE INDEX IF NOT EXISTS idx_tenants_subdomain
  ON tenants (subdomain)
  WHERE status <> 'archived';

COMMENT ON COLUMN tenants.subdomain IS
  'DNS label the hospital is served from; unique among tenants that are not archived. NULL: not assigned yet.';

-- Down Migration

DROP INDEX IF EXISTS idx_tenants_subdomain;

ALTER TABLE tenants
  DROP CONSTRAINT IF EXISTS tenants_subdomain_format_check;

ALTER TABLE tenants
  DROP COLUMN IF EXISTS subdomain;
