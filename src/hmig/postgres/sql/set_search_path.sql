-- A shadow database replays migrations with its target's effective search_path, so an
-- unqualified CREATE lands in the same schema on both (set_config: the list arrives as a value).
SELECT pg_catalog.set_config(
    'search_path',
    pg_catalog.array_to_string(
        ARRAY(
            SELECT pg_catalog.quote_ident(s.name)
            FROM pg_catalog.unnest(%(schemas)s::text[]) WITH ORDINALITY AS s (name, position)
            ORDER BY s.position
        ),
        ', '
    ),
    false
)
