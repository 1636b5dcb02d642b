-- `transaction: all`: the rows of every migration of the batch in one round trip, before the
-- batch commits. NOW() is the same for all of them (the transaction's start), as it is when
-- node-pg-migrate runs a single transaction; ids follow the order of the arrays.
WITH batch AS (
  SELECT u.name, u.ord, k.kind, c.checksum, d.duration_ms
  FROM unnest(%(names)s::text[]) WITH ORDINALITY AS u(name, ord)
  JOIN unnest(%(kinds)s::text[]) WITH ORDINALITY AS k(kind, ord) USING (ord)
  JOIN unnest(%(checksums)s::text[]) WITH ORDINALITY AS c(checksum, ord) USING (ord)
  JOIN unnest(%(durations)s::float8[]) WITH ORDINALITY AS d(duration_ms, ord) USING (ord)
), applied AS (
  INSERT INTO {schema}.{table} (name, run_on)
  SELECT name, NOW() FROM batch ORDER BY ord
  RETURNING id
), recorded AS (
  INSERT INTO {schema}.hmig_history
    (name, checksum, kind, adopted, applied_by, commit_sha, run_id, duration_ms, hmig_version)
  SELECT name, checksum, kind, false, %(applied_by)s, %(commit)s, %(run_id)s, duration_ms,
         %(hmig_version)s
  FROM batch
  ON CONFLICT (name) DO UPDATE SET
    checksum = EXCLUDED.checksum, kind = EXCLUDED.kind, adopted = false,
    applied_by = EXCLUDED.applied_by, commit_sha = EXCLUDED.commit_sha,
    run_id = EXCLUDED.run_id, duration_ms = EXCLUDED.duration_ms,
    hmig_version = EXCLUDED.hmig_version, recorded_at = now()
), audited AS (
  INSERT INTO {schema}.hmig_audit
    (action, name, checksum, actor, commit_sha, run_id, hmig_version)
  SELECT 'apply', name, checksum, %(applied_by)s, %(commit)s, %(run_id)s, %(hmig_version)s
  FROM batch ORDER BY ord
)
SELECT count(*) FROM applied
