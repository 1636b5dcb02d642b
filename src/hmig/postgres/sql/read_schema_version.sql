-- The version of hmig's tables (init_schema_version.sql writes it), to refuse tables a newer
-- release laid out differently.
SELECT value FROM {schema}.hmig_meta WHERE key = 'schema_version'
