-- One round trip for the three rows of an applied migration, in the migration's transaction:
-- node-pg-migrate's row (run_on = NOW(), the transaction start, as it writes it), hmig's record,
-- and the audit entry.
WITH applied AS (
  INSERT INTO {schema}.{table} (name, run_on) VALUES (%(name)s, NOW()) RETURNING id
), recorded AS (
  INSERT INTO {schema}.hmig_history
    (name, checksum, kind, adopted, applied_by, commit_sha, run_id, duration_ms, hmig_version)
  VALUES
    (%(name)s, %(checksum)s, %(kind)s, false, %(applied_by)s, %(commit)s, %(run_id)s,
     %(duration_ms)s, %(hmig_version)s)
  ON CONFLICT (name) DO UPDATE SET
    checksum = EXCLUDED.checksum, kind = EXCLUDED.kind, adopted = false,
    applied_by = EXCLUDED.applied_by, commit_sha = EXCLUDED.commit_sha,
    run_id = EXCLUDED.run_id, duration_ms = EXCLUDED.duration_ms,
    hmig_version = EXCLUDED.hmig_version, recorded_at = now()
), audited AS (
  INSERT INTO {schema}.hmig_audit
    (action, name, checksum, actor, commit_sha, run_id, hmig_version)
  VALUES
    ('apply', %(name)s, %(checksum)s, %(applied_by)s, %(commit)s, %(run_id)s, %(hmig_version)s)
)
SELECT id FROM applied
