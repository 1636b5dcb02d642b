"""Bad manifests, files and environments: exit 2, a message naming what is wrong, DB untouched."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.conftest import Project


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            "version: 1\nmigrations: {dir: migrations}\nenvironments:\n  test: {databse: {}}\n",
            "hmig.yml:4: environments.test.databse: unknown key 'databse'",
        ),
        (
            "version: 1\nmigrations: {dir: nowhere}\nenvironments:\n  test: {}\n",
            "migrations folder nowhere does not exist",
        ),
        (
            "version: 1\nmigrations: {dir: migrations\nenvironments: {}\n",
            "hmig.yml:3: invalid YAML",
        ),
        (
            "version: 1\nmigrations: {dir: migrations}\nenvironments:\n"
            "  test:\n    lock_timeout: soon\n",
            "hmig.yml:5: environments.test.lock_timeout",
        ),
    ],
)
def test_bad_manifest__exit_2_names_key_and_line__db_untouched(
    project: Project, manifest: str, expected: str
) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    project.manifest(manifest)
    for command in ("validate", "plan", "apply"):
        run = project.hmig(command, "--json")
        assert run.code == 2, (command, run.text)
        assert expected in run.report()["error"]["message"], run.report()
        assert run.report()["outcome"] == "error"
    assert project.database is not None
    assert project.database.tables() == set()


def test_missing_url_env__exit_2_names_the_variable(project: Project) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    run = project.hmig("apply", env={"HMIG_TEST_URL": ""})
    assert run.code == 2
    assert "$HMIG_TEST_URL, which is empty" in run.text


def test_unknown_environment__exit_2_suggests(project: Project) -> None:
    run = project.hmig("plan", "--env", "tst")
    assert run.code == 2
    assert "environment 'tst' is not defined in hmig.yml (defined: test)" in run.text
    assert "did you mean 'test'?" in run.text


def test_missing_manifest__exit_2(project: Project) -> None:
    run = project.hmig("status", "--manifest", "nope.yml")
    assert run.code == 2
    assert "nope.yml: manifest not found" in run.text


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"001_a.sql": "CREATE TABLE a (id int);", "001_a.js": "exports.up = () => {};"},
            "two migrations are named '001_a'",
        ),
        ({"002_x.down.sql": "DROP TABLE x;"}, "Found .down.sql without matching .up.sql for 002_x"),
        (
            {"003_y.sql": "SELECT 1;", "003_y.up.sql": "SELECT 1;"},
            "Conflicting SQL migration files for 003_y",
        ),
        (
            {"004_syntax.sql": "CREATE TABLE ok (id int);\nCREATE TABLE (;\n"},
            'migrations/004_syntax.sql:2:14: syntax error at or near "("',
        ),
        (
            {"005_txn.sql": "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n"},
            "migrations/005_txn.sql:1:1: BEGIN inside a migration",
        ),
    ],
)
def test_bad_files__exit_2__nothing_runs(
    project: Project, files: dict[str, str], expected: str
) -> None:
    project.write("000_first.sql", "CREATE TABLE first (id int);")
    for name, text in files.items():
        project.write(name, text)
    for command in ("validate", "apply"):
        run = project.hmig(command)
        assert run.code == 2, (command, run.text)
        assert expected in run.text, run.text
    assert project.database is not None
    assert project.database.tables() == set()


def test_validate__needs_no_database(offline_project: Project) -> None:
    offline_project.write("001_a.sql", "CREATE TABLE a (id int);")
    offline_project.write("002_b.js", "exports.up = (pgm) => pgm.createTable('b', { id: 'id' });\n")
    offline_project.write("README.md", "not a migration")
    run = offline_project.hmig("validate", "--json")
    assert run.code == 0, run.text
    assert "2 migrations are valid (1 SQL, 1 JavaScript)" in run.err


def test_cannot_connect__exit_2_names_target_not_password(project: Project) -> None:
    url = "postgresql://someone:Very-Secret-9@127.0.0.1:1/nowhere?connect_timeout=3"
    run = project.hmig("status", "--json", env={"HMIG_TEST_URL": url})
    assert run.code == 2
    assert "cannot connect to someone@127.0.0.1:1/nowhere" in run.text
    assert "Very-Secret-9" not in run.text


@dataclass(frozen=True)
class _Reached:
    """Where a connection to the test's database lands, and what a URL needs besides host/port."""

    host: str
    port: int
    query: str  # `&user=…` when the test URL names a user
    env: dict[str, str]  # PGPASSWORD when the test URL holds one


def _reached(project: Project) -> _Reached:
    assert project.database is not None
    params = conninfo_to_dict(project.database.url)
    with project.database.connect() as conn:
        host, port = conn.info.host, conn.info.port
    return _Reached(
        host=host,
        port=port,
        query=f"&user={params['user']}" if params.get("user") else "",
        env={"PGPASSWORD": str(params["password"])} if params.get("password") else {},
    )


def test_target__several_hosts__named_as_the_one_reached(project: Project) -> None:
    # libpq tries the hosts in turn; the line that names the target, and the report, must show
    # the one the connection reached, not the list and not a guess.
    assert project.database is not None
    reached = _reached(project)
    hosts = f"/nonexistent-hmig-socket-dir,{reached.host}"
    url = f"postgresql:///{project.database.name}?host={hosts}&port={reached.port}{reached.query}"
    run = project.hmig("status", "--json", env={"HMIG_TEST_URL": url, **reached.env})
    assert run.code == 0, run.text
    database = run.report()["database"]
    assert (database["host"], database["port"]) == (reached.host, reached.port)
    assert f"@{reached.host}:{reached.port}/{project.database.name}" in run.err


def test_target__no_port_in_the_url__named_with_the_port_reached(project: Project) -> None:
    assert project.database is not None
    reached = _reached(project)
    url = f"postgresql:///{project.database.name}?host={reached.host}{reached.query}"
    env = {"HMIG_TEST_URL": url, "PGPORT": str(reached.port), **reached.env}
    run = project.hmig("status", "--json", env=env)
    assert run.code == 0, run.text
    assert run.report()["database"]["port"] == reached.port


def test_schema_command__prints_manifest_schema(offline_project: Project) -> None:
    import json

    run = offline_project.hmig("schema")
    assert run.code == 0
    assert json.loads(run.out)["title"] == "hmig manifest (hmig.yml)"
