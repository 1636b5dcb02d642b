"""Issue 7's bad input corpus: each malformed input is a row with its exit code and message.

Families: the manifest (broken YAML, schema violations, unknown keys), the process environment
(missing or malformed variables), a manifest pointing outside the repository, file contents
(empty, binary, non-UTF-8, NUL bytes, BOM, CRLF), names (quotes, spaces, 300 characters, control
characters, duplicates), symlinks, SQL (syntax errors, transaction control, psql
meta-commands, COPY to or from the client), JavaScript (syntax errors, throws, infinite loops,
transaction control in rendered SQL), and 10 MB of SQL.

A refused row must exit with the code the README's "Exit codes" table documents, name the file,
line or key in the human text and in the JSON report, print no traceback, and leave the database
exactly as it was: a catalog snapshot of the test's own database (schemas, relations, columns,
constraints, indexes, functions, types, the contents of every table, hmig's history tables
included) is compared before and after. Every case starts from a database where `000_base` is
applied, so "untouched" covers real history rows, not an empty database.

Some inputs are fine and a production tool must accept them (a BOM, CRLF, 10 MB of SQL, a name
with quotes or spaces): they are rows of the `…__accepted` tests, which check the migration was
applied once, recorded under its exact name, ran the right SQL, and shows no drift afterwards.
Where the corpus decides what "right" is, the row's id and comment say why.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from psycopg import conninfo, sql

from tests.conftest import Database, Project, Run

# --- the harness ------------------------------------------------------------------------------

BASE = (
    "CREATE TABLE base (id bigint PRIMARY KEY, note text NOT NULL DEFAULT 'x');\n"
    "CREATE INDEX base_note ON base (note);\n"
    "INSERT INTO base VALUES (1, 'kept');\n"
)
# A valid migration that sorts before the bad one: a refused run must not apply it either.
OK = {"001_ok.sql": "CREATE TABLE ok (id bigint);\n"}
MANIFEST = (
    "version: 1\nmigrations:\n  dir: migrations\nenvironments:\n  test:\n"
    "    database:\n      url_env: HMIG_TEST_URL\n"
)
LONG = "x" * 300

Files = Mapping[str, str | bytes]
Setup = Callable[[Project], object]
Command = tuple[str, ...]
VALIDATE_APPLY: tuple[Command, ...] = (("validate",), ("apply",))
PLAN_APPLY: tuple[Command, ...] = (("plan",), ("apply",))


@dataclass(frozen=True)
class Bad:
    """A refused input: what to write and run, the exit code, and a regex for the message.

    `message` must match the report (`error.message` for exit 2, `file:line: message` of its
    `failure` for exit 1) and the human text on stderr (with --json), which for exit 1 names
    the same place and message.
    """

    message: str
    files: Files = field(default_factory=dict)
    code: int = 2
    commands: tuple[Command, ...] = VALIDATE_APPLY
    manifest: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    setup: Setup | None = None
    timeout: float = 120


@dataclass(frozen=True)
class Good:
    """An input a production tool must accept: `apply` records `applied`, `check` is true."""

    files: Files
    applied: tuple[str, ...]
    check: str
    manifest: str | None = None
    args: tuple[str, ...] = ()
    setup: Setup | None = None
    rollback_check: str | None = None  # true after rolling everything in `applied` back
    timeout: float = 120


@dataclass(frozen=True)
class Snapshot:
    """The database as pg_catalog describes it, and the contents of every table."""

    catalog: Mapping[str, tuple[tuple[Any, ...], ...]]
    contents: Mapping[str, tuple[int, str]]

    def without(self, *tables: str) -> Snapshot:
        kept = {k: v for k, v in self.contents.items() if k not in tables}
        return Snapshot(self.catalog, kept)


_USER_SCHEMA = "n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"
_CATALOG_QUERIES = {
    "schemas": "SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE " + _USER_SCHEMA,
    "relations": (
        "SELECT n.nspname, c.relname, c.relkind::text FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE " + _USER_SCHEMA
    ),
    "columns": (
        "SELECT n.nspname, c.relname, a.attnum, a.attname, "
        "pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_catalog.pg_get_expr(d.adbin, d.adrelid) "
        "FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attnum > 0 AND NOT a.attisdropped AND " + _USER_SCHEMA
    ),
    "constraints": (
        "SELECT n.nspname, c.conrelid::regclass::text, c.conname, "
        "pg_catalog.pg_get_constraintdef(c.oid) FROM pg_catalog.pg_constraint c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace WHERE " + _USER_SCHEMA
    ),
    "indexes": (
        "SELECT n.nspname, i.relname, pg_catalog.pg_get_indexdef(x.indexrelid), x.indisvalid "
        "FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace WHERE " + _USER_SCHEMA
    ),
    "functions": (
        "SELECT n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), "
        "md5(p.prosrc) FROM pg_catalog.pg_proc p "
        "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE " + _USER_SCHEMA
    ),
    "types": (
        "SELECT n.nspname, t.typname, t.typtype::text FROM pg_catalog.pg_type t "
        "JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
        "WHERE t.typtype IN ('e', 'd', 'r', 'm') AND " + _USER_SCHEMA
    ),
    "extensions": "SELECT extname, extversion FROM pg_catalog.pg_extension",
}
_TABLES = (
    "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND " + _USER_SCHEMA + " ORDER BY 1, 2"
)


def snapshot(db: Database) -> Snapshot:
    catalog = {
        name: tuple(sorted(db.rows(query), key=repr)) for name, query in _CATALOG_QUERIES.items()
    }
    contents: dict[str, tuple[int, str]] = {}
    with db.connect() as conn:
        for schema, table in conn.execute(_TABLES).fetchall():
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
                "FROM {} t"
            ).format(sql.Identifier(schema, table))
            row = conn.execute(query).fetchone()
            assert row is not None
            contents[f"{schema}.{table}"] = (row[0], row[1])
    return Snapshot(catalog, contents)


def put(project: Project, files: Files) -> None:
    """Write migration files byte for byte (CRLF, BOMs and bad bytes stay as given)."""
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (project.migrations / name).write_bytes(data)


def report_text(run: Run) -> str:
    """The report's own account of what went wrong, as one line of text."""
    report = run.report()
    if report.get("error"):
        error = report["error"]
        return str(error["message"]) + ("\n" + error["hint"] if error.get("hint") else "")
    failure = report.get("failure") or {}
    where = str(failure.get("file"))
    if failure.get("line") is not None:
        where += f":{failure['line']}"
    return f"{where}: {failure.get('message')}"


@pytest.fixture
def corpus(project: Project) -> Project:
    """A project whose database already has `000_base` applied (real history to protect)."""
    put(project, {"000_base.sql": BASE})
    run = project.hmig("apply")
    assert run.code == 0, run.text
    assert project.database is not None
    assert project.database.history() == ["000_base"]
    return project


def refused(project: Project, case: Bad) -> None:
    """Run every command of `case`; each exits `case.code`, says `case.message`, changes nothing.

    Exit 2 ("refused before changing anything") leaves everything identical, hmig's audit log
    included. Exit 1 (a migration ran and failed, rolled back) may log the attempt in
    `hmig_audit`, but the schema, the data and the history rows stay as they were.
    """
    db = project.database
    assert db is not None
    if case.manifest is not None:
        project.manifest(case.manifest)
    put(project, case.files)
    if case.setup is not None:
        case.setup(project)
    before = snapshot(db)
    files = sorted(project.migrations.iterdir())
    for command in case.commands:
        run = project.hmig(*command, "--json", env=case.env, timeout=case.timeout)
        shown = f"hmig {' '.join(command)[:200]} → {run.code}\n{run.err[-3000:]}"
        assert "Traceback" not in run.text, shown
        assert run.code == case.code, shown
        report = run.report()
        assert report["exit_code"] == case.code, report
        expected_outcomes = {"error", "refused"} if case.code == 2 else {"failed"}
        assert report["outcome"] in expected_outcomes, report
        assert re.search(case.message, report_text(run)), report_text(run)
        if case.code == 2:
            assert re.search(case.message, run.err), shown
        else:  # the human text puts the failure's place on a line of its own
            where, _, message = report_text(run).partition(": ")
            assert where in run.err and message in run.err, shown
    assert sorted(project.migrations.iterdir()) == files  # nothing written (`new` refused)
    after = snapshot(db)
    if case.code == 1:
        assert after.without("public.hmig_audit") == before.without("public.hmig_audit")
    else:
        assert after == before


def accepted(project: Project, case: Good) -> None:
    """`apply` runs each migration once, records its exact name, and the right SQL ran."""
    db = project.database
    assert db is not None
    if case.manifest is not None:
        project.manifest(case.manifest)
    put(project, case.files)
    if case.setup is not None:
        case.setup(project)
    first = project.hmig(*case.args, "apply", "--json", timeout=case.timeout)
    assert first.code == 0, first.text[-3000:]
    assert [r["name"] for r in first.report()["ran"]] == list(case.applied)
    assert db.history() == ["000_base", *case.applied]
    assert db.scalar(case.check) is True, case.check
    again = project.hmig(*case.args, "apply", "--json", timeout=case.timeout)
    assert again.code == 0, again.text[-3000:]
    assert again.report()["outcome"] == "nothing-to-do"
    assert db.history() == ["000_base", *case.applied]
    status = project.hmig(*case.args, "status", "--json", timeout=case.timeout)
    assert status.code == 0, status.text[-3000:]
    assert status.report()["pending"] == []
    assert status.report()["unknown"] == []
    # Read back as recorded: the checksum of a BOM or CRLF file is stable, so no drift.
    assert (status.report().get("drift") or {}).get("findings", []) == [], status.report()
    if case.rollback_check is not None:
        back = project.hmig(
            *case.args, "rollback", "--count", str(len(case.applied)), "--json", "--yes"
        )
        assert back.code == 0, back.text[-3000:]
        assert db.history() == ["000_base"]
        assert db.scalar(case.rollback_check) is True, case.rollback_check


def table_exists(name: str) -> str:
    return f"SELECT to_regclass('public.{name}') IS NOT NULL"


# --- the manifest: broken YAML, schema violations, unknown keys --------------------------------

_ENV = "environments:\n  test:\n    database: {url_env: HMIG_TEST_URL}\n"
_DIRS = "version: 1\nmigrations: {dir: migrations}\n"

MANIFEST_CASES = [
    pytest.param(
        Bad(
            r"hmig\.yml:3: invalid YAML: found character '\\t'",
            manifest="version: 1\nmigrations:\n\tdir: migrations\n" + _ENV,
        ),
        id="yaml-tab-indentation",
    ),
    pytest.param(
        Bad(r"hmig\.yml:1: the manifest must be a YAML mapping", manifest="- a\n- b\n"),
        id="yaml-a-list-not-a-mapping",
    ),
    pytest.param(
        Bad(r"hmig\.yml:1: the manifest must be a YAML mapping", manifest="# nothing yet\n"),
        id="yaml-empty-document",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:4: invalid YAML: mapping values are not allowed here",
            manifest="version: 1\nmigrations:\n  dir: migrations\n   table: x\n" + _ENV,
        ),
        id="yaml-bad-indentation",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:6: duplicate key 'test' \(first defined on line 4\)",
            manifest=_DIRS + _ENV + "  test: {protected: true}\n",
        ),
        id="yaml-duplicate-key",
    ),
    pytest.param(
        # A Python tag must be a YAML error with its line, never a crash (and never run).
        Bad(
            r"hmig\.yml:2: .*python/object",
            manifest="version: 1\nmigrations: {dir: !!python/object/apply:os.system [id]}\n" + _ENV,
        ),
        id="yaml-python-tag",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml: .*(UTF-8|utf-8)",
            setup=lambda p: (p.root / "hmig.yml").write_bytes(
                ("version: 1\n# café\n" + _DIRS[11:] + _ENV).encode("latin-1")
            ),
        ),
        id="manifest-not-utf8",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:1: version: unsupported version 2; use 1",
            manifest="version: 2\nmigrations: {dir: migrations}\n" + _ENV,
        ),
        id="schema-version-2",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:1: version: unsupported version '1'; use 1",
            manifest="version: '1'\nmigrations: {dir: migrations}\n" + _ENV,
        ),
        id="schema-version-a-string",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:1: \(top level\): missing required key 'migrations'",
            manifest="version: 1\n" + _ENV,
        ),
        id="schema-missing-migrations",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:3: environments: \{\} should be non-empty",
            manifest=_DIRS + "environments: {}\n",
        ),
        id="schema-no-environment",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:2: migrations\.dir: '' should be non-empty",
            manifest="version: 1\nmigrations: {dir: ''}\n" + _ENV,
        ),
        id="schema-empty-dir",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:2: migrations\.table: 'pgmigrations; drop' does not match",
            manifest="version: 1\nmigrations: {dir: migrations, table: 'pgmigrations; drop'}\n"
            + _ENV,
        ),
        id="schema-table-not-an-identifier",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:6: environments\.test\.protected: 'yes please' is not of type 'boolean'",
            manifest=_DIRS + _ENV + "    protected: yes please\n",
        ),
        id="schema-protected-not-a-boolean",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:6: environments\.test\.transaction: 'sometimes' is not one of",
            manifest=_DIRS + _ENV + "    transaction: sometimes\n",
        ),
        id="schema-transaction-not-an-enum-value",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:6: environments\.test\.statement_timeout: -5 is not valid",
            manifest=_DIRS + _ENV + "    statement_timeout: -5\n",
        ),
        id="schema-negative-duration",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:6: environments\.test\.backup\.mode: 'everything' is not one of",
            manifest=_DIRS + _ENV + "    backup: {mode: everything}\n",
        ),
        id="schema-backup-mode",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:5: environments\.test\.database: expected exactly one of 'url_env' or "
            "'embedded'",
            manifest=_DIRS + "environments:\n  test:\n    database: {url: 'postgresql://h/d'}\n",
        ),
        id="schema-url-in-the-manifest",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:3: default_environment: 'prod' is not one of the environments \(test\)",
            manifest=_DIRS + "default_environment: prod\n" + _ENV,
        ),
        id="schema-default-environment-undefined",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:2: migrations\.order: \['001_ok', '001_ok'\] has non-unique elements",
            files=OK,
            manifest="version: 1\nmigrations: {dir: migrations, order: [001_ok, 001_ok]}\n" + _ENV,
        ),
        id="schema-order-lists-a-name-twice",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:2: migrations\.order: migrations\.order does not list "
            r"migrations/001_ok\.sql",
            files=OK,
            manifest="version: 1\nmigrations: {dir: migrations, order: [000_base]}\n" + _ENV,
        ),
        id="schema-order-misses-a-file",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:6: migrations\.order: migrations\.order lists '002_typo', but no such "
            r"migration file exists",
            files=OK,
            manifest="version: 1\nmigrations:\n  dir: migrations\n  order:\n    - 001_ok\n"
            "    - 002_typo\n" + _ENV,
        ),
        id="schema-order-names-no-file",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:6: migration: unknown key 'migration' .*did you mean 'migrations'\?",
            manifest=_DIRS + _ENV + "migration: {}\n",
        ),
        id="unknown-key-top-level",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:2: migrations\.tabel: unknown key 'tabel' .*did you mean 'table'\?",
            manifest="version: 1\nmigrations: {dir: migrations, tabel: x}\n" + _ENV,
        ),
        id="unknown-key-nested",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:6: environments\.test\.lint\.fail_onn: unknown key 'fail_onn'",
            manifest=_DIRS + _ENV + "    lint: {fail_onn: error}\n",
        ),
        id="unknown-key-deep",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml:5: environments\.test\.databse: unknown key 'databse'",
            setup=lambda p: (p.root / "hmig.yml").write_bytes(
                b"version: 1\r\nmigrations: {dir: migrations}\r\nenvironments:\r\n"
                b"  test:\r\n    databse: {}\r\n"
            ),
        ),
        id="unknown-key-crlf-manifest-lines-still-right",
    ),
]


@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_manifest__refused(corpus: Project, case: Bad) -> None:
    refused(corpus, replace(case, commands=(("validate",), ("plan",), ("apply",))))


# --- the process environment: missing or malformed variables ----------------------------------

_NO_DATABASE = _DIRS + "environments:\n  test: {}\n"


def _without_dbname(project: Project) -> dict[str, str]:
    """DB_HOST, DB_PORT and DB_USER of the test's server, but no DB_NAME."""
    assert project.database is not None
    params = conninfo.conninfo_to_dict(project.database.url)
    return {
        "DB_HOST": str(params.get("host") or "localhost"),
        "DB_PORT": str(params.get("port") or "5432"),
        "DB_USER": str(params.get("user") or "postgres"),
    }


ENVIRONMENT_CASES = [
    pytest.param(
        Bad(
            r"\$HMIG_NEVER_SET_ANYWHERE, which is not set",
            manifest=MANIFEST.replace("HMIG_TEST_URL", "HMIG_NEVER_SET_ANYWHERE"),
            commands=PLAN_APPLY,
        ),
        id="url-env-not-set",
    ),
    pytest.param(
        Bad(r"\$HMIG_TEST_URL, which is empty", env={"HMIG_TEST_URL": "   "}, commands=PLAN_APPLY),
        id="url-env-only-blanks",
    ),
    pytest.param(
        # Which variable holds the bad URL is what a person needs to fix it.
        Bad(r"HMIG_TEST_URL", env={"HMIG_TEST_URL": "this is not a url"}, commands=PLAN_APPLY),
        id="url-env-not-a-url-names-the-variable",
    ),
    pytest.param(
        Bad(
            r"HMIG_TEST_URL",
            env={"HMIG_TEST_URL": "mysql://app@127.0.0.1:1/app"},
            commands=PLAN_APPLY,
        ),
        id="url-env-another-scheme-names-the-variable",
    ),
    pytest.param(
        Bad(
            r"sslmode",
            env={"HMIG_TEST_URL": "postgresql://127.0.0.1:1/app?sslmode=sometimes"},
            commands=PLAN_APPLY,
        ),
        id="url-env-bad-sslmode",
    ),
    pytest.param(
        Bad(
            r"has no database: the manifest gives none, and neither DATABASE_URL nor "
            r"DB_HOST/DB_NAME is set",
            manifest=_NO_DATABASE,
            env={"DATABASE_URL": ""},
            commands=PLAN_APPLY,
        ),
        id="no-database-anywhere",
    ),
    pytest.param(
        # DB_HOST alone must not fall back to libpq's defaults (database = user name): that
        # migrates whatever database happens to be called like the OS user. plan only: it reads.
        Bad(
            r"DB_NAME",
            manifest=_NO_DATABASE,
            setup=lambda p: p.env.update(_without_dbname(p)),
            commands=(("plan",),),
        ),
        id="db-host-without-db-name",
    ),
    pytest.param(
        Bad(
            r"DB_PORT",
            manifest=_NO_DATABASE,
            setup=lambda p: p.env.update(
                {**_without_dbname(p), "DB_NAME": "app", "DB_PORT": "fivefour"}
            ),
            commands=(("plan",),),
        ),
        id="db-port-not-a-number-names-the-variable",
    ),
    pytest.param(
        Bad(
            r"drift\.shadow_url_env names \$HMIG_SHADOW_NEVER_SET, which is not set",
            manifest=MANIFEST
            + "    drift: {check: schema, shadow_url_env: HMIG_SHADOW_NEVER_SET}\n",
            commands=PLAN_APPLY,
        ),
        id="shadow-url-env-not-set",
    ),
    pytest.param(
        Bad(
            r"hmig\.yml defines several environments \(other, test\) and no default_environment",
            manifest=MANIFEST + "  other:\n    database: {url_env: HMIG_TEST_URL}\n",
            commands=PLAN_APPLY,
        ),
        id="several-environments-no-default",
    ),
]


@pytest.mark.parametrize("case", ENVIRONMENT_CASES)
def test_environment__refused(corpus: Project, case: Bad) -> None:
    refused(corpus, case)


def test_environment__validate_needs_no_variable(corpus: Project) -> None:
    """validate reads files only: a missing URL variable is not its business."""
    corpus.manifest(MANIFEST.replace("HMIG_TEST_URL", "HMIG_NEVER_SET_ANYWHERE"))
    run = corpus.hmig("validate", "--json")
    assert run.code == 0, run.text


def test_environment__database_that_does_not_exist__exit_2_names_it(corpus: Project) -> None:
    assert corpus.database is not None
    missing = corpus.database.server.url_for("hmig_t_no_such_database")
    refused(
        corpus,
        Bad(
            r'hmig_t_no_such_database.*database "hmig_t_no_such_database" does not exist',
            env={"HMIG_TEST_URL": missing},
            commands=PLAN_APPLY,
        ),
    )


# --- a manifest pointing outside the repository -----------------------------------------------


def _git_repository(project: Project) -> None:
    subprocess.run(["git", "init", "-q", str(project.root)], check=True, timeout=30)


def _outside_folder(project: Project) -> Path:
    """A migrations folder beside the repository, holding the base and one more migration."""
    outside = project.root.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "000_base.sql").write_text(BASE)
    (outside / "001_outside.sql").write_text("CREATE TABLE outside (id bigint);\n")
    return outside


def _repository_with_outside(project: Project) -> None:
    _git_repository(project)
    _outside_folder(project)


def _link_outside(project: Project) -> None:
    _git_repository(project)
    (project.root / "linked").symlink_to(_outside_folder(project), target_is_directory=True)


def _absolute_manifest(project: Project) -> None:
    _git_repository(project)
    project.manifest(MANIFEST.replace("dir: migrations", f"dir: {_outside_folder(project)}"))


_OUTSIDE = r"hmig\.yml(:\d+)?: migrations\.dir: .*outside the repository"
OUTSIDE_CASES = [
    pytest.param(
        Bad(
            _OUTSIDE,
            manifest=MANIFEST.replace("dir: migrations", "dir: ../outside"),
            setup=_repository_with_outside,
        ),
        id="dir-dot-dot",
    ),
    pytest.param(
        Bad(
            _OUTSIDE,
            manifest=MANIFEST.replace("dir: migrations", "dir: migrations/../../outside"),
            setup=_repository_with_outside,
        ),
        id="dir-dot-dot-after-a-folder",
    ),
    pytest.param(Bad(_OUTSIDE, setup=_absolute_manifest), id="dir-absolute-path"),
    pytest.param(
        Bad(
            _OUTSIDE,
            manifest=MANIFEST.replace("dir: migrations", "dir: linked"),
            setup=_link_outside,
        ),
        id="dir-symlink-to-outside",
    ),
]


@pytest.mark.parametrize("case", OUTSIDE_CASES)
def test_outside_the_repository__refused(corpus: Project, case: Bad) -> None:
    refused(corpus, case)


def _monorepo(project: Project) -> None:
    """hmig.yml in db/, migrations in backend/migrations: both inside one repository."""
    _git_repository(project)
    folder = project.root / "backend" / "migrations"
    folder.mkdir(parents=True)
    (folder / "000_base.sql").write_text(BASE)
    (folder / "001_backend.sql").write_text("CREATE TABLE backend (id bigint);\n")
    (project.root / "db").mkdir()
    (project.root / "db" / "hmig.yml").write_text(
        MANIFEST.replace("dir: migrations", "dir: ../backend/migrations")
    )


def test_outside_the_manifest_folder_but_inside_the_repository__accepted(
    corpus: Project,
) -> None:
    """`..` is fine while it stays in the repository (a manifest in a monorepo's sub-folder)."""
    accepted(
        corpus,
        Good(
            files={},
            applied=("001_backend",),
            check=table_exists("backend"),
            args=("--manifest", "db/hmig.yml"),
            setup=_monorepo,
        ),
    )


# --- file contents: empty, binary, encodings, NUL, BOM, CRLF ----------------------------------

FILE_CASES = [
    pytest.param(
        # An empty file is a migration someone forgot to write (or a truncated checkout);
        # recording it as applied would make its later content never run.
        Bad(r"migrations/002_empty\.sql: .*empty", files={**OK, "002_empty.sql": b""}),
        id="empty-file",
    ),
    pytest.param(
        Bad(r"migrations/002_blank\.sql: .*empty", files={**OK, "002_blank.sql": "\n  \n\t\n"}),
        id="whitespace-only-file",
    ),
    pytest.param(
        Bad(
            r"migrations/002_archive\.sql: not UTF-8",
            files={**OK, "002_archive.sql": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff"},
        ),
        id="binary-gzip",
    ),
    pytest.param(
        Bad(
            r"migrations/002_latin1\.sql: not UTF-8 text \(byte 16\)",
            files={**OK, "002_latin1.sql": "CREATE TABLE café (id int);\n".encode("latin-1")},
        ),
        id="latin-1",
    ),
    pytest.param(
        Bad(
            r"migrations/002_utf16\.sql: not UTF-8",
            files={**OK, "002_utf16.sql": "CREATE TABLE u16 (id int);\n".encode("utf-16")},
        ),
        id="utf-16-with-bom",
    ),
    pytest.param(
        # PostgreSQL cannot take a NUL in query text and pglast stops reading at it: the
        # statements after it would silently never run, yet the migration would be recorded.
        Bad(
            r"(?i)migrations/002_nul\.sql:2\b.*(NUL|zero byte|\\x00|\\0)",
            files={
                **OK,
                "002_nul.sql": "CREATE TABLE nul_a (id int);\n\x00\nCREATE TABLE nul_b (id int);\n",
            },
        ),
        id="nul-byte",
    ),
    pytest.param(
        Bad(
            r"(?i)migrations/002_binary_ascii\.sql:1\b.*(NUL|zero byte|binary|\\x00|\\0)",
            files={**OK, "002_binary_ascii.sql": b"\x00\x00\x00\x01\x02\x03"},
        ),
        id="binary-that-is-valid-utf8",
    ),
    pytest.param(
        Bad(
            r"migrations/002_nbsp\.sql:2:1: syntax error at or near",
            files={**OK, "002_nbsp.sql": "CREATE TABLE nbsp (id int);\nSELECT\u00a01;\n"},
        ),
        id="no-break-space-pasted-from-a-document",
    ),
    pytest.param(
        # validate checks the down section too: a rollback is not the time to find out.
        Bad(
            r"migrations/002_down_commit\.sql:4:1: COMMIT inside a migration",
            files={
                **OK,
                "002_down_commit.sql": "-- Up Migration\nCREATE TABLE dc (id int);\n"
                "-- Down Migration\nCOMMIT;\nDROP TABLE dc;\n",
            },
            commands=(("validate",),),
        ),
        id="commit-in-the-down-section",
    ),
    pytest.param(
        Bad(
            r"migrations/002_x\.down\.sql:1:1: syntax error",
            files={
                **OK,
                "002_x.up.sql": "CREATE TABLE x (id int);\n",
                "002_x.down.sql": "DROPP TABLE x;\n",
            },
            commands=(("validate",),),
        ),
        id="syntax-error-in-the-down-file",
    ),
]


@pytest.mark.parametrize("case", FILE_CASES)
def test_file_contents__refused(corpus: Project, case: Bad) -> None:
    refused(corpus, case)


FILE_ACCEPTED = [
    pytest.param(
        # The BOM is an encoding mark, not SQL (node-pg-migrate strips it too): the table is
        # `bom`, not a syntax error or an identifier that starts with U+FEFF.
        Good(
            files={"001_bom.sql": b"\xef\xbb\xbfCREATE TABLE bom (id int);\n"},
            applied=("001_bom",),
            check=table_exists("bom"),
        ),
        id="utf8-bom-sql",
    ),
    pytest.param(
        Good(
            files={
                "001_crlf.sql": b"-- Up Migration\r\nCREATE TABLE crlf (id int);\r\n"
                b"INSERT INTO crlf VALUES (1);\r\n-- Down Migration\r\nDROP TABLE crlf;\r\n"
            },
            applied=("001_crlf",),
            check="SELECT count(*) = 1 FROM crlf",
            rollback_check="SELECT to_regclass('public.crlf') IS NULL",
        ),
        id="crlf-sql-markers-still-split-up-and-down",
    ),
    pytest.param(
        Good(
            files={
                "001_cr.sql": b"-- Up Migration\rCREATE TABLE cr (id int);\r"
                b"-- Down Migration\rDROP TABLE cr;\r"
            },
            applied=("001_cr",),
            check=table_exists("cr"),
            rollback_check="SELECT to_regclass('public.cr') IS NULL",
        ),
        id="classic-mac-cr-line-endings",
    ),
    pytest.param(
        Good(
            files={
                "001_bomjs.js": b"\xef\xbb\xbfexports.up = (pgm) => {\r\n"
                b"  pgm.createTable('bomjs', { id: 'id' });\r\n};\r\n"
            },
            applied=("001_bomjs",),
            check=table_exists("bomjs"),
            rollback_check="SELECT to_regclass('public.bomjs') IS NULL",
        ),
        id="utf8-bom-and-crlf-js",
    ),
    pytest.param(
        # A migration that documents why it does nothing is a deliberate no-op (node-pg-migrate
        # records it too), unlike an empty file.
        Good(
            files={
                "001_noop.sql": "-- Up Migration\n-- INC-42: fixed by hand, nothing to do\n"
                "-- Down Migration\n"
            },
            applied=("001_noop",),
            check="SELECT to_regclass('public.base') IS NOT NULL",
        ),
        id="comments-only-no-op",
    ),
    pytest.param(
        Good(
            files={"001_no_newline.sql": "CREATE TABLE no_newline (id int)"},
            applied=("001_no_newline",),
            check=table_exists("no_newline"),
        ),
        id="no-final-newline-or-semicolon",
    ),
]


@pytest.mark.parametrize("case", FILE_ACCEPTED)
def test_file_contents__accepted(corpus: Project, node_modules: Path, case: Good) -> None:
    accepted(corpus, case)


# --- names: quotes, spaces, 300 characters, control characters, duplicates --------------------

NAME_CASES = [
    pytest.param(
        # A newline in a name breaks every log line and, in the Action, could start a workflow
        # command; no tool records such a name usefully.
        Bad(
            r"migrations/002_new\\nline\.sql: .*(control character|newline)",
            files={**OK, "002_new\nline.sql": "CREATE TABLE nl (id int);\n"},
        ),
        id="newline-in-the-name",
    ),
    pytest.param(
        Bad(
            r"migrations/002_red\\x1b\[31m\.sql: .*control character",
            files={**OK, "002_red\x1b[31m.sql": "CREATE TABLE esc (id int);\n"},
        ),
        id="terminal-escape-in-the-name",
    ),
    pytest.param(
        # On macOS and Windows checkouts these are one file: the databases would differ.
        Bad(
            r"migrations/002_(a|A)\.sql: .*002_a.* and .*002_A|002_A.* and .*002_a",
            files={
                **OK,
                "002_a.sql": "CREATE TABLE lower_a (id int);\n",
                "002_A.sql": "CREATE TABLE upper_a (id int);\n",
            },
        ),
        id="names-that-differ-only-in-case",
    ),
    pytest.param(
        Bad(
            r"migrations/002_a\.SQL: two migrations are named '002_a'",
            files={
                **OK,
                "002_a.sql": "CREATE TABLE a1 (id int);\n",
                "002_a.SQL": "CREATE TABLE a2 (id int);\n",
            },
        ),
        id="same-name-extension-case",
    ),
    pytest.param(
        Bad(
            r"migrations/002_a\.js: two migrations are named '002_a': migrations/002_a\.js and "
            r"migrations/002_a\.ts",
            files={
                **OK,
                "002_a.js": "exports.up = (pgm) => pgm.sql('SELECT 1');\n",
                "002_a.ts": "export const up = (pgm: any) => pgm.sql('SELECT 1');\n",
            },
        ),
        id="same-name-js-and-ts",
    ),
    pytest.param(
        Bad(
            r"Duplicate \.up\.sql for 002_x",
            files={
                **OK,
                "002_x.up.sql": "CREATE TABLE x1 (id int);\n",
                "002_x.UP.sql": "CREATE TABLE x2 (id int);\n",
            },
        ),
        id="same-up-file-twice-by-case",
    ),
    pytest.param(
        Bad(
            r"the migration name would be 314 characters long; .*at most 255",
            commands=(("new", LONG),),
        ),
        id="new-with-a-300-character-description",
    ),
    pytest.param(
        Bad(
            rf"--target '{LONG}' is not a migration of this project",
            files=OK,
            commands=(("plan", "--target", LONG), ("apply", "--target", LONG)),
        ),
        id="target-of-300-characters",
    ),
    pytest.param(
        Bad(
            rf"--to '{LONG}' is not an applied migration",
            commands=(("rollback", "--to", LONG), ("rollback", "--to", LONG, "--dry-run")),
        ),
        id="rollback-to-300-characters",
    ),
    pytest.param(
        Bad(
            rf"--to '{LONG}' is not a migration of this project",
            files=OK,
            commands=(("baseline", "--to", LONG),),
        ),
        id="baseline-to-300-characters",
    ),
    pytest.param(
        Bad(
            rf"hmig\.yml(:\d+)?: migrations\.order: .*'{LONG}'",
            files=OK,
            manifest=f"version: 1\nmigrations:\n  dir: migrations\n  order: [000_base, 001_ok, "
            f"{LONG}]\n" + _ENV,
        ),
        id="order-entry-of-300-characters",
    ),
    pytest.param(
        Bad(
            rf"hmig\.yml:4: migrations\.renamed: '{LONG}' is too long",
            files=OK,
            manifest=f"version: 1\nmigrations:\n  dir: migrations\n  renamed: {{{LONG}: 001_ok}}\n"
            + _ENV,
        ),
        id="renamed-key-of-300-characters",
    ),
]


@pytest.mark.parametrize("case", NAME_CASES)
def test_names__refused(corpus: Project, case: Bad) -> None:
    refused(corpus, case)


MAX_NAME = "1" + "y" * 250  # 251 characters + ".sql" = 255 bytes, the longest file name
NAME_ACCEPTED = [
    pytest.param(
        Good(
            files={'001_it\'s "quoted".sql': "CREATE TABLE quoted (id int);\n"},
            applied=('001_it\'s "quoted"',),
            check=table_exists("quoted"),
        ),
        id="quotes",
    ),
    pytest.param(
        Good(
            files={
                "001 add users.sql": "CREATE TABLE users (id int);\n-- Down Migration\n"
                "DROP TABLE users;\n"
            },
            applied=("001 add users",),
            check=table_exists("users"),
            rollback_check="SELECT to_regclass('public.users') IS NULL",
        ),
        id="spaces",
    ),
    pytest.param(
        # The name is data: it goes into pgmigrations as a parameter, never into SQL text.
        Good(
            files={"001_x'; DROP TABLE base; --.sql": "CREATE TABLE injected (id int);\n"},
            applied=("001_x'; DROP TABLE base; --",),
            check="SELECT to_regclass('public.base') IS NOT NULL AND "
            "to_regclass('public.injected') IS NOT NULL",
        ),
        id="sql-in-the-name",
    ),
    pytest.param(
        Good(
            files={"001_café_ñ_病院.sql": "CREATE TABLE unicode_name (id int);\n"},
            applied=("001_café_ñ_病院",),
            check=table_exists("unicode_name"),
        ),
        id="non-ascii",
    ),
    pytest.param(
        Good(
            files={f"{MAX_NAME}.sql": "CREATE TABLE longest (id int);\n"},
            applied=(MAX_NAME,),
            check=table_exists("longest"),
        ),
        id="251-characters-the-longest-file-name",
    ),
]


@pytest.mark.parametrize("case", NAME_ACCEPTED)
def test_names__accepted(corpus: Project, case: Good) -> None:
    accepted(corpus, case)


def test_names__target_with_quotes_and_spaces(corpus: Project) -> None:
    put(
        corpus,
        {
            '001 it\'s "first".sql': "CREATE TABLE first_one (id int);\n",
            "002_second.sql": "CREATE TABLE second_one (id int);\n",
        },
    )
    run = corpus.hmig("apply", "--target", '001 it\'s "first"', "--json")
    assert run.code == 0, run.text
    assert corpus.database is not None
    assert corpus.database.history() == ["000_base", '001 it\'s "first"']


# --- symlinks ---------------------------------------------------------------------------------


def _link(name: str, target: str | Callable[[Project], Path]) -> Setup:
    def setup(project: Project) -> None:
        where = target(project) if callable(target) else Path(target)
        (project.migrations / name).symlink_to(where)

    return setup


def _secret_file(project: Project) -> Path:
    path = project.root.parent / "elsewhere.sql"
    path.write_text("CREATE TABLE escaped (id int);\n")
    return path


def _repo_file(project: Project) -> Path:
    path = project.root / "seed.sql"
    path.write_text("CREATE TABLE escaped (id int);\n")
    return Path("../seed.sql")


def _outside_js(project: Project) -> Path:
    path = project.root.parent / "evil.js"
    path.write_text("exports.up = (pgm) => pgm.createTable('escaped', { id: 'id' });\n")
    return path


def _loop(project: Project) -> None:
    (project.migrations / "002_loop_a.sql").symlink_to("002_loop_b.sql")
    (project.migrations / "002_loop_b.sql").symlink_to("002_loop_a.sql")


_ESCAPES = r"migrations/002_link\.(sql|js): .*(outside|escapes)"
SYMLINK_CASES = [
    pytest.param(
        Bad(_ESCAPES, files=OK, setup=_link("002_link.sql", _secret_file)),
        id="absolute-link-outside-the-repository",
    ),
    pytest.param(
        Bad(_ESCAPES, files=OK, setup=_link("002_link.sql", _repo_file)),
        id="relative-link-out-of-the-migrations-folder",
    ),
    pytest.param(
        Bad(_ESCAPES, files=OK, setup=_link("002_link.sql", "/etc/hostname")),
        id="link-to-a-system-file",
    ),
    pytest.param(
        Bad(
            _ESCAPES,
            files=OK,
            setup=_link("002_link.js", _outside_js),
        ),
        id="js-link-outside",
    ),
    pytest.param(
        # A migration file that cannot be read must not silently vanish from the plan.
        Bad(
            r"migrations/002_dangling\.sql: .*(broken|dangling|does not exist|No such file)",
            files=OK,
            setup=_link("002_dangling.sql", "/nonexistent/hmig/002.sql"),
        ),
        id="dangling-link",
    ),
    pytest.param(
        Bad(r"migrations/002_loop_[ab]\.sql: .*(loop|Too many levels)", files=OK, setup=_loop),
        id="link-loop",
    ),
]


@pytest.mark.parametrize("case", SYMLINK_CASES)
def test_symlinks__refused(corpus: Project, case: Bad) -> None:
    refused(corpus, case)


def _inside_link(project: Project) -> None:
    shared = project.migrations / "shared"
    shared.mkdir()
    (shared / "patients.sql").write_text("CREATE TABLE linked_inside (id int);\n")
    (project.migrations / "001_linked.sql").symlink_to("shared/patients.sql")


def test_symlinks__inside_the_migrations_folder__accepted(corpus: Project) -> None:
    """A link to a file in the migrations folder's own sub-folder escapes nothing."""
    accepted(
        corpus,
        Good(
            files={},
            applied=("001_linked",),
            check=table_exists("linked_inside"),
            setup=_inside_link,
        ),
    )


# --- SQL: syntax errors, transaction control, psql meta-commands, COPY ------------------------


def _sql(name: str, text: str, message: str) -> Any:
    return pytest.param(Bad(message, files={**OK, f"002_{name}.sql": text}), id=name)


SQL_CASES = [
    _sql(
        "typo",
        "CREATE TABLE t1 (id int);\n\n\nSELEC 1;\n",
        r'migrations/002_typo\.sql:4:1: syntax error at or near "SELEC"',
    ),
    _sql(
        "unterminated_string",
        "CREATE TABLE t1 (id int);\nINSERT INTO t1 VALUES ('abc);\n",
        r"migrations/002_unterminated_string\.sql:2:24: unterminated quoted string",
    ),
    _sql(
        "unterminated_dollar",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1;\n",
        r"migrations/002_unterminated_dollar\.sql:1:\d+: unterminated dollar-quoted string",
    ),
    _sql(
        "unterminated_comment",
        "CREATE TABLE t1 (id int);\n/* never closed\nCREATE TABLE t2 (id int);\n",
        r"migrations/002_unterminated_comment\.sql:2:1: unterminated /\* comment",
    ),
    _sql(
        "missing_paren",
        "CREATE TABLE t1 (\n  id int,\n  name text\n;\n",
        r"migrations/002_missing_paren\.sql:4:1: syntax error at or near \";\"",
    ),
    _sql(
        "start_transaction",
        "START TRANSACTION;\nCREATE TABLE t1 (id int);\n",
        r"migrations/002_start_transaction\.sql:1:1: START inside a migration",
    ),
    _sql(
        "begin_work_lowercase",
        "CREATE TABLE t1 (id int);\n  begin   work ;\n",
        r"migrations/002_begin_work_lowercase\.sql:2:3: BEGIN inside a migration",
    ),
    _sql(
        "commit",
        "CREATE TABLE t1 (id int);\nCOMMIT;\nCREATE TABLE t2 (id int);\n",
        r"migrations/002_commit\.sql:2:1: COMMIT inside a migration",
    ),
    _sql(
        "end",
        "CREATE TABLE t1 (id int);\nEND;\n",
        r"migrations/002_end\.sql:2:1: COMMIT inside a migration",
    ),
    _sql(
        "commit_and_chain",
        "CREATE TABLE t1 (id int);\nCOMMIT AND CHAIN;\n",
        r"migrations/002_commit_and_chain\.sql:2:1: COMMIT inside a migration",
    ),
    _sql(
        "rollback",
        "CREATE TABLE t1 (id int);\nROLLBACK;\n",
        r"migrations/002_rollback\.sql:2:1: ROLLBACK inside a migration",
    ),
    _sql(
        "abort",
        "CREATE TABLE t1 (id int);\nABORT;\n",
        r"migrations/002_abort\.sql:2:1: ROLLBACK inside a migration",
    ),
    _sql(
        "prepare_transaction",
        "CREATE TABLE t1 (id int);\nPREPARE TRANSACTION 'x';\n",
        r"migrations/002_prepare_transaction\.sql:2:1: PREPARE inside a migration",
    ),
    _sql(
        "commit_prepared",
        "COMMIT PREPARED 'x';\n",
        r"migrations/002_commit_prepared\.sql:1:1: COMMIT PREPARED inside a migration",
    ),
    # psql meta-commands are not SQL: the server would see a backslash. Say so, not just
    # "syntax error at or near \"\\\"", which sends people hunting for a typo.
    _sql(
        "meta_include",
        "CREATE TABLE t1 (id int);\n\\i other.sql\n",
        r"(?i)migrations/002_meta_include\.sql:2:1: .*psql meta-command",
    ),
    _sql(
        "meta_include_relative",
        "CREATE TABLE t1 (id int);\n\\ir ../seed/other.sql\n",
        r"(?i)migrations/002_meta_include_relative\.sql:2:1: .*psql meta-command",
    ),
    _sql(
        "meta_copy",
        "CREATE TABLE t1 (id int);\n\\copy t1 from 'ids.csv' csv\n",
        r"(?i)migrations/002_meta_copy\.sql:2:1: .*psql meta-command",
    ),
    _sql(
        "meta_set",
        "\\set ON_ERROR_STOP on\nCREATE TABLE t1 (id int);\n",
        r"(?i)migrations/002_meta_set\.sql:1:1: .*psql meta-command",
    ),
    _sql(
        "meta_connect",
        "CREATE TABLE t1 (id int);\n\\connect other\nCREATE TABLE t2 (id int);\n",
        r"(?i)migrations/002_meta_connect\.sql:2:1: .*psql meta-command",
    ),
    # COPY to or from the client needs a psql on the other end; a migration has none.
    _sql(
        "copy_from_stdin_with_data",
        "CREATE TABLE t1 (id int);\nCOPY t1 FROM stdin;\n1\n2\n\\.\n",
        r"(?i)migrations/002_copy_from_stdin_with_data\.sql:2:1: .*COPY .*stdin",
    ),
    _sql(
        "copy_from_stdin",
        "CREATE TABLE t1 (id int);\nCOPY t1 FROM stdin;\n",
        r"(?i)migrations/002_copy_from_stdin\.sql:2:1: .*COPY .*stdin",
    ),
    _sql(
        "copy_to_stdout",
        "CREATE TABLE t1 (id int);\nCOPY t1 TO stdout;\n",
        r"(?i)migrations/002_copy_to_stdout\.sql:2:1: .*COPY .*stdout",
    ),
]


@pytest.mark.parametrize("case", SQL_CASES)
def test_sql__refused(corpus: Project, case: Bad) -> None:
    refused(corpus, case)


SQL_ACCEPTED = [
    pytest.param(
        # BEGIN … END of PL/pgSQL is a block, not a transaction.
        Good(
            files={
                "001_plpgsql.sql": "DO $$\nBEGIN\n  CREATE TABLE from_do (id int);\nEND\n$$;\n"
                "CREATE FUNCTION touch() RETURNS void LANGUAGE plpgsql AS $f$\n"
                "BEGIN\n  PERFORM 1;\nEND\n$f$;\n"
            },
            applied=("001_plpgsql",),
            check="SELECT to_regclass('public.from_do') IS NOT NULL AND "
            "to_regprocedure('public.touch()') IS NOT NULL",
        ),
        id="plpgsql-begin-end",
    ),
    pytest.param(
        # Savepoints live inside the migration's transaction; they do not end it.
        Good(
            files={
                "001_savepoint.sql": "CREATE TABLE sp_kept (id int);\nSAVEPOINT s;\n"
                "CREATE TABLE sp_undone (id int);\nROLLBACK TO SAVEPOINT s;\nRELEASE SAVEPOINT s;\n"
            },
            applied=("001_savepoint",),
            check="SELECT to_regclass('public.sp_kept') IS NOT NULL AND "
            "to_regclass('public.sp_undone') IS NULL",
        ),
        id="savepoints",
    ),
    pytest.param(
        Good(
            files={
                "001_lookalikes.sql": "CREATE TABLE lookalikes (note text);\n"
                "-- COMMIT; \\i evil.sql\n/* BEGIN; */\n"
                "INSERT INTO lookalikes VALUES ('\\i not a meta-command; COMMIT;');\n"
            },
            applied=("001_lookalikes",),
            check="SELECT note = '\\i not a meta-command; COMMIT;' FROM lookalikes",
        ),
        id="commit-and-backslash-in-comments-and-strings",
    ),
]


@pytest.mark.parametrize("case", SQL_ACCEPTED)
def test_sql__accepted(corpus: Project, case: Good) -> None:
    accepted(corpus, case)


# --- JavaScript: syntax errors, throws, infinite loops, transaction control -------------------


def _js(name: str, text: str | bytes, message: str, **kw: Any) -> Any:
    return pytest.param(Bad(message, files={**OK, f"002_{name}.js": text}, **kw), id=name)


def _js_first(name: str, text: str, message: str, **kw: Any) -> Any:
    """A migration that fails while it runs (exit 1): it sorts first, so nothing else runs."""
    files = {f"001_{name}.js": text, "002_after.sql": "CREATE TABLE after_it (id int);\n"}
    return pytest.param(Bad(message, files=files, code=1, commands=(("apply",),), **kw), id=name)


JS_CASES = [
    _js(
        "syntax_error",
        "exports.up = (pgm) => {\n  pgm.createTable('a', { id: 'id' }\n};\n",
        r"migrations/002_syntax_error\.js:3: ParseError",
    ),
    _js(
        "top_level_throw",
        "throw new Error('config missing at load');\n",
        r"migrations/002_top_level_throw\.js:1: config missing at load",
    ),
    _js(
        "missing_module",
        "require('hmig-no-such-module');\nexports.up = () => {};\n",
        r"migrations/002_missing_module\.js:1: Cannot find module 'hmig-no-such-module'",
    ),
    _js(
        "binary",
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00",
        r"migrations/002_binary\.js(:1)?: ",
    ),
    _js(
        "latin1",
        "// café\nexports.up = (pgm) => pgm.sql('SELECT 1');\n".encode("latin-1"),
        r"migrations/002_latin1\.js: not UTF-8",
    ),
    # node-pg-migrate refuses to run a module without `up`; validate loads every module, so it
    # must find out before anything runs.
    _js(
        "empty",
        "",
        r"migrations/002_empty\.js: .*(empty|up)",
    ),
    _js(
        "no_up_export",
        "exports.down = (pgm) => pgm.sql('SELECT 1');\n",
        r"migrations/002_no_up_export\.js: .*up",
    ),
    # Rendered SQL is known before anything runs (plan shows it): the same rules as for .sql.
    _js(
        "renders_commit",
        "exports.up = (pgm) => {\n  pgm.createTable('half', { id: 'id' });\n  pgm.sql('COMMIT');\n"
        "  pgm.sql('SELECT * FROM no_such_table');\n};\n",
        r"migrations/002_renders_commit\.js.*COMMIT inside a migration",
        commands=PLAN_APPLY,
    ),
    _js(
        "renders_begin",
        "exports.up = (pgm) => {\n  pgm.sql('BEGIN');\n  pgm.createTable('b', { id: 'id' });\n};\n",
        r"migrations/002_renders_begin\.js.*BEGIN inside a migration",
        commands=PLAN_APPLY,
    ),
    _js(
        "renders_meta_command",
        "exports.up = (pgm) => {\n  pgm.sql('\\\\i other.sql');\n};\n",
        r"(?i)migrations/002_renders_meta_command\.js.*psql meta-command",
        commands=PLAN_APPLY,
    ),
    _js(
        "renders_copy_from_stdin",
        "exports.up = (pgm) => {\n  pgm.createTable('c', { id: 'id' });\n"
        "  pgm.sql('COPY c FROM stdin');\n};\n",
        r"(?i)migrations/002_renders_copy_from_stdin\.js.*COPY .*stdin",
        commands=PLAN_APPLY,
    ),
    _js(
        "renders_syntax_error",
        "exports.up = (pgm) => {\n  pgm.createTable('s', { id: 'id' });\n"
        "  pgm.sql('CREATE TABLE (;');\n};\n",
        r"migrations/002_renders_syntax_error\.js.*syntax error at or near \"\(\"",
        commands=PLAN_APPLY,
    ),
    _js_first(
        "throw_in_up",
        "exports.up = (pgm) => {\n  pgm.createTable('thrown', { id: 'id' });\n"
        "  throw new Error('tenant id missing');\n};\n",
        r"migrations/001_throw_in_up\.js:3: tenant id missing",
    ),
    _js_first(
        "async_rejection",
        "exports.up = async (pgm) => {\n  await Promise.reject(new Error('async nope'));\n};\n",
        r"migrations/001_async_rejection\.js:2: async nope",
    ),
    # Node is gone: no .js migration could run after it, so apply refuses before the first.
    _js(
        "process_exit",
        "exports.up = (pgm) => {\n  process.exit(3);\n};\n",
        r"migrations/002_process_exit\.js: .*exited with code 3",
        commands=PLAN_APPLY,
    ),
]


@pytest.mark.parametrize("case", JS_CASES)
def test_js__refused(corpus: Project, node_modules: Path, case: Bad) -> None:
    refused(corpus, case)


JS_TIMEOUT_CASES = [
    _js(
        "loop_at_load",
        "while (true) {}\nexports.up = () => {};\n",
        r"migrations/002_loop_at_load\.js: loading of 002_loop_at_load did not settle within",
        commands=(("validate",),),
        timeout=200,
    ),
    _js(
        "loop_in_up",
        "exports.up = (pgm) => {\n  for (;;) {}\n};\n",
        r"migrations/002_loop_in_up\.js: up\(\) of 002_loop_in_up did not settle within",
        commands=(("apply",),),
        timeout=200,
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", JS_TIMEOUT_CASES)
def test_js__infinite_loop__times_out(corpus: Project, node_modules: Path, case: Bad) -> None:
    """Node is stopped after the bridge's timeout (60 s); nothing ran, the database is as it was."""
    refused(corpus, case)


# --- 10 MB of SQL -----------------------------------------------------------------------------

_FILLER = "x" * 70


def _one_big_insert() -> str:
    rows = ",\n".join(f"({i}, 'patient {i:07d} {_FILLER}')" for i in range(110_000))
    return (
        "CREATE TABLE big (id int PRIMARY KEY, note text NOT NULL);\n"
        f"INSERT INTO big VALUES\n{rows};\nCREATE INDEX big_note ON big (note);\n"
    )


def _many_statements() -> str:
    lines = "".join(
        f"INSERT INTO many VALUES ({i}, 'patient {i:07d} {_FILLER}');\n" for i in range(100_000)
    )
    return "CREATE TABLE many (id int PRIMARY KEY, note text NOT NULL);\n" + lines


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "check"),
    [
        pytest.param(
            _one_big_insert,
            "SELECT count(*) = 110000 AND max(id) = 109999 FROM big",
            id="one-10MB-statement",
        ),
        # A seed file of 100 000 statements: locating them must stay linear in the file's size.
        pytest.param(
            _many_statements,
            "SELECT count(*) = 100000 AND max(id) = 99999 FROM many",
            id="100000-statements-10MB",
        ),
    ],
)
def test_ten_megabytes_of_sql__accepted(
    corpus: Project, text: Callable[[], str], check: str
) -> None:
    content = text()
    assert len(content.encode()) > 10_000_000
    put(corpus, {"001_big.sql": content})
    validate = corpus.hmig("validate", "--json", timeout=180)
    assert validate.code == 0, validate.text[-2000:]
    accepted(corpus, Good(files={}, applied=("001_big",), check=check, timeout=180))


def test_the_corpus_has_at_least_50_cases() -> None:
    """Issue 7 asks for at least 50 bad inputs, each with its exit code and message."""
    rows = (
        MANIFEST_CASES
        + ENVIRONMENT_CASES
        + OUTSIDE_CASES
        + FILE_CASES
        + FILE_ACCEPTED
        + NAME_CASES
        + NAME_ACCEPTED
        + SYMLINK_CASES
        + SQL_CASES
        + SQL_ACCEPTED
        + JS_CASES
        + JS_TIMEOUT_CASES
    )
    assert len(rows) >= 50
    assert len({r.id for r in rows}) == len(rows)
