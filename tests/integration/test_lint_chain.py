"""The whole lint chain without the CLI: discovery → render → squawk → sizes → lint.check.

A real database with a large table, the real squawk binary, migrations in a temp folder.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

from hmig import execution, lint
from hmig.discovery import discover
from hmig.linter import Squawk, read_sources
from hmig.model import LintPolicy, MigrationsConfig, QueryResult
from hmig.postgres.connection import connect, describe
from hmig.postgres.relations import relation_sizes
from tests.conftest import Database

MIGRATIONS = {
    "001_patients_index.sql": """
        -- Up Migration
        CREATE INDEX patients_name_idx ON patients (name);

        -- Reviewed: runs in the Sunday window.
        -- hmig:ignore table-rewrite
        ALTER TABLE patients ALTER COLUMN born TYPE timestamp;

        ALTER TABLE patients ADD CONSTRAINT patients_id_positive CHECK (id > 0);

        -- Down Migration
        DROP INDEX patients_name_idx;
    """,
    "002_visits.sql": """
        CREATE TABLE visits (
            id bigint PRIMARY KEY,
            patient_id bigint NOT NULL REFERENCES patients (id)
        );
        -- hmig:ignore blocking-lock-on-large-table
        CREATE INDEX visits_patient_idx ON visits (patient_id);
    """,
}


def no_queries(text: str, values: Sequence[object]) -> QueryResult:
    raise AssertionError(f"unexpected query {text!r}")


def test_lint_chain(tmp_path: Path, database: Database) -> None:
    database.execute(
        "CREATE TABLE patients (id bigint PRIMARY KEY, name text NOT NULL, born date);"
        "INSERT INTO patients SELECT g, 'patient ' || g, date '1950-01-01' + g % 20000 "
        "FROM generate_series(1, 50000) AS g;"
        "ANALYZE patients;"
    )
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in MIGRATIONS.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    config = MigrationsConfig(dir=folder, table="pgmigrations", schema="public", order=None)
    files = sorted(discover(config, base_dir=tmp_path), key=lambda m: m.name)
    pending = [(m, execution.render(m, renderer=None, query=no_queries)) for m in files]

    session = connect(database.url, target=describe(database.url))
    try:
        session.begin(read_only=True)  # as `plan` runs
        sizes = relation_sizes(session, lint.tables_to_size(pending))
        server_version = session.server_version()
        session.rollback()
    finally:
        session.close()
    assert set(sizes) == {"patients"}  # visits does not exist yet

    squawk = Squawk.find(dict(os.environ)).lint(
        pending, lock_timeout_ms=0, statement_timeout_ms=0, server_version=server_version
    )
    report = lint.check(
        pending,
        squawk=squawk,
        sizes=sizes,
        policy=LintPolicy(fail_on="error"),
        lock_timeout_ms=0,
        statement_timeout_ms=0,
        sources=read_sources(pending),
    )

    ours = [(f.migration, f.rule, f.line) for f in report.findings if f.source == "hmig"]
    assert ours == [
        ("001_patients_index", "blocking-lock-on-large-table", 2),
        ("001_patients_index", "no-lock-timeout", 2),
        ("001_patients_index", "no-lock-timeout", 6),  # its table-rewrite is ignored
        ("001_patients_index", "full-table-scan-under-lock", 8),
        ("001_patients_index", "no-lock-timeout", 8),
        # The foreign key takes SHARE ROW EXCLUSIVE on patients: writes to it would queue.
        ("002_visits", "no-lock-timeout", 1),
    ]
    size = lint.describe_size(sizes["patients"])
    assert size.startswith("≈ 50 k rows, ") and size.endswith(" MB")
    index = report.findings[0]
    assert index.message == (
        f"CREATE INDEX without CONCURRENTLY blocks writes to patients ({size}) while it builds"
    )
    assert (index.file, index.column, index.statement_index) == (
        "migrations/001_patients_index.sql",
        1,
        0,
    )
    scan = next(f for f in report.findings if f.rule == "full-table-scan-under-lock")
    assert scan.message.startswith(
        f"ADD CONSTRAINT patients_id_positive CHECK without NOT VALID reads every row of "
        f"patients ({size}) under an ACCESS EXCLUSIVE lock"
    )

    theirs = {(f.migration, f.rule, f.line) for f in report.findings if f.source == "squawk"}
    # Replaced by hmig's findings on the same statements (which carry the size):
    assert not {rule for _, rule, _ in theirs} & {
        "require-concurrent-index-creation",
        "require-lock-timeout",
        "constraint-missing-not-valid",
    } - {rule for m, rule, _ in theirs if m == "002_visits"}
    # Ignoring hmig's table-rewrite also silences squawk's twin on that statement.
    assert not any(rule == "changing-column-type" for _, rule, _ in theirs)
    assert ("001_patients_index", "prefer-timestamp-tz", 6) in theirs
    assert ("001_patients_index", "require-statement-timeout", 2) in theirs
    assert all(line is not None and line <= 8 for m, _, line in theirs if m.startswith("001"))
    # visits is new: no size finding, and the ignore comment matched nothing.
    assert not any(
        f.migration == "002_visits" and f.rule == "blocking-lock-on-large-table"
        for f in report.findings
    )
    assert [(f.migration, f.line, f.message) for f in report.unused_ignores] == [
        (
            "002_visits",
            5,
            "-- hmig:ignore blocking-lock-on-large-table matched no finding on this statement",
        )
    ]
    assert report.failed  # fail_on: error, and blocking-lock-on-large-table is an error
