"""The adapter's SQL, loaded from `sql/*.sql` with the history schema and table filled in.

Identifiers go through `psycopg.sql.Identifier`; values are always bound parameters.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from psycopg import sql


@cache
def text(name: str) -> str:
    """The text of `sql/<name>.sql`, for queries composed of more than one file."""
    return resources.files("hmig.postgres").joinpath("sql", f"{name}.sql").read_text("utf-8")


@cache
def query(name: str, *, schema: str = "public", table: str = "pgmigrations") -> sql.SQL:
    """The named query with `{schema}` and `{table}` bound as quoted identifiers.

    Composed once into one piece of text: apply sends the history row's query for every
    migration, and a `Composed` is joined again each time it is sent. The identifiers are
    quoted without a connection, which is exact: every session is UTF-8 (`connection.connect`).
    """
    # The files ship inside the package: they are literals, only stored beside the code.
    template = sql.SQL(text(name))
    composed = template.format(schema=sql.Identifier(schema), table=sql.Identifier(table))
    return sql.SQL(composed.as_string())
