-- `hmig repair`: a row whose file was renamed now names the file; hmig's record follows it
-- (its checksum is the renamed file's, which is how the rename was recognised).
WITH remapped AS (
  UPDATE {schema}.{table} SET name = %(new_name)s WHERE id = %(id)s RETURNING id
)
UPDATE {schema}.hmig_history
SET name = %(new_name)s
WHERE name = %(name)s
  AND EXISTS (SELECT 1 FROM remapped)
  AND NOT EXISTS (SELECT 1 FROM {schema}.hmig_history WHERE name = %(new_name)s)
