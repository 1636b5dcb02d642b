INSERT INTO {schema}.hmig_audit
  (action, name, checksum, detail, actor, commit_sha, run_id, hmig_version)
VALUES
  (%(action)s, %(name)s, %(checksum)s, %(detail)s, %(actor)s, %(commit)s, %(run_id)s,
   %(hmig_version)s)
