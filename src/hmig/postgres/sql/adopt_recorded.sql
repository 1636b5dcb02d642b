-- A row another tool wrote: remember the file's checksum as hmig first saw it, marked adopted.
INSERT INTO {schema}.hmig_history (name, checksum, kind, adopted, applied_by, hmig_version)
VALUES (%(name)s, %(checksum)s, %(kind)s, true, %(applied_by)s, %(hmig_version)s)
ON CONFLICT (name) DO NOTHING
