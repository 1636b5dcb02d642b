-- Migration: Create medical records schema
-- Date: 2025-11-08 (Core)
-- Author: Clinical data team
--
-- What:
--   encounter_class   enum of encounter settings (outpatient, inpatient, emergency, ...);
--   patients          one row per person registered at a hospital (medical record number);
--   encounters        visits and admissions of a patient;
--   diagnoses         ICD-10 coded diagnoses made during an encounter;
--   allergies         known allergies and intolerances of a patient;
--   vital_signs       measurements taken during an encounter;
--   encounters_set_ended_at()  trigger function that stamps ended_at when a visit is finished.
--
-- Why: the core clinical record. Every table is tenant-owned (tenant_id NOT NULL,
-- ON DELETE CASCADE, indexed) and every cross-table reference includes tenant_id, so a row can
-- never point at another hospital's patient, encounter or clinician.
--
-- PostgreSQL 15+: clinician references use ON DELETE SET NULL (column) so that deleting a user
-- clears only the clinician column of a composite (tenant_id, user) foreign key, never tenant_id.
--
-- Relies on tenants and users (with the users (tenant_id, id) key from
-- 1762003868921_update-users-and-add-roles-tables) and on set_updated_at().
--
-- Rollback: the Down Migration drops all five tables, the function and the enum type. This
-- deletes clinical data; take a pg_dump backup first and never run it on production without sign-off.

-- Up Migration

-- CREATE TYPE has no IF NOT EXISTS; swallow only "already exists".
DO $$
BEGIN
  CREATE TYPE encounter_class AS ENUM (
    'outpatient',
    'inpatient',
    'emergency',
    'telehealth',
    'home_visit'
  );
EXCEPTION
  WHEN duplicate_object THEN
    RAISE NOTICE 'type encounter_class already exists; skipping';
END
$$;

COMMENT ON TYPE encounter_class IS 'Setting in which an encounter takes place.';

CREATE TABLE IF NOT EXISTS patients (
  id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id               uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  medical_record_number   varchar(32) NOT NULL,
  first_name              varchar(100) NOT NULL,
  last_name               varchar(100) NOT NULL,
  date_of_birth           date NOT NULL,
  sex                     varchar(16) NOT NULL DEFAULT 'unknown',
  blood_type              varchar(3),
  phone                   varchar(32),
  email                   varchar(254),
  address_line1           varchar(200),
  address_line2           varchar(200),
  city                    varchar(100),
  postal_code             varchar(20),
  country_code            char(2),
  emergency_contact_name  varchar(200),
  emergency_contact_phone varchar(32),
  deceased_at             timestamptz,
  deleted_at              timestamptz,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now(),
  -- The MRN is issued by each hospital; two hospitals may use the same number.
  CONSTRAINT patients_tenant_mrn_key UNIQUE (tenant_id, medical_record_number),
  -- Target of the composite (tenant_id, patient_id) foreign keys below and in lab tests.
  CONSTRAINT patients_tenant_id_id_key UNIQUE (tenant_id, id),
  CONSTRAINT patients_sex_check CHECK (sex IN ('female', 'male', 'other', 'unknown')),
  CONSTRAINT patients_blood_type_check CHECK (
    blood_type IS NULL OR blood_type IN ('A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-')
  ),
  CONSTRAINT patients_date_of_birth_check CHECK (date_of_birth >= DATE '1880-01-01'),
  CONSTRAINT patients_country_code_check CHECK (country_code IS NULL OR country_code ~ '^[A-Z]{2}$'),
  CONSTRAINT patients_mrn_check CHECK (btrim(medical_record_number) <> '')
);

COMMENT ON TABLE patients IS
  'People registered at a hospital; one row per person per tenant. Soft-deleted rows keep deleted_at.';
COMMENT ON COLUMN patients.medical_record_number IS 'Hospital-issued MRN; unique within the tenant.';
COMMENT ON COLUMN patients.deleted_at IS
  'Soft delete (registration error, merged duplicate); clinical data is retained, never hard-deleted by the app.';

-- Patient search by name among live records (partial index; soft-deleted rows are skipped).
CREATE INDEX IF NOT EXISTS idx_patients_tenant_name
  ON patients (tenant_id, lower(last_name), lower(first_name))
  WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS encounters (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  patient_id        uuid NOT NULL,
  encounter_class   encounter_class NOT NULL,
  status            varchar(16) NOT NULL DEFAULT 'planned',
  attending_user_id uuid,
  department        varchar(100),
  started_at        timestamptz NOT NULL DEFAULT now(),
  ended_at          timestamptz,
  chief_complaint   text,
  notes             text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT encounters_tenant_id_id_key UNIQUE (tenant_id, id),
  CONSTRAINT encounters_patient_fkey FOREIGN KEY (tenant_id, patient_id)
    REFERENCES patients (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT encounters_attending_user_fkey FOREIGN KEY (tenant_id, attending_user_id)
    REFERENCES users (tenant_id, id) ON DELETE SET NULL (attending_user_id),
  CONSTRAINT encounters_status_check CHECK (
    status IN ('planned', 'in_progress', 'finished', 'cancelled')
  ),
  CONSTRAINT encounters_period_check CHECK (ended_at IS NULL OR ended_at >= started_at),
  CONSTRAINT encounters_finished_check CHECK (status <> 'finished' OR ended_at IS NOT NULL)
);

COMMENT ON TABLE encounters IS 'Visits and admissions; an encounter belongs to one patient of the same tenant.';

-- A patient's timeline; also serves tenant_id lookups and the cascade from patients.
CREATE INDEX IF NOT EXISTS idx_encounters_tenant_patient_started
  ON encounters (tenant_id, patient_id, started_at DESC);

-- Ward boards list open encounters only (partial index).
CREATE INDEX IF NOT EXISTS idx_encounters_open
  ON encounters (tenant_id, started_at)
  WHERE status IN ('planned', 'in_progress');

-- ON DELETE SET NULL from users; also "my patients" for a clinician.
CREATE INDEX IF NOT EXISTS idx_encounters_attending_user
  ON encounters (tenant_id, attending_user_id)
  WHERE attending_user_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS diagnoses (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  encounter_id    uuid NOT NULL,
  icd10_code      varchar(8) NOT NULL,
  description     text NOT NULL,
  diagnosis_type  varchar(16) NOT NULL DEFAULT 'secondary',
  clinical_status varchar(16) NOT NULL DEFAULT 'provisional',
  diagnosed_by    uuid,
  diagnosed_at    timestamptz NOT NULL DEFAULT now(),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT diagnoses_encounter_fkey FOREIGN KEY (tenant_id, encounter_id)
    REFERENCES encounters (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT diagnoses_diagnosed_by_fkey FOREIGN KEY (tenant_id, diagnosed_by)
    REFERENCES users (tenant_id, id) ON DELETE SET NULL (diagnosed_by),
  -- ICD-10: letter, two characters, optional dot and up to four more (e.g. J45.909; E11.65).
  CONSTRAINT diagnoses_icd10_code_check CHECK (icd10_code ~ '^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$'),
  CONSTRAINT diagnoses_type_check CHECK (
    diagnosis_type IN ('primary', 'secondary', 'admitting', 'differential')
  ),
  CONSTRAINT diagnoses_clinical_status_check CHECK (
    clinical_status IN ('provisional', 'confirmed', 'refuted', 'resolved')
  )
);

COMMENT ON TABLE diagnoses IS 'ICD-10 coded diagnoses recorded during an encounter.';
COMMENT ON COLUMN diagnoses.icd10_code IS 'ICD-10 code with the dot, e.g. J45.909; upper case.';

CREATE INDEX IF NOT EXISTS idx_diagnoses_tenant_encounter
  ON diagnoses (tenant_id, encounter_id);

-- Reporting by code within a hospital (e.g. notifiable diseases).
CREATE INDEX IF NOT EXISTS idx_diagnoses_tenant_code
  ON diagnoses (tenant_id, icd10_code);

-- At most one primary diagnosis per encounter, ignoring refuted ones (partial unique index).
CREATE UNIQUE INDEX IF NOT EXISTS idx_diagnoses_one_primary
  ON diagnoses (encounter_id)
  WHERE diagnosis_type = 'primary' AND clinical_status <> 'refuted';

CREATE INDEX IF NOT EXISTS idx_diagnoses_diagnosed_by
  ON diagnoses (tenant_id, diagnosed_by)
  WHERE diagnosed_by IS NOT NULL;

CREATE TABLE IF NOT EXISTS allergies (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  patient_id  uuid NOT NULL,
  allergen    varchar(200) NOT NULL,
  category    varchar(16) NOT NULL,
  reaction    text,
  severity    varchar(16) NOT NULL DEFAULT 'moderate',
  status      varchar(16) NOT NULL DEFAULT 'active',
  recorded_by uuid,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT allergies_patient_fkey FOREIGN KEY (tenant_id, patient_id)
    REFERENCES patients (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT allergies_recorded_by_fkey FOREIGN KEY (tenant_id, recorded_by)
    REFERENCES users (tenant_id, id) ON DELETE SET NULL (recorded_by),
  CONSTRAINT allergies_category_check CHECK (
    category IN ('medication', 'food', 'environment', 'other')
  ),
  CONSTRAINT allergies_severity_check CHECK (
    severity IN ('mild', 'moderate', 'severe', 'life_threatening')
  ),
  CONSTRAINT allergies_status_check CHECK (status IN ('active', 'inactive', 'resolved')),
  CONSTRAINT allergies_allergen_check CHECK (btrim(allergen) <> '')
);

COMMENT ON TABLE allergies IS 'Allergies and intolerances; shown as alerts when status = ''active''.';

CREATE INDEX IF NOT EXISTS idx_allergies_tenant_patient
  ON allergies (tenant_id, patient_id);

-- No duplicate active entry for the same allergen (partial unique index).
CREATE UNIQUE INDEX IF NOT EXISTS idx_allergies_active_allergen
  ON allergies (tenant_id, patient_id, lower(allergen))
  WHERE status = 'active';

CREATE INDEX IF NOT EXISTS idx_allergies_recorded_by
  ON allergies (tenant_id, recorded_by)
  WHERE recorded_by IS NOT NULL;

CREATE TABLE IF NOT EXISTS vital_signs (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  encounter_id         uuid NOT NULL,
  measured_at          timestamptz NOT NULL DEFAULT now(),
  temperature_c        numeric(4, 1),
  heart_rate_bpm       smallint,
  respiratory_rate_bpm smallint,
  systolic_mmhg        smallint,
  diastolic_mmhg       smallint,
  spo2_percent         smallint,
  weight_kg            numeric(5, 2),
  height_cm            numeric(4, 1),
  recorded_by          uuid,
  created_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT vital_signs_encounter_fkey FOREIGN KEY (tenant_id, encounter_id)
    REFERENCES encounters (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT vital_signs_recorded_by_fkey FOREIGN KEY (tenant_id, recorded_by)
    REFERENCES users (tenant_id, id) ON DELETE SET NULL (recorded_by),
  -- Physiologically plausible ranges; they catch unit mix-ups (F vs C; lb vs kg).
  CONSTRAINT vital_signs_temperature_check CHECK (temperature_c BETWEEN 25 AND 45),
  CONSTRAINT vital_signs_heart_rate_check CHECK (heart_rate_bpm BETWEEN 20 AND 300),
  CONSTRAINT vital_signs_respiratory_rate_check CHECK (respiratory_rate_bpm BETWEEN 4 AND 80),
  CONSTRAINT vital_signs_blood_pressure_check CHECK (
    (systolic_mmhg IS NULL) = (diastolic_mmhg IS NULL)
    AND systolic_mmhg BETWEEN 40 AND 300
    AND diastolic_mmhg BETWEEN 20 AND 200
    AND systolic_mmhg > diastolic_mmhg
  ),
  CONSTRAINT vital_signs_spo2_check CHECK (spo2_percent BETWEEN 50 AND 100),
  CONSTRAINT vital_signs_weight_check CHECK (weight_kg > 0 AND weight_kg <= 500),
  CONSTRAINT vital_signs_height_check CHECK (height_cm BETWEEN 20 AND 280),
  CONSTRAINT vital_signs_not_empty_check CHECK (
    num_nonnulls(temperature_c, heart_rate_bpm, respiratory_rate_bpm, systolic_mmhg,
                 spo2_percent, weight_kg, height_cm) > 0
  )
);

COMMENT ON TABLE vital_signs IS 'Vital sign measurements taken during an encounter; metric units.';

CREATE INDEX IF NOT EXISTS idx_vital_signs_tenant_encounter_measured
  ON vital_signs (tenant_id, encounter_id, measured_at DESC);

CREATE INDEX IF NOT EXISTS idx_vital_signs_recorded_by
  ON vital_signs (tenant_id, recorded_by)
  WHERE recorded_by IS NOT NULL;

-- Stamp ended_at when an encounter is finished without one; clear it if it is reopened.
CREATE OR REPLACE FUNCTION encounters_set_ended_at()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
  IF NEW.status = 'finished' AND NEW.ended_at IS NULL THEN
    NEW.ended_at := greatest(now(), NEW.started_at);
  ELSIF NEW.status IN ('planned', 'in_progress') THEN
    NEW.ended_at := NULL;  -- reopened; the visit is not over
  END IF;
  RETURN NEW;
END;
$fn$;

COMMENT ON FUNCTION encounters_set_ended_at() IS
  'BEFORE INSERT OR UPDATE OF status trigger on encounters; keeps ended_at consistent with status.';

CREATE OR REPLACE TRIGGER encounters_set_ended_at
  BEFORE INSERT OR UPDATE OF status ON encounters
  FOR EACH ROW
  EXECUTE FUNCTION encounters_set_ended_at();

-- The same updated_at trigger on every table that has the column.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['patients', 'encounters', 'diagnoses', 'allergies'] LOOP
    EXECUTE format(
      'CREATE OR REPLACE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION set_updated_at()',
      t || '_set_updated_at',
      t
    );
  END LOOP;
END
$$;

-- Down Migration

-- Children first; dropping a table drops its indexes and triggers.
DROP TABLE IF EXISTS vital_signs;
DROP TABLE IF EXISTS allergies;
DROP TABLE IF EXISTS diagnoses;
DROP TABLE IF EXISTS encounters;
DROP TABLE IF EXISTS patients;
DROP FUNCTION IF EXISTS encounters_set_ended_at();
DROP TYPE IF EXISTS encounter_class;
