"""Issue 7's secrets test: a distinctive password and token never appear in anything hmig makes.

Against the private SCRAM cluster of `test_auth.py` (the password is really checked, for a
non-superuser role), every hmig command runs with `--json`, once per way the password can
arrive: inside the URL (`url_env`, as a URL and as a libpq `password=` string), in
`DATABASE_URL`, as `DB_PASSWORD` with the guide's `DB_*` variables, and as `PGPASSWORD` beside a
URL without one. Then the Action runs every command with the password in its `database-url`
input and a distinctive GitHub token, against the fake GitHub.
Failing runs are included: a wrong password (the connection error must not echo it) and a
migration that fails.

Everything produced is scanned: stdout, stderr, the JSON reports, every file written in the
project and the runner's folder (names and bytes: backups, reports, `$GITHUB_OUTPUT`, the job
summary, new migration files), the comment bodies and every request body the fake GitHub
received, and annotations. The password is looked for raw, percent-encoded (both ways) and by
its random core, so a partial or re-encoded leak counts too. The only lines allowed to hold a
secret are the Action's live `::add-mask::` commands: the runner consumes them and shows
nothing (github-actions.md, "Masking a value in a log").
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import psycopg
import pytest
from psycopg import conninfo, sql

from tests.conftest import Database, Project, Run, Server
from tests.fakegithub import FakeGitHub
from tests.integration.test_action import (
    HEAD,
    MERGE,
    REPO,
    ActionRun,
    pr_event,
    push_event,
    run_action,
)
from tests.integration.test_auth import scram_server

__all__ = ["scram_server"]  # a fixture: imported so pytest finds it for this module

CORE = secrets.token_hex(6)
# URL-special characters on purpose: `+` (a space in a query string), `/`, `@`, `:`, `%`, `?`.
PASSWORD = f"Pw{CORE}+/@:%?&=Z"
TOKEN = f"ghs_Tk{secrets.token_hex(12)}"
WRONG = f"Wr0ng{secrets.token_hex(6)}+/@"

MIGRATIONS = {
    "001_patients.sql": (
        "-- Up Migration\nCREATE TABLE patients (id bigint PRIMARY KEY, name text NOT NULL);\n"
        "INSERT INTO patients VALUES (1, 'Ada');\n-- Down Migration\nDROP TABLE patients;\n"
    ),
    "002_wards.js": (
        "exports.up = (pgm) => {\n  pgm.createTable('wards', { id: 'id', name: 'text' });\n};\n"
    ),
    "003_notes.sql": (
        "-- Up Migration\nALTER TABLE patients ADD COLUMN note text;\n"
        "-- Down Migration\nALTER TABLE patients DROP COLUMN note;\n"
    ),
}
FAILING = {"004_broken.sql": "SELECT * FROM no_such_table;\n"}
BACKUP = "    backup: {mode: full, required: true, dir: backups}\n"


def forms(secret: str) -> list[str]:
    """Every way a secret could leak: raw, percent-encoded, form-encoded."""
    return sorted({secret, quote(secret, safe=""), quote(secret), quote_plus(secret)})


# The random cores catch a leak of part of a secret, or of a form not listed here.
SECRETS = [*forms(PASSWORD), CORE, TOKEN, TOKEN.removeprefix("ghs_Tk"), *forms(WRONG)]


@dataclass
class Produced:
    """Everything the runs wrote, to be scanned at the end."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, text: str) -> None:
        self.texts[f"{label} #{len(self.texts)}"] = text

    def add_run(self, label: str, run: Run) -> None:
        self.add(f"{label} stdout", run.out)
        self.add(f"{label} stderr", run.err)

    def add_tree(self, root: Path) -> None:
        """Names and bytes of every file under `root` (binary files decoded leniently)."""
        for path in sorted(root.rglob("*")):
            self.add(f"path {path}", str(path.relative_to(root)))
            if path.is_file() and not path.is_symlink():
                self.add(f"file {path}", path.read_bytes().decode("utf-8", "replace"))

    def leaks(self, needles: list[str]) -> list[str]:
        return [
            f"{label}: {needle!r}"
            for label, text in self.texts.items()
            for needle in needles
            if needle in text
        ]


# --- the cluster and one database per test -----------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A database on the SCRAM cluster, owned by the password-only `migrator` role."""

    server: Server
    socket_dir: str
    port: str
    name: str

    def url(self, *, password: str | None = PASSWORD, database: str | None = None) -> str:
        auth = "migrator" if password is None else f"migrator:{quote(password, safe='')}"
        return (
            f"postgresql://{auth}@/{database or self.name}"
            f"?host={quote(self.socket_dir, safe='')}&port={self.port}"
        )

    def keywords(self, password: str) -> str:
        """The same target as a libpq keyword/value string (`password=…`)."""
        return conninfo.make_conninfo(
            host=self.socket_dir,
            port=self.port,
            dbname=self.name,
            user="migrator",
            password=password,
        )

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.server.admin_url, autocommit=True)


@pytest.fixture(scope="module")
def cluster(scram_server: tuple[Server, str]) -> tuple[Server, str]:
    """The SCRAM cluster with this module's distinctive password, and CREATEDB for restore."""
    server, socket_dir = scram_server
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE migrator CREATEDB PASSWORD {}").format(sql.Literal(PASSWORD))
        )
    return server, socket_dir


@pytest.fixture
def target(cluster: tuple[Server, str]) -> Iterator[Target]:
    server, socket_dir = cluster
    port = str(conninfo.conninfo_to_dict(server.admin_url).get("port") or "5432")
    created = Target(server, socket_dir, port, f"app_{secrets.token_hex(4)}")
    with created.admin() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER migrator").format(sql.Identifier(created.name))
        )
    yield created
    with created.admin() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (created.name + "%",)
        ).fetchall()
        for (name,) in rows:
            drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(str(name)))
            conn.execute(drop)


def _database_text(target: Target, database: str, *, applied: str | None = None) -> str:
    """Every row of every table in `database`, hmig's history and audit tables included."""
    server = target.server
    with psycopg.connect(server.url_for(database), autocommit=True) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        rows = [
            str(row)
            for schema, table in tables
            for row in conn.execute(
                sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(schema, table))
            ).fetchall()
        ]
    if applied is not None:
        assert any(applied in row for row in rows), f"no row mentions {applied}"
    return "\n".join(rows)


def _password_is_required(target: Target) -> None:
    """Without the password the role cannot log in: the runs below really sent it."""
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(target.url(password=None), connect_timeout=5).close()


# --- the CLI, every command, five ways to give the password ---------------------------------

_URL_ENV = (
    "version: 1\nmigrations:\n  dir: migrations\nenvironments:\n  test:\n"
    "    database:\n      url_env: HMIG_TEST_URL\n" + BACKUP
)
_NO_DATABASE = "version: 1\nmigrations:\n  dir: migrations\nenvironments:\n  test:\n" + BACKUP


def _route(target: Target, route: str) -> tuple[str, dict[str, str]]:
    """The manifest and the variables that give hmig the password `route`'s way."""
    if route == "url":
        return _URL_ENV, {"HMIG_TEST_URL": target.url()}
    if route == "pgpassword":
        return _URL_ENV, {"HMIG_TEST_URL": target.url(password=None), "PGPASSWORD": PASSWORD}
    if route == "keyword-dsn":
        return _URL_ENV, {"HMIG_TEST_URL": target.keywords(PASSWORD)}
    if route == "database-url-variable":
        return _NO_DATABASE, {"HMIG_TEST_URL": "", "DATABASE_URL": target.url()}
    assert route == "db-variables"
    return _NO_DATABASE, {
        "HMIG_TEST_URL": "",
        "DB_HOST": target.socket_dir,
        "DB_PORT": target.port,
        "DB_NAME": target.name,
        "DB_USER": "migrator",
        "DB_PASSWORD": PASSWORD,
    }


def _project(tmp_path: Path, target: Target, manifest: str, env: dict[str, str]) -> Project:
    root = tmp_path / "repo"
    (root / "migrations").mkdir(parents=True)
    # The Database's url is what conftest exports as HMIG_TEST_URL; the route overrides it.
    project = Project(root, Database(target.server, target.name, target.url()), env=env)
    project.manifest(manifest)
    for name, text in MIGRATIONS.items():
        project.write(name, text)
    return project


def _ok(produced: Produced, project: Project, *args: str, code: int = 0) -> Run:
    run = project.hmig(*args, "--json")
    produced.add_run(" ".join(args), run)
    assert run.code == code, (args, run.err[-3000:])
    assert "Traceback" not in run.text
    return run


ROUTES = ["url", "keyword-dsn", "database-url-variable", "db-variables", "pgpassword"]


@pytest.mark.parametrize("route", ROUTES)
def test_every_command__password_never_shown(tmp_path: Path, target: Target, route: str) -> None:
    _password_is_required(target)
    manifest, env = _route(target, route)
    project = _project(tmp_path, target, manifest, env)
    produced = Produced()

    _ok(produced, project, "validate")
    status = _ok(produced, project, "status")
    assert status.report()["database"]["name"] == target.name  # it logged in with the password
    plan = _ok(produced, project, "plan")
    assert [p["name"] for p in plan.report()["pending"]] == [
        "001_patients",
        "002_wards",
        "003_notes",
    ]
    backup = _ok(produced, project, "backup")
    dump = Path(backup.report()["backup"]["path"])
    _ok(produced, project, "backups")
    apply = _ok(produced, project, "apply")
    assert [r["name"] for r in apply.report()["ran"]] == ["001_patients", "002_wards", "003_notes"]
    _ok(produced, project, "drift", "--check", "history")
    _ok(produced, project, "rollback", "--dry-run")
    rollback = _ok(produced, project, "rollback")
    assert [r["name"] for r in rollback.report()["ran"]] == ["003_notes"]
    _ok(produced, project, "baseline", "--to", "003_notes")
    _ok(produced, project, "repair")
    _ok(produced, project, "repair", "--yes")
    copy = target.name + "_restored"
    restore = _ok(produced, project, "restore", "--from", str(dump), "--into-database", copy)
    assert restore.report()["restored"]["database"] == copy
    _ok(produced, project, "new", "add wards index")

    # Failing runs: a migration that fails, then a wrong password.
    for name, text in FAILING.items():
        project.write(name, text)
    failed = _ok(produced, project, "apply", code=1)
    assert failed.report()["failure"]["migration"] == "004_broken"
    wrong = {**env}
    if route == "url":
        wrong["HMIG_TEST_URL"] = target.url(password=WRONG)
    elif route == "keyword-dsn":
        wrong["HMIG_TEST_URL"] = target.keywords(WRONG)
    elif route == "database-url-variable":
        wrong["DATABASE_URL"] = target.url(password=WRONG)
    elif route == "pgpassword":
        wrong["PGPASSWORD"] = WRONG
    else:
        wrong["DB_PASSWORD"] = WRONG
    for command in ("status", "apply"):
        run = project.hmig(command, "--json", env=wrong)
        produced.add_run(f"{command} with a wrong password", run)
        assert run.code == 2, run.err[-3000:]
        assert "password authentication failed" in run.report()["error"]["message"]
        assert not [f for f in forms(WRONG) if f in run.text], run.text

    produced.add_tree(project.root)
    produced.add("database", _database_text(target, target.name, applied="003_notes"))
    produced.add("restored database", _database_text(target, copy))
    assert dump.exists()
    assert produced.leaks(SECRETS) == []


# --- the Action, every deploy command, the password in `database-url` -------------------------


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as gh:
        gh.add_token(TOKEN, login="github-actions[bot]", type="Bot", can_write=True)
        gh.add_pull(REPO, 7, head_sha=HEAD, merge_commit_sha=MERGE, state="open")
        yield gh


def _without_mask_commands(log: str) -> str:
    """The log as the runner shows it: live `::add-mask::` commands are consumed, not printed."""
    shown: list[str] = []
    stopped: str | None = None
    for line in log.splitlines():
        if stopped is not None:
            if line == f"::{stopped}::":
                stopped = None
            shown.append(line)
            continue
        if line.startswith("::stop-commands::"):
            stopped = line.removeprefix("::stop-commands::")
        elif line.startswith("::add-mask::"):
            continue
        shown.append(line)
    return "\n".join(shown)


def _mask_values(log: str) -> set[str]:
    """The values of `::add-mask::` commands, unescaped as the runner does (`%25` is `%`)."""
    return {
        line.removeprefix("::add-mask::")
        .replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%25", "%")
        for line in log.splitlines()
        if line.startswith("::add-mask::")
    }


def _add_action_run(produced: Produced, label: str, run: ActionRun) -> None:
    produced.add(f"action {label} stdout", _without_mask_commands(run.out))
    produced.add(f"action {label} stderr", run.err)
    produced.add(f"action {label} summary", run.summary)
    for name, value in run.outputs.items():
        produced.add(f"action {label} output {name}", value)


ACTION_COMMANDS = [
    # (command, args, event, expected exit code)
    ("validate", "", "pull_request", 0),
    ("status", "", "pull_request", 0),
    ("plan", "", "pull_request", 0),
    ("backup", "", "push", 0),
    ("backups", "", "push", 0),
    ("restore", "--from {backup} --into-database {copy}", "push", 0),
    ("apply", "", "push", 0),
    ("drift", "--check history", "push", 0),
    ("rollback", "--dry-run", "push", 0),
    ("rollback", "", "push", 0),
    ("baseline", "--to 003_notes", "push", 0),
    ("repair", "", "push", 0),
    ("repair", "--yes", "push", 0),
    ("plan", "", "pull_request", 0),
    ("new", "add wards index", "push", 0),
]


def test_action__every_command__password_and_token_never_shown(
    tmp_path: Path, target: Target, github: FakeGitHub
) -> None:
    _password_is_required(target)
    # HMIG_TEST_URL has no password: only the `database-url` input can log in.
    project = _project(tmp_path, target, _URL_ENV, {"HMIG_TEST_URL": target.url(password=None)})
    produced = Produced()
    url = target.url()
    backup = ""
    for command, template, event_name, code in ACTION_COMMANDS:
        args = template.format(backup=backup, copy=target.name + "_restored")
        event = pr_event() if event_name == "pull_request" else push_event()
        run = run_action(
            project,
            github,
            command=command,
            args=args,
            event_name=event_name,
            event=event,
            token=TOKEN,
            database_url=url,
            comment="always",
        )
        label = f"{command} {args}".strip()
        _add_action_run(produced, label, run)
        assert run.code == code, (label, run.out[-3000:], run.err[-2000:])
        assert "Traceback" not in run.out + run.err
        # The runner is told to mask the secrets before anything else is printed.
        first = run.out.lstrip().splitlines()[0]
        assert first.startswith("::add-mask::"), first
        backup = run.outputs.get("backup-path") or backup
    assert backup, "the backup command reported the file it wrote"

    for name, text in FAILING.items():
        project.write(name, text)
    failed = run_action(
        project,
        github,
        command="apply",
        event_name="push",
        event=push_event(),
        token=TOKEN,
        database_url=url,
        comment="always",
    )
    _add_action_run(produced, "failing apply", failed)
    assert failed.code == 1, failed.out[-3000:]
    assert failed.annotations("error"), failed.out[-3000:]

    wrong = run_action(
        project,
        github,
        command="plan",
        token=TOKEN,
        database_url=target.url(password=WRONG),
        comment="always",
    )
    _add_action_run(produced, "wrong password", wrong)
    assert wrong.code == 2, wrong.out[-3000:]
    assert not [f for f in forms(WRONG) if f in _without_mask_commands(wrong.out) + wrong.err]

    comments = github.comments(REPO, 7)
    assert comments, "the Action commented: the token was used"
    for comment in comments:
        produced.add(f"comment {comment['id']}", comment["body"])
    for request in github.requests:
        produced.add(f"request {request.method} {request.path}", f"{request.query} {request.json}")
    produced.add_tree(project.root)
    produced.add_tree(project.root.parent / "runner")
    produced.add("database", _database_text(target, target.name, applied="003_notes"))
    assert produced.leaks(SECRETS) == []
    # The secrets did reach the Action: it told the runner to mask them (lines scanned out).
    masks = _mask_values(failed.out)
    assert TOKEN in masks
    assert PASSWORD in masks
    assert url in masks  # the whole DSN too, so no part of it shows either
