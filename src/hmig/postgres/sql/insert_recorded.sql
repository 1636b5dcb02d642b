INSERT INTO {schema}.hmig_history
  (name, checksum, kind, adopted, applied_by, commit_sha, run_id, duration_ms, hmig_version)
VALUES
  (%(name)s, %(checksum)s, %(kind)s, %(adopted)s, %(applied_by)s, %(commit)s, %(run_id)s,
   %(duration_ms)s, %(hmig_version)s)
ON CONFLICT (name) DO UPDATE SET
  checksum = EXCLUDED.checksum, kind = EXCLUDED.kind, adopted = EXCLUDED.adopted,
  applied_by = EXCLUDED.applied_by, commit_sha = EXCLUDED.commit_sha, run_id = EXCLUDED.run_id,
  duration_ms = EXCLUDED.duration_ms, hmig_version = EXCLUDED.hmig_version,
  recorded_at = now()
