"""hmig.linter.Squawk with the real squawk binary from the squawk-cli wheel; no database.

Checks what squawk is told (transaction mode per file, timeouts hmig guarantees, the server's
version) and that its findings land on the right file, line and statement.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from hmig import execution
from hmig.binaries import find_node, find_squawk, squawk_version
from hmig.discovery import discover
from hmig.errors import ToolMissing
from hmig.linter import Squawk, read_sources
from hmig.model import Finding, Kind, MigrationFile, MigrationsConfig, QueryResult, Rendered
from hmig.model import Statement as Stmt
from hmig.node import BRIDGE_DIR, NodeBridge

SQUAWK_VERSION = "2.70.0"  # pinned in pyproject.toml


def no_queries(text: str, values: Sequence[object]) -> QueryResult:
    raise AssertionError(f"unexpected query {text!r}")


def pending(root: Path, files: dict[str, str]) -> list[tuple[MigrationFile, Rendered]]:
    folder = root / "migrations"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    config = MigrationsConfig(dir=folder, table="pgmigrations", schema="public", order=None)
    found = sorted(discover(config, base_dir=root), key=lambda m: m.name)
    return [
        (m, execution.render(m, renderer=None, query=no_queries))
        for m in found
        if m.kind is Kind.SQL
    ]


def squawk() -> Squawk:
    return Squawk.find(dict(os.environ))


def rules_at(findings: Sequence[Finding]) -> list[tuple[str, int | None, int | None]]:
    return sorted((f.rule, f.line, f.statement_index) for f in findings)


def test_the_pinned_squawk_is_found_beside_hmig() -> None:
    path = find_squawk({"PATH": ""})  # not on PATH: found in the environment's scripts folder
    assert path.name == "squawk"
    assert squawk_version(path) == SQUAWK_VERSION
    assert Squawk(path).version() == SQUAWK_VERSION


def test_missing_squawk_is_tool_missing_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ToolMissing) as caught:
        find_squawk({"HMIG_SQUAWK": str(tmp_path / "nope"), "PATH": ""})
    assert "HMIG_SQUAWK" in caught.value.message and "squawk-cli" in caught.value.hint


def test_sql_findings_map_to_file_lines_and_only_the_up_section(tmp_path: Path) -> None:
    work = pending(
        tmp_path,
        {
            "001_patients.sql": """
                -- A header comment,
                -- on two lines.

                -- Up Migration
                CREATE INDEX patients_name ON patients (name);

                -- squawk-ignore prefer-bigint-over-int
                ALTER TABLE patients ADD COLUMN visits int;
                ALTER TABLE patients ADD COLUMN score int;

                -- Down Migration
                DROP TABLE patients;
            """,
        },
    )
    findings = squawk().lint(work, lock_timeout_ms=500, statement_timeout_ms=0)
    assert {f.file for f in findings} == {"migrations/001_patients.sql"}
    assert {f.source for f in findings} == {"squawk"}
    assert rules_at(findings) == [
        ("prefer-bigint-over-int", 9, 2),  # line 8's is ignored by squawk's own comment
        ("require-concurrent-index-creation", 5, 0),
        ("require-statement-timeout", 5, 0),  # statement_timeout 0: not guaranteed by hmig
    ]
    index = next(f for f in findings if f.rule == "require-concurrent-index-creation")
    assert (index.column, index.severity, index.migration) == (1, "warning", "001_patients")
    assert index.help is not None  # squawk's fix, kept
    # No ban-drop-table: the down section is not what runs.


def test_timeouts_hmig_sets_are_not_reported(tmp_path: Path) -> None:
    work = pending(tmp_path, {"001_a.sql": "ALTER TABLE patients ADD COLUMN note text;\n"})
    without = squawk().lint(work, lock_timeout_ms=0, statement_timeout_ms=0)
    assert {"require-lock-timeout", "require-statement-timeout"} <= {f.rule for f in without}
    with_both = squawk().lint(work, lock_timeout_ms=500, statement_timeout_ms=60_000)
    assert not {"require-lock-timeout", "require-statement-timeout"} & {f.rule for f in with_both}


def test_assume_in_transaction_only_for_transactional_migrations(tmp_path: Path) -> None:
    work = pending(
        tmp_path,
        {
            "001_table.sql": "CREATE TABLE visits (id bigint);\n",
            "002_index.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS v ON visits (id);\n",
            "003_table.sql": "-- hmig:no-transaction\nCREATE TABLE doctors (id bigint);\n",
        },
    )
    assert [r.transactional for _, r in work] == [True, False, False]
    found = squawk().lint(work, lock_timeout_ms=500, statement_timeout_ms=60_000)
    by_file = {(f.migration, f.rule) for f in found}
    # In a transaction, a failed CREATE TABLE rolls back: no robustness finding for 001.
    assert ("001_table", "prefer-robust-stmts") not in by_file
    # Outside one, it is reported (003), and CONCURRENTLY is not "in a transaction" (002).
    assert ("003_table", "prefer-robust-stmts") in by_file
    assert not any(rule.startswith("ban-concurrent-index") for _, rule in by_file)


def test_server_version_reaches_squawk(tmp_path: Path) -> None:
    work = pending(tmp_path, {"001_a.sql": "ALTER TABLE t ADD COLUMN n bigint DEFAULT 0;\n"})
    old = squawk().lint(work, lock_timeout_ms=1, statement_timeout_ms=1, server_version="10.0")
    new = squawk().lint(work, lock_timeout_ms=1, statement_timeout_ms=1, server_version="15.19")
    # Before PostgreSQL 11 a constant default rewrote the table (adding-field-with-default).
    assert "adding-field-with-default" in {f.rule for f in old}
    assert "adding-field-with-default" not in {f.rule for f in new}


def js(tmp_path: Path, name: str, *sqls: str) -> tuple[MigrationFile, Rendered]:
    migration = MigrationFile(
        name=name,
        path=f"migrations/{name}.js",
        abspath=tmp_path / f"{name}.js",
        kind=Kind.JS,
        checksum="x",
    )
    statements = tuple(Stmt(index=i, sql=sql) for i, sql in enumerate(sqls))
    return migration, Rendered(statements, transactional=True)


def test_rendered_statements_map_to_statement_indexes(tmp_path: Path) -> None:
    work = [
        js(
            tmp_path,
            "1700000000000_js",
            'CREATE TABLE "visits" (\n  "id" bigint\n);',
            'CREATE INDEX "patients_name" ON "patients" ("name")',
            'ALTER TABLE "patients" ADD COLUMN "age" integer',
        ),
        js(tmp_path, "1700000000001_js", "SELECT 1", "SELECT FROM WHERE"),
    ]
    found = squawk().lint(work, lock_timeout_ms=1, statement_timeout_ms=1)
    assert {(f.migration, f.rule, f.statement_index) for f in found} == {
        ("1700000000000_js", "require-concurrent-index-creation", 1),
        ("1700000000000_js", "prefer-bigint-over-int", 2),
        ("1700000000001_js", "syntax-error", 1),
    }
    assert all(f.line is None and f.column is None for f in found)
    assert {f.file for f in found} == {
        "migrations/1700000000000_js.js",
        "migrations/1700000000001_js.js",
    }
    # pglast would refuse this too; for SQL it accepts, squawk's parser may still lag behind.
    syntax = next(f for f in found if f.rule == "syntax-error")
    assert syntax.severity == "warning" and syntax.message.startswith("squawk could not parse")


def test_js_rendered_by_node_pg_migrate(tmp_path: Path, node_modules: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "1700000000000_visits.js").write_text(
        textwrap.dedent(
            """
            exports.up = (pgm) => {
              pgm.createTable('visits', { id: 'id', patient_id: { type: 'integer' } });
              pgm.createIndex('patients', 'name');
            };
            """
        ),
        encoding="utf-8",
    )
    config = MigrationsConfig(dir=folder, table="pgmigrations", schema="public", order=None)
    (migration,) = discover(config, base_dir=tmp_path)
    env = dict(os.environ)
    with NodeBridge(node=find_node(env), bridge_dir=BRIDGE_DIR, env=env, timeout_s=30) as bridge:
        bridge.start([migration])
        rendered = execution.render(migration, renderer=bridge, query=no_queries)
    found = squawk().lint([(migration, rendered)], lock_timeout_ms=1, statement_timeout_ms=1)
    index = next(f for f in found if f.rule == "require-concurrent-index-creation")
    assert rendered.statements[index.statement_index or 0].sql.startswith("CREATE INDEX")
    assert index.line is None and index.file == "migrations/1700000000000_visits.js"


def test_nothing_pending_runs_nothing(tmp_path: Path) -> None:
    broken = Squawk(tmp_path / "not-squawk")
    assert broken.lint([], lock_timeout_ms=0, statement_timeout_ms=0) == ()


def test_read_sources_gives_the_sql_files_text(tmp_path: Path) -> None:
    work = pending(tmp_path, {"001_a.sql": "\ufeffSELECT 1;\r\nSELECT 2;\r\n"})
    (text,) = read_sources(work).values()
    assert text == "SELECT 1;\nSELECT 2;\n"  # as discovery read it: no BOM, \n line endings
