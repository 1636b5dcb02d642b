"""The JavaScript values `pgm.db.query` gives a migration: hmig's bridge against node-postgres.

A migration that reads the database decides what SQL to build from what it reads. The fixture
`tests/fixtures/compat/db_query_values/001_query_values.js` queries one value of each common
PostgreSQL type (and the result's shape), describes the JavaScript value it got, and writes the
descriptions as `-- name: description` lines of its SQL. hmig renders it with `plan`, the real
node-pg-migrate CLI with `up --dry-run`, on the same database; every line must be the same.

Also here: what `PgSession.query` hands the bridge (the server's raw answer), and the savepoint
around each `pgm.db` query, which lets a migration catch a failed query and carry on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from psycopg import conninfo

from hmig.errors import StatementFailed
from hmig.model import QueryResult
from hmig.postgres.connection import PgSession, connect, describe
from tests.conftest import (
    NODE_PG_MIGRATE,
    REPO,
    Database,
    Project,
    create_database,
    drop_database,
)

pytestmark = pytest.mark.usefixtures("node_modules")

FIXTURE = REPO / "tests/fixtures/compat/db_query_values/001_query_values.js"
_NAME = FIXTURE.stem


def _node_url(database: Database) -> str:
    params = conninfo.conninfo_to_dict(database.url)
    host = quote(str(params.get("host") or "localhost"), safe="")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{params.get('user', 'postgres')}@{host}{port}/{params['dbname']}"


def _probes(sql: str) -> dict[str, str]:
    """`-- name: description` lines → {name: description}."""
    found: dict[str, str] = {}
    for line in sql.splitlines():
        if line.startswith("-- "):
            name, _, description = line[3:].partition(": ")
            found[name] = description
    return found


def _node_pg_migrate(root: Path, database: Database, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    env["DATABASE_URL"] = _node_url(database)
    run = subprocess.run(
        ["node", str(NODE_PG_MIGRATE), *args, "-m", "migrations"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def _node_pg_migrate_probes(root: Path, database: Database) -> dict[str, str]:
    stdout = _node_pg_migrate(root, database, "up", "--dry-run")
    block = stdout.split(f"### MIGRATION {_NAME} (UP) ###", 1)[1]
    return _probes(block.split("Migrations complete!", 1)[0])


def test_db_query__values_reach_the_migration_as_node_postgres_gives_them(
    project: Project,
) -> None:
    shutil.copy2(FIXTURE, project.migrations / FIXTURE.name)
    plan = project.hmig("plan", "--json")
    assert plan.code == 0, plan.text
    ours = _probes(plan.report()["pending"][0]["sql"])
    assert project.database is not None
    theirs = _node_pg_migrate_probes(project.root, project.database)
    assert len(theirs) > 40
    assert ours.keys() == theirs.keys()
    differences = [
        f"  {name}:\n    node-pg-migrate: {theirs[name]}\n    hmig:            {ours[name]}"
        for name in theirs
        if ours[name] != theirs[name]
    ]
    assert not differences, (
        f"{len(differences)} of {len(theirs)} values differ from node-postgres's:\n"
        + "\n".join(differences)
    )


# --- what PgSession.query hands the bridge ---------------------------------------------------


@pytest.fixture
def session(database: Database) -> Iterator[PgSession]:
    opened = connect(database.url, target=describe(database.url))
    try:
        yield opened
    finally:
        opened.close()


def test_query__raw_text_and_type_oids__one_result_per_statement(session: PgSession) -> None:
    # No parameters: the simple protocol, as node-postgres uses it, so several statements.
    results = session.query(
        "SELECT 2::int8 AS n, NULL::text AS z, 1.50 AS d; "
        "CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (1), (2)",
        [],
    )
    assert results == [
        QueryResult(
            command="SELECT 1",
            fields=(("n", 0, 0, 20, 8, -1), ("z", 0, 0, 25, -1, -1), ("d", 0, 0, 1700, -1, -1)),
            rows=(("2", None, "1.50"),),
        ),
        QueryResult(command="CREATE TABLE", fields=None, rows=()),
        QueryResult(command="INSERT 0 2", fields=None, rows=()),
    ]
    assert session.query("", []) == [QueryResult(command=None, fields=None, rows=())]
    # Parameters as pg binds them: text of unknown type, bytes for a Buffer.
    [selected] = session.query("SELECT $1::int + 1 AS n, $2::bytea AS b", ["41", b"\x01\x02"])
    assert selected.rows == (("42", "\\x0102"),)
    assert selected.fields is not None and [f[3] for f in selected.fields] == [23, 17]


class _Boom(Exception):
    pass


def test_query__a_caught_failure_in_a_transaction_undoes_only_that_query(
    session: PgSession, database: Database
) -> None:
    session.begin()
    with pytest.raises(StatementFailed, match="no_such_table"):
        session.query("SELECT * FROM no_such_table", [])
    session.query("CREATE TABLE after_failure (x int)", [])
    # Inside an outer savepoint (plan renders each migration in one), a caught failure leaves
    # no savepoint of its own behind: rolling the outer one back undoes everything in it.
    with pytest.raises(_Boom), session.savepoint():
        session.query("CREATE TABLE before_inner_failure (x int)", [])
        with pytest.raises(StatementFailed):
            session.query("SELECT * FROM no_such_table", [])
        session.query("CREATE TABLE after_inner_failure (x int)", [])
        raise _Boom
    session.commit()
    assert database.tables() == {"after_failure"}


def test_query__the_migration_s_own_savepoints_stay_its_own(
    session: PgSession, database: Database
) -> None:
    # hmig's savepoint is not wrapped around SAVEPOINT/ROLLBACK TO: releasing it would release
    # the migration's savepoint too.
    session.begin()
    session.query("SAVEPOINT mine", [])
    session.query("CREATE TABLE scratch (x int)", [])
    session.query("ROLLBACK TO SAVEPOINT mine", [])
    session.query("/* kept */ CREATE TABLE kept (x int)", [])
    session.query("RELEASE SAVEPOINT mine", [])
    session.commit()
    assert database.tables() == {"kept"}


# --- a migration that catches a failed pgm.db query ------------------------------------------

CATCHES_A_FAILED_QUERY = """\
exports.up = async (pgm) => {
  try {
    await pgm.db.query('SELECT * FROM no_such_table');
  } catch (err) {
    pgm.sql(`-- caught ${err.code}`);
  }
  const [row] = await pgm.db.select('SELECT 1 AS still_usable');
  pgm.createTable('after_failure', { id: 'id', n: { type: 'int', default: row.still_usable } });
};
"""

USES_ITS_OWN_SAVEPOINT = """\
exports.up = async (pgm) => {
  await pgm.db.query('SAVEPOINT mine');
  await pgm.db.query('CREATE TABLE scratch (x int)');
  try {
    await pgm.db.query('SELECT * FROM no_such_table');
  } catch (err) {
    await pgm.db.query('ROLLBACK TO SAVEPOINT mine');
  }
  pgm.createTable('after_own_savepoint', { id: 'id' });
};
"""


@pytest.fixture
def node_database(database: Database) -> Iterator[Database]:
    """A second database on the same server, for the node-pg-migrate CLI."""
    other = create_database(database.server)
    try:
        yield other
    finally:
        drop_database(other)


def test_caught_query_failure__the_migration_carries_on(
    project: Project, node_database: Database
) -> None:
    # In hmig pgm.db runs inside the migration's transaction; a savepoint around each query
    # keeps a caught failure from aborting it. node-pg-migrate's per-migration mode runs
    # pgm.db before its BEGIN, so the same migration succeeds there too.
    project.write("001_catches.js", CATCHES_A_FAILED_QUERY)
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    assert project.database is not None
    assert "after_failure" in project.database.tables()
    default = project.database.scalar(
        "SELECT column_default FROM information_schema.columns "
        "WHERE table_name = 'after_failure' AND column_name = 'n'"
    )
    assert default == "1"
    _node_pg_migrate(project.root, node_database, "up", "--no-single-transaction")
    assert node_database.tables() - {"pgmigrations"} == {"after_failure"}


def test_own_savepoints_in_pgm_db__as_in_node_pg_migrate_s_single_transaction(
    project: Project, node_database: Database
) -> None:
    project.write("001_own_savepoint.js", USES_ITS_OWN_SAVEPOINT)
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    assert project.database is not None
    assert "scratch" not in project.database.tables()
    assert "after_own_savepoint" in project.database.tables()
    _node_pg_migrate(project.root, node_database, "up")
    assert node_database.tables() - {"pgmigrations"} == {"after_own_savepoint"}
