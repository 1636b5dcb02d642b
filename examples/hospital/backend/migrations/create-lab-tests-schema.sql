-- Migration: Create lab tests schema
-- Date: 2025-11-08 (Core)
-- Author: Laboratory integration team
--
-- What:
--   lab_test_catalog   the tests a hospital's laboratory offers (code, LOINC, specimen,
--                      unit, reference and critical ranges);
--   lab_orders         a clinician's request for tests for one patient (optionally within an
--                      encounter), with priority and workflow status;
--   lab_order_items    one row per test on an order;
--   lab_results        the result of one order item, with the reference range in force when it
--                      was reported and an abnormal flag;
--   lab_results_apply_reference_range()  trigger function that snapshots the range and sets
--                      the abnormal flag.
--
-- Why: lab orders and results are the second core clinical workflow after the medical record.
-- Every table is tenant-owned (tenant_id NOT NULL, ON DELETE CASCADE, indexed); references
-- between them, and to patients, encounters and users, include tenant_id.
--
-- Depends on create-medical-records-schema (patients, encounters): its name sorts after this
-- file, so hmig.yml `order:` runs this one last.
--
-- Rollback: the Down Migration drops the four tables and the function, deleting every order and
-- result; back up first (pg_dump -t 'lab_*') and never run it on production without sign-off.

-- Up Migration

CREATE TABLE IF NOT EXISTS lab_test_catalog (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  code             varchar(32) NOT NULL,
  name             varchar(200) NOT NULL,
  loinc_code       varchar(10),
  specimen_type    varchar(16) NOT NULL,
  result_type      varchar(16) NOT NULL DEFAULT 'numeric',
  unit             varchar(32),
  reference_low    numeric,
  reference_high   numeric,
  critical_low     numeric,
  critical_high    numeric,
  turnaround_hours integer NOT NULL DEFAULT 24,
  price            numeric(10, 2),
  is_active        boolean NOT NULL DEFAULT true,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  -- Also serves tenant_id lookups.
  CONSTRAINT lab_test_catalog_tenant_code_key UNIQUE (tenant_id, code),
  CONSTRAINT lab_test_catalog_tenant_id_id_key UNIQUE (tenant_id, id),
  CONSTRAINT lab_test_catalog_loinc_code_check CHECK (loinc_code ~ '^[0-9]{1,7}-[0-9]$'),
  CONSTRAINT lab_test_catalog_specimen_type_check CHECK (
    specimen_type IN ('blood', 'serum', 'plasma', 'urine', 'stool', 'csf', 'swab', 'tissue', 'other')
  ),
  CONSTRAINT lab_test_catalog_result_type_check CHECK (result_type IN ('numeric', 'text', 'coded')),
  -- Ranges only make sense for numeric tests; low <= high when both are given.
  CONSTRAINT lab_test_catalog_ranges_check CHECK (
    (result_type = 'numeric' OR num_nulls(reference_low, reference_high, critical_low, critical_high) = 4)
    AND (reference_low IS NULL OR reference_high IS NULL OR reference_low <= reference_high)
    AND (critical_low IS NULL OR reference_low IS NULL OR critical_low <= reference_low)
    AND (critical_high IS NULL OR reference_high IS NULL OR critical_high >= reference_high)
  ),
  CONSTRAINT lab_test_catalog_turnaround_check CHECK (turnaround_hours > 0),
  CONSTRAINT lab_test_catalog_price_check CHECK (price >= 0)
);

COMMENT ON TABLE lab_test_catalog IS
  'Tests offered by a hospital laboratory; retire a test with is_active = false, do not delete it.';
COMMENT ON COLUMN lab_test_catalog.loinc_code IS 'LOINC code such as 2345-7 (glucose); optional.';

-- Order entry searches active tests by name (partial index).
CREATE INDEX IF NOT EXISTS idx_lab_test_catalog_active_name
  ON lab_test_catalog (tenant_id, lower(name))
  WHERE is_active;

CREATE TABLE IF NOT EXISTS lab_orders (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  patient_id     uuid NOT NULL,
  encounter_id   uuid,
  ordered_by     uuid,
  priority       varchar(8) NOT NULL DEFAULT 'routine',
  status         varchar(16) NOT NULL DEFAULT 'ordered',
  clinical_notes text,
  ordered_at     timestamptz NOT NULL DEFAULT now(),
  collected_at   timestamptz,
  completed_at   timestamptz,
  cancelled_at   timestamptz,
  cancel_reason  text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT lab_orders_tenant_id_id_key UNIQUE (tenant_id, id),
  CONSTRAINT lab_orders_patient_fkey FOREIGN KEY (tenant_id, patient_id)
    REFERENCES patients (tenant_id, id) ON DELETE CASCADE,
  -- PostgreSQL 15+: on delete, clear encounter_id only, never tenant_id.
  CONSTRAINT lab_orders_encounter_fkey FOREIGN KEY (tenant_id, encounter_id)
    REFERENCES encounters (tenant_id, id) ON DELETE SET NULL (encounter_id),
  CONSTRAINT lab_orders_ordered_by_fkey FOREIGN KEY (tenant_id, ordered_by)
    REFERENCES users (tenant_id, id) ON DELETE SET NULL (ordered_by),
  CONSTRAINT lab_orders_priority_check CHECK (priority IN ('routine', 'urgent', 'stat')),
  CONSTRAINT lab_orders_status_check CHECK (
    status IN ('ordered', 'collected', 'in_progress', 'completed', 'cancelled')
  ),
  CONSTRAINT lab_orders_timeline_check CHECK (
    (collected_at IS NULL OR collected_at >= ordered_at)
    AND (completed_at IS NULL OR completed_at >= coalesce(collected_at, ordered_at))
  ),
  CONSTRAINT lab_orders_completed_check CHECK (status <> 'completed' OR completed_at IS NOT NULL),
  CONSTRAINT lab_orders_cancelled_check CHECK (
    (status = 'cancelled') = (cancelled_at IS NOT NULL)
    AND (status <> 'cancelled' OR cancel_reason IS NOT NULL)
  )
);

COMMENT ON TABLE lab_orders IS 'Requests for laboratory tests; one order may hold several tests (lab_order_items).';
COMMENT ON COLUMN lab_orders.priority IS 'routine; urgent; stat (immediately, results phoned through).';

-- A patient's orders, newest first; also tenant_id lookups and the cascade from patients.
CREATE INDEX IF NOT EXISTS idx_lab_orders_tenant_patient_ordered
  ON lab_orders (tenant_id, patient_id, ordered_at DESC);

-- The laboratory worklist: open orders only (partial index).
CREATE INDEX IF NOT EXISTS idx_lab_orders_worklist
  ON lab_orders (tenant_id, priority, ordered_at)
  WHERE status IN ('ordered', 'collected', 'in_progress');

CREATE INDEX IF NOT EXISTS idx_lab_orders_encounter
  ON lab_orders (tenant_id, encounter_id)
  WHERE encounter_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_lab_orders_ordered_by
  ON lab_orders (tenant_id, ordered_by)
  WHERE ordered_by IS NOT NULL;

CREATE TABLE IF NOT EXISTS lab_order_items (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  lab_order_id uuid NOT NULL,
  lab_test_id  uuid NOT NULL,
  status       varchar(16) NOT NULL DEFAULT 'pending',
  created_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT lab_order_items_tenant_id_id_key UNIQUE (tenant_id, id),
  CONSTRAINT lab_order_items_order_test_key UNIQUE (lab_order_id, lab_test_id),
  CONSTRAINT lab_order_items_order_fkey FOREIGN KEY (tenant_id, lab_order_id)
    REFERENCES lab_orders (tenant_id, id) ON DELETE CASCADE,
  -- NO ACTION, not RESTRICT: a catalogue entry that was ever ordered cannot be deleted on its
  -- own, but deleting the whole tenant still cascades (NO ACTION is checked at statement end).
  CONSTRAINT lab_order_items_test_fkey FOREIGN KEY (tenant_id, lab_test_id)
    REFERENCES lab_test_catalog (tenant_id, id) ON DELETE NO ACTION,
  CONSTRAINT lab_order_items_status_check CHECK (status IN ('pending', 'resulted', 'cancelled'))
);

COMMENT ON TABLE lab_order_items IS 'One test on a lab order; a test appears at most once per order.';

-- Tenant lookups and "who ordered test X"; also checks deletes from lab_test_catalog.
CREATE INDEX IF NOT EXISTS idx_lab_order_items_tenant_test
  ON lab_order_items (tenant_id, lab_test_id);

CREATE TABLE IF NOT EXISTS lab_results (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  lab_order_item_id uuid NOT NULL,
  status            varchar(16) NOT NULL DEFAULT 'preliminary',
  value_numeric     numeric,
  value_text        text,
  unit              varchar(32),
  reference_low     numeric,
  reference_high    numeric,
  abnormal_flag     varchar(2),
  resulted_by       uuid,
  resulted_at       timestamptz NOT NULL DEFAULT now(),
  verified_by       uuid,
  verified_at       timestamptz,
  comment           text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  -- One result per order item; corrections update it (status = 'corrected').
  CONSTRAINT lab_results_order_item_key UNIQUE (lab_order_item_id),
  CONSTRAINT lab_results_order_item_fkey FOREIGN KEY (tenant_id, lab_order_item_id)
    REFERENCES lab_order_items (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT lab_results_resulted_by_fkey FOREIGN KEY (tenant_id, resulted_by)
    REFERENCES users (tenant_id, id) ON DELETE SET NULL (resulted_by),
  CONSTRAINT lab_results_verified_by_fkey FOREIGN KEY (tenant_id, verified_by)
    REFERENCES users (tenant_id, id) ON DELETE SET NULL (verified_by),
  CONSTRAINT lab_results_status_check CHECK (status IN ('preliminary', 'final', 'corrected')),
  CONSTRAINT lab_results_value_check CHECK (num_nonnulls(value_numeric, value_text) > 0),
  -- N normal; L/H below/above the reference range; LL/HH critical; A abnormal (non-numeric).
  CONSTRAINT lab_results_abnormal_flag_check CHECK (abnormal_flag IN ('N', 'L', 'H', 'LL', 'HH', 'A')),
  -- verified_by may become NULL later (the user was deleted); verified_at stays.
  CONSTRAINT lab_results_verification_check CHECK (
    (verified_by IS NULL OR verified_at IS NOT NULL)
    AND (verified_at IS NULL OR verified_at >= resulted_at)
  ),
  CONSTRAINT lab_results_final_verified_check CHECK (status = 'preliminary' OR verified_at IS NOT NULL)
);

COMMENT ON TABLE lab_results IS
  'Result of one lab order item; reference_low/high are a snapshot of the catalogue at reporting time.';
COMMENT ON COLUMN lab_results.abnormal_flag IS
  'N normal; L low; H high; LL critically low; HH critically high; A abnormal. Set by trigger when NULL.';

-- Tenant lookups: recent results first.
CREATE INDEX IF NOT EXISTS idx_lab_results_tenant_resulted
  ON lab_results (tenant_id, resulted_at DESC);

-- Results waiting for a second pair of eyes (partial index).
CREATE INDEX IF NOT EXISTS idx_lab_results_unverified
  ON lab_results (tenant_id, resulted_at)
  WHERE verified_at IS NULL;

CREATE INDEX IF NOT EXISTS idx_lab_results_resulted_by
  ON lab_results (tenant_id, resulted_by)
  WHERE resulted_by IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_lab_results_verified_by
  ON lab_results (tenant_id, verified_by)
  WHERE verified_by IS NOT NULL;

/*
 * Before a result is stored:
 *   1. snapshot the catalogue's unit and reference range (later catalogue edits must not
 *      change historical results; that is a patient-safety requirement);
 *   2. set abnormal_flag from the value when the caller did not set one.
 */
CREATE OR REPLACE FUNCTION lab_results_apply_reference_range()
RETURNS trigger
LANGUAGE plpgsql
AS $body$
DECLARE
  catalog_row lab_test_catalog%ROWTYPE;
BEGIN
  SELECT c.*
    INTO catalog_row
    FROM lab_order_items AS i
    JOIN lab_test_catalog AS c
      ON c.tenant_id = i.tenant_id AND c.id = i.lab_test_id
   WHERE i.tenant_id = NEW.tenant_id
     AND i.id = NEW.lab_order_item_id;

  IF NEW.reference_low IS NULL AND NEW.reference_high IS NULL THEN
    NEW.reference_low  := catalog_row.reference_low;
    NEW.reference_high := catalog_row.reference_high;
  END IF;
  NEW.unit := coalesce(NEW.unit, catalog_row.unit);

  -- A corrected value needs a fresh flag unless the caller set one explicitly.
  IF TG_OP = 'UPDATE'
     AND NEW.value_numeric IS DISTINCT FROM OLD.value_numeric
     AND NEW.abnormal_flag IS NOT DISTINCT FROM OLD.abnormal_flag THEN
    NEW.abnormal_flag := NULL;
  END IF;

  IF NEW.abnormal_flag IS NULL AND NEW.value_numeric IS NOT NULL THEN
    NEW.abnormal_flag := CASE
      WHEN NEW.value_numeric < catalog_row.critical_low  THEN 'LL'
      WHEN NEW.value_numeric > catalog_row.critical_high THEN 'HH'
      WHEN NEW.value_numeric < NEW.reference_low         THEN 'L'
      WHEN NEW.value_numeric > NEW.reference_high        THEN 'H'
      WHEN NEW.reference_low IS NULL AND NEW.reference_high IS NULL THEN NULL
      ELSE 'N'
    END;
  END IF;

  RETURN NEW;
END;
$body$;

COMMENT ON FUNCTION lab_results_apply_reference_range() IS
  'BEFORE INSERT OR UPDATE trigger on lab_results: snapshots unit and range; sets abnormal_flag.';

CREATE OR REPLACE TRIGGER lab_results_apply_reference_range
  BEFORE INSERT OR UPDATE OF value_numeric, abnormal_flag, lab_order_item_id ON lab_results
  FOR EACH ROW
  EXECUTE FUNCTION lab_results_apply_reference_range();

CREATE OR REPLACE TRIGGER lab_test_catalog_set_updated_at
  BEFORE UPDATE ON lab_test_catalog
  FOR EACH ROW
  EXECUTE FUNCTION set_updated_at();

CREATE OR REPLACE TRIGGER lab_orders_set_updated_at
  BEFORE UPDATE ON lab_orders
  FOR EACH ROW
  EXECUTE FUNCTION set_updated_at();

CREATE OR REPLACE TRIGGER lab_results_set_updated_at
  BEFORE UPDATE ON lab_results
  FOR EACH ROW
  EXECUTE FUNCTION set_updated_at();

-- Down Migration

DROP TABLE IF EXISTS lab_results;
DROP TABLE IF EXISTS lab_order_items;
DROP TABLE IF EXISTS lab_orders;
DROP TABLE IF EXISTS lab_test_catalog;
DROP FUNCTION IF EXISTS lab_results_apply_reference_range();
