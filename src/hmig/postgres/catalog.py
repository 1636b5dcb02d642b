"""The managed schemas read from `pg_catalog` (never pg_dump text), as a `SchemaSnapshot`.

Each `sql/catalog_*.sql` query returns one jsonb object per row, so the rows reach
`hmig.snapshot` by column name; that module turns them into comparable values. The catalog is
read in a read-only transaction with `search_path = pg_catalog`, so `pg_get_expr`,
`pg_get_indexdef`, `format_type` and the rest schema-qualify every user object the same way on
every database, whatever search_path its role or database sets (the phantom `SET DEFAULT` diffs
of ariga/atlas#3610). Also here: what a shadow database must copy from its target before the
migrations are replayed into it (the effective search_path, the roles). This adapter must not
decide what counts as drift (that is `hmig.drift`), nor import another adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import cache

from psycopg import sql

from hmig.postgres._queries import query, text
from hmig.postgres.connection import PgSession
from hmig.snapshot import CatalogRows, SchemaSnapshot, Scope, build

_QUERIES = (
    "tables",
    "columns",
    "constraints",
    "indexes",
    "views",
    "functions",
    "triggers",
    "sequences",
    "types",
    "extensions",
    "policies",
)


def snapshot(session: PgSession, *, scope: Scope) -> SchemaSnapshot:
    """Snapshot the schemas of `scope` on the session's database (outside any transaction).

    The session's role is taken as the one that ran the migrations there, so owners and grantees
    that are "whoever migrated" compare equal between the target and its shadow.
    """
    rows, role = read(session, schemas=scope.schemas)
    return build(
        rows, server_major=server_major(session), scope=replace(scope, migrating_role=role)
    )


def read(session: PgSession, *, schemas: Sequence[str]) -> tuple[CatalogRows, str]:
    """The catalog rows of `schemas`, and the session's role, in one read-only transaction."""
    session.begin(read_only=True)
    try:
        # SET LOCAL ends with the transaction: the session's own search_path is left as it was.
        session.run(sql.SQL("SET LOCAL search_path = pg_catalog"))
        role = str(session.fetch(sql.SQL("SELECT current_user"))[0][0])
        found = {
            name: tuple(
                row[0] for row in session.fetch(_catalog_query(name), {"schemas": list(schemas)})
            )
            for name in _QUERIES
        }
    finally:
        session.rollback()
    return CatalogRows(**found), role


@cache
def _catalog_query(name: str) -> sql.Composed:
    """`catalog_<name>.sql` with its `{grants}` filled in.

    One expression (`catalog_grants.sql`) lists the grants of every kind of object, over the
    `acl_of.acl` and `acl_of.owner` each query supplies.
    """
    grants = sql.SQL(text("catalog_grants").strip())
    return sql.SQL(text(f"catalog_{name}")).format(grants=grants)


def server_major(session: PgSession) -> int:
    """15 for 15.20, 18 for 18.6."""
    return int(session.server_version().split(".")[0])


def effective_search_path(session: PgSession) -> list[str]:
    """The schemas unqualified names resolve to on this session, `$user` already resolved."""
    rows = session.fetch(sql.SQL("SELECT pg_catalog.current_schemas(false)"))
    return [str(name) for name in rows[0][0]]


def set_search_path(session: PgSession, schemas: Sequence[str]) -> None:
    """Make `schemas` the session's search_path, so replayed migrations resolve as on the target."""
    session.fetch(query("set_search_path"), {"schemas": list(schemas)})


def roles(session: PgSession) -> set[str]:
    """Every role of the server except PostgreSQL's predefined `pg_*` ones."""
    rows = session.fetch(sql.SQL("SELECT rolname FROM pg_catalog.pg_roles WHERE rolname !~ '^pg_'"))
    return {str(row[0]) for row in rows}
