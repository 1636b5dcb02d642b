-- The layout version of hmig's tables (history.TABLES_VERSION), written once, when they are
-- created; a later release that changes them raises it as it migrates them.
INSERT INTO {schema}.hmig_meta (key, value) VALUES ('schema_version', %(version)s)
  ON CONFLICT (key) DO NOTHING
