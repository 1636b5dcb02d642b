-- `hmig repair`: one history row no file explains, or a second row of the same migration. By
-- id, so the first of two same-named rows stays; hmig's record goes only with the last row
-- of its name.
WITH removed AS (
  DELETE FROM {schema}.{table} WHERE id = %(id)s RETURNING name
)
DELETE FROM {schema}.hmig_history h
WHERE h.name = %(name)s
  AND NOT EXISTS (
    SELECT 1 FROM {schema}.{table} t WHERE t.name = h.name AND t.id <> %(id)s
  )
  AND EXISTS (SELECT 1 FROM removed)
