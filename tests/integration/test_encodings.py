"""Databases in encodings other than UTF8: hmig reads and writes them as text, not bytes.

A SQL_ASCII database makes psycopg return text as bytes unless the client asks for UTF8; once
that turned `pg_export_snapshot()`'s id into "b'…'" and broke every backup of such a database.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import Database, Project, Server, drop_database


@pytest.fixture(params=["SQL_ASCII", "LATIN1"])
def legacy_database(server: Server, request: pytest.FixtureRequest) -> Iterator[Database]:
    name = f"hmig_t_{secrets.token_hex(5)}"
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE 'C' LC_CTYPE 'C'"
            ).format(sql.Identifier(name), sql.Literal(request.param))
        )
    database = Database(server, name, server.url_for(name))
    try:
        yield database
    finally:
        drop_database(database)


def test_apply_and_a_restore_verified_backup_in_a_legacy_encoding(
    legacy_database: Database, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    (root / "migrations").mkdir(parents=True)
    project = Project(root, legacy_database)
    project.manifest(
        backup={"mode": "full", "required": True, "dir": "backups", "verify": "restore"}
    )
    project.write(
        "001_wards.sql",
        "CREATE TABLE wards (id int PRIMARY KEY, name text);\n"
        "COMMENT ON TABLE wards IS 'Stationen: Kinderstation für Säuglinge';\n"
        "INSERT INTO wards VALUES (1, 'Intensivstation');\n",
    )
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    report = run.report()
    assert report["backup"]["verified"] == "restore"
    assert [_text(n) for n in legacy_database.history()] == ["001_wards"]
    comment = legacy_database.scalar("SELECT obj_description('wards'::regclass)")
    assert "für Säuglinge" in _text(comment)


def _text(value: str | bytes) -> str:
    """The test's own connection does not ask for UTF8: SQL_ASCII text comes back as bytes."""
    return value.decode() if isinstance(value, bytes) else value
