"""`.js` migrations through node-pg-migrate 9, and adopting a database it already migrated."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from psycopg import conninfo

from tests.conftest import NODE_PG_MIGRATE, Project

pytestmark = pytest.mark.usefixtures("node_modules")


def test_js__db_query__runs_inside_the_migration_transaction(project: Project) -> None:
    project.write("001_t.sql", "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);")
    project.write(
        "002_copy.js",
        """
        exports.up = async (pgm) => {
          const { rows } = await pgm.db.query(
            'SELECT count(*)::int AS n FROM t WHERE id >= $1', [1]);
          await pgm.db.query("INSERT INTO t VALUES (3)");
          pgm.createTable('counted', { n: { type: 'integer' } });
          pgm.sql(`INSERT INTO counted VALUES (${rows[0].n})`);
          pgm.sql('SELECT * FROM missing_table');
        };
        """,
    )
    failed = project.hmig("apply", "--json")
    assert failed.code == 1, failed.text
    assert failed.report()["failure"]["migration"] == "002_copy"
    db = project.database
    assert db is not None
    # pgm.db.query ran in the migration's own transaction: its INSERT was rolled back too.
    assert db.scalar("SELECT count(*) FROM t") == 2
    project.write(
        "002_copy.js",
        """
        exports.up = async (pgm) => {
          const { rows } = await pgm.db.query(
            'SELECT count(*)::int AS n FROM t WHERE id >= $1', [1]);
          await pgm.db.query("INSERT INTO t VALUES (3)");
          pgm.createTable('counted', { n: { type: 'integer' } });
          pgm.sql(`INSERT INTO counted VALUES (${rows[0].n})`);
        };
        """,
    )
    ok = project.hmig("apply")
    assert ok.code == 0, ok.text
    assert db.scalar("SELECT count(*) FROM t") == 3
    assert db.scalar("SELECT n FROM counted") == 2


def test_js__no_transaction__runs_outside_a_transaction(project: Project) -> None:
    project.write(
        "001_enum.js",
        """
        exports.up = (pgm) => {
          pgm.createType('mood', ['sad', 'ok']);
          pgm.createTable('people', { id: 'id', m: { type: 'mood' } });
        };
        """,
    )
    project.write(
        "002_value.js",
        """
        exports.up = (pgm) => {
          pgm.noTransaction();
          pgm.addTypeValue('mood', 'happy');
          pgm.sql("INSERT INTO people (m) VALUES ('happy')");
        };
        """,
    )
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    ran = {r["name"]: r for r in run.report()["ran"]}
    assert ran["001_enum"]["transactional"] is True
    assert ran["002_value"]["transactional"] is False
    assert project.database is not None
    assert project.database.scalar("SELECT m::text FROM people") == "happy"


def test_plan__js__shows_generated_sql_and_cannot_write(project: Project) -> None:
    project.write(
        "001_a.js",
        """
        exports.shorthands = {
          created: { type: 'timestamptz', notNull: true,
                     default: { literal: true, value: 'now()' } },
        };
        exports.up = async (pgm) => {
          await pgm.db.query('CREATE TABLE sneaky (id int)');
          pgm.createTable('a', { id: 'id', created: 'created' });
        };
        """,
    )
    run = project.hmig("plan", "--json")
    # pgm.db.query tried to write inside the read-only transaction: refused, nothing written,
    # and the plan says why it cannot show that migration's SQL.
    assert run.code == 0, run.text
    report = run.report()
    assert report["pending"][0]["sql"] is None
    (warning,) = [w for w in report["warnings"] if w["code"] == "not-rendered"]
    assert "its pgm.db queries write" in warning["message"]
    assert "read-only transaction" in warning["message"]
    assert project.database is not None
    assert project.database.tables() == set()
    project.write(
        "001_a.js",
        """
        exports.shorthands = {
          created: { type: 'timestamptz', notNull: true,
                     default: { literal: true, value: 'now()' } },
        };
        exports.up = (pgm) => { pgm.createTable('a', { id: 'id', created: 'created' }); };
        """,
    )
    project.write("002_b.js", "exports.up = (pgm) => pgm.addColumns('a', { c2: 'created' });\n")
    run = project.hmig("plan", "--json")
    assert run.code == 0, run.text
    sql = {p["name"]: p["sql"] for p in run.report()["pending"]}
    assert 'CREATE TABLE "a"' in sql["001_a"]
    assert '"id" serial PRIMARY KEY' in sql["001_a"]
    # The shorthand from 001 is used by 002: shorthands accumulate across files.
    assert '"c2" timestamptz DEFAULT now() NOT NULL' in sql["002_b"]
    assert project.database.tables() == set()


def test_js__thrown_error__names_file_and_line(project: Project) -> None:
    project.write(
        "001_boom.js",
        """
        exports.up = (pgm) => {
          pgm.createTable('x', { id: 'id' });
          throw new Error('tenant id missing');
        };
        """,
    )
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    failure = run.report()["failure"]
    assert failure["migration"] == "001_boom"
    assert "tenant id missing" in failure["message"]
    assert failure["line"] == 3
    assert project.database is not None
    assert "x" not in project.database.tables()


def test_js__syntax_error__refused_before_anything_runs(project: Project) -> None:
    project.write("001_ok.sql", "CREATE TABLE ok (id int);")
    project.write("002_broken.js", "exports.up = (pgm) => {\n  pgm.createTable('x', {\n};\n")
    run = project.hmig("apply")
    assert run.code == 2, run.text
    assert "migrations/002_broken.js" in run.text
    assert project.database is not None
    assert "ok" not in project.database.tables()


def test_js__without_up__refused_by_validate_plan_and_apply(project: Project) -> None:
    # node-pg-migrate imports it and fails only when it gets there, after 001 has run.
    project.write("001_ok.sql", "CREATE TABLE ok (id int);")
    project.write("002_down_only.js", "exports.down = (pgm) => pgm.dropTable('ok');\n")
    for command in ("validate", "plan", "apply"):
        run = project.hmig(command, "--json")
        assert run.code == 2, run.text
        error = run.report()["error"]
        assert error["message"].startswith(
            "migrations/002_down_only.js: it exports no `up` function"
        ), error
        assert "exports.up = (pgm) =>" in error["hint"]
    assert project.database is not None
    assert "ok" not in project.database.tables()


def test_js__rendered_commit__checked_again_when_it_renders_at_run_time(project: Project) -> None:
    # Its pgm.db query writes, so the read-only preview cannot render it: the rendered SQL is
    # checked when it runs, before any of it is sent, and only this migration fails.
    project.write("001_ok.sql", "CREATE TABLE ok (id int);")
    project.write(
        "002_commits.js",
        """
        exports.up = async (pgm) => {
          await pgm.db.query('CREATE TABLE marker (id int)');
          pgm.createTable('half', { id: 'id' });
          pgm.sql('COMMIT');
        };
        """,
    )
    plan = project.hmig("plan", "--json")
    assert plan.code == 0, plan.text
    assert [w["code"] for w in plan.report()["warnings"]] == ["not-rendered"]
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    failure = run.report()["failure"]
    assert failure["file"] == "migrations/002_commits.js"
    assert failure["message"].startswith(
        "up() renders `COMMIT;` (SQL step 2 of 2): COMMIT inside a migration"
    ), failure
    assert "rolled back" in failure["advice"]
    db = project.database
    assert db is not None
    assert db.history() == ["001_ok"]
    # Nothing of 002 stays: neither its pgm.db write nor the table before the COMMIT.
    assert {"marker", "half"} & db.tables() == set()


def _url(conninfo_string: str) -> str:
    """node-postgres wants a URL; a Unix socket directory goes in percent-encoded."""
    params = conninfo.conninfo_to_dict(conninfo_string)
    host = quote(str(params.get("host") or "localhost"), safe="")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{params.get('user', 'postgres')}@{host}{port}/{params['dbname']}"


def _node_pg_migrate(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    assert project.database is not None
    env = {**os.environ, "DATABASE_URL": _url(project.database.url)}
    return subprocess.run(
        ["node", str(NODE_PG_MIGRATE), *args],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_adoption__history_from_real_node_pg_migrate__nothing_runs_again(
    project: Project,
) -> None:
    project.write(
        "1700000000000_create-tenants.js",
        "exports.up = (pgm) => pgm.createTable('tenants', { id: 'id', name: 'text' });\n",
    )
    project.write(
        "1700000000001_add-users.sql",
        "-- Up Migration\nCREATE TABLE users (id serial PRIMARY KEY);\n"
        "-- Down Migration\nDROP TABLE users;\n",
    )
    npm_run = _node_pg_migrate(project, "up", "-m", "migrations")
    assert npm_run.returncode == 0, npm_run.stdout + npm_run.stderr
    db = project.database
    assert db is not None
    assert db.history() == ["1700000000000_create-tenants", "1700000000001_add-users"]
    status = project.hmig("status", "--json")
    assert status.code == 0, status.text
    assert status.report()["pending"] == []
    apply = project.hmig("apply", "--json")
    assert apply.code == 0, apply.text
    report = apply.report()
    assert report["outcome"] == "nothing-to-do"
    assert {w["code"] for w in report["warnings"]} == {"adopted"}
    assert db.rows("SELECT name, adopted FROM hmig_history ORDER BY name") == [
        ("1700000000000_create-tenants", True),
        ("1700000000001_add-users", True),
    ]
    # The team adds the unprefixed files node-pg-migrate 9 refuses; hmig takes over.
    project.write("add-subdomain-to-tenants.sql", "ALTER TABLE tenants ADD COLUMN subdomain text;")
    more = project.hmig("apply", "--json")
    assert more.code == 0, more.text
    assert [r["name"] for r in more.report()["ran"]] == ["add-subdomain-to-tenants"]
    assert db.history()[-1] == "add-subdomain-to-tenants"
    # And node-pg-migrate still reads the history hmig wrote (it refuses the folder itself
    # because of the unprefixed name, exactly as the team's guide says).
    refused = _node_pg_migrate(project, "up", "-m", "migrations")
    assert "Cannot determine numeric prefix" in refused.stdout + refused.stderr


def test_adoption__legacy_up_row__counts_as_applied(project: Project) -> None:
    project.write("001_x.up.sql", "CREATE TABLE x (id int);")
    project.write("001_x.down.sql", "DROP TABLE x;")
    db = project.database
    assert db is not None
    db.execute(
        "CREATE TABLE pgmigrations (id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, "
        "run_on timestamp NOT NULL)"
    )
    db.execute("CREATE TABLE x (id int)")
    db.execute("INSERT INTO pgmigrations (name, run_on) VALUES ('001_x.up', now())")
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    assert run.report()["outcome"] == "nothing-to-do"
    assert "legacy-up-name" in {w["code"] for w in run.report()["warnings"]}
    assert db.history() == ["001_x.up"]


def test_adoption__table_without_primary_key__gets_one(project: Project) -> None:
    db = project.database
    assert db is not None
    # node-pg-migrate v2/v3 created the table without a primary key.
    db.execute(
        "CREATE TABLE pgmigrations (id SERIAL, name varchar(255) NOT NULL, "
        "run_on timestamp NOT NULL)"
    )
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    assert project.hmig("apply").code == 0
    assert (
        db.scalar(
            "SELECT count(*) FROM information_schema.table_constraints WHERE "
            "table_name = 'pgmigrations' AND constraint_type = 'PRIMARY KEY'"
        )
        == 1
    )


def test_example__hospital_applies_and_plans(tmp_path: Path, project: Project) -> None:
    repo = Path(__file__).resolve().parents[2] / "examples" / "hospital"
    manifest = (repo / "hmig.yml").read_text()
    assert "url_env: STAGING_DATABASE_URL" in manifest
    assert project.database is not None
    env = {"STAGING_DATABASE_URL": project.database.url}
    args = ("--manifest", str(repo / "hmig.yml"), "--env", "staging")
    plan = project.hmig("plan", *args, "--json", env=env)
    assert plan.code == 0, plan.text
    assert len(plan.report()["pending"]) == 10
    assert all(p["sql"] for p in plan.report()["pending"])
    apply = project.hmig("apply", *args, "--json", env=env)
    assert apply.code == 0, apply.text
    assert len(apply.report()["ran"]) == 10
    assert {"tenants", "patients", "lab_results", "tenant_branding"} <= project.database.tables()
