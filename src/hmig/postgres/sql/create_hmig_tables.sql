-- hmig's own bookkeeping beside the node-pg-migrate history. Versioned through hmig_meta
-- (init_schema_version.sql) so a later release can migrate these tables (README, "hmig's tables").
CREATE TABLE IF NOT EXISTS {schema}.hmig_meta (
  key text PRIMARY KEY,
  value text NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.hmig_history (
  name varchar(255) PRIMARY KEY,
  checksum text,
  kind text,
  adopted boolean NOT NULL DEFAULT false,
  applied_by text,
  commit_sha text,
  run_id text,
  duration_ms double precision,
  hmig_version text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE {schema}.hmig_history IS
  'hmig: checksum and provenance of each applied migration; adopted = written by another tool, checksum taken when hmig first saw it (unverified)';
CREATE TABLE IF NOT EXISTS {schema}.hmig_progress (
  name varchar(255) NOT NULL,
  statement_index integer NOT NULL,
  statement_checksum text NOT NULL,
  state text NOT NULL CHECK (state IN ('started', 'done', 'failed')),
  error text,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (name, statement_index)
);
COMMENT ON TABLE {schema}.hmig_progress IS
  'hmig: statement-by-statement progress of non-transactional migrations that have not finished'
;
CREATE TABLE IF NOT EXISTS {schema}.hmig_audit (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  action text NOT NULL CHECK (action IN ('apply', 'rollback', 'baseline', 'repair', 'adopt', 'backup')),
  name varchar(255) NOT NULL,
  checksum text,
  detail text,
  actor text,
  commit_sha text,
  run_id text,
  hmig_version text NOT NULL
);
COMMENT ON TABLE {schema}.hmig_audit IS
  'hmig: append-only log of every apply, rollback, baseline, repair and adoption: who, what, when, from which commit'
