"""backup, restore and backups: the recovery commands, the backup adapter wired to an environment.

These commands resolve the environment's database and backup policy, hand the backup adapter
plain values (connection string, server version, database size, the process environment) and
turn what it returns into human lines and the JSON report. They never choose an exit code for
an `HmigError`: the entry point does. `apply`'s backup gate is wired by the engine, which can
reuse `backup_gate` from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import conninfo as pg_conninfo
from psycopg import sql

from hmig import _subprocess, planning, postgres, reporting
from hmig import backup as backup_adapter
from hmig.backup import human_size
from hmig.commands._common import (
    Console,
    Invocation,
    Project,
    Result,
    connect,
    history_tables,
    load_project,
    make_result,
    print_notices,
)
from hmig.errors import BackupFailed, ConfigurationError, HmigError, Refused
from hmig.model import (
    BackupArtifact,
    BackupPolicy,
    MigrationFile,
    Notice,
    Outcome,
    Rendered,
    Target,
)
from hmig.settings import Settings

# --- commands ---------------------------------------------------------------------------------


def backup(
    invocation: Invocation,
    settings: Settings,
    console: Console,
) -> Result:
    """Take a backup now, with the environment's policy (`full` when the policy says none)."""
    project = load_project(invocation)
    policy = on_demand_policy(project)
    notices: list[Notice] = []
    if project.environment.backup is not None and project.environment.backup.mode == "tables":
        notices.append(
            Notice(
                code="backup-full",
                message="backup.mode is tables, but an on-demand backup has no pending "
                "migrations to choose tables from: a full backup was taken",
            )
        )
    with connect(project, settings, console, invocation, check=False) as session:
        conninfo = session.conninfo
        artifact = take_backup(
            project, settings, session=session, conninfo=conninfo, policy=policy, tables=None
        )
        target = session.target
    notices.extend(backup_notices(project, artifact))
    for text in artifact_lines(artifact):
        console.line(text)
    print_notices(console, notices)
    return make_result(
        invocation, project, Outcome.OK, target=target, notices=notices, backup=artifact
    )


def restore(
    invocation: Invocation,
    settings: Settings,
    console: Console,
) -> Result:
    """Restore `--from PATH` into the environment's database, or a new `--into-database`."""
    path = _archive_path(invocation.from_path)
    project = load_project(invocation)
    jobs = project.environment.backup.jobs if project.environment.backup else 1
    notices: list[Notice] = []
    with connect(project, settings, console, invocation) as session:
        conninfo = session.conninfo
        server_version = session.target.server_version or ""
        if invocation.into_database:
            target_info = _create_database(session, conninfo, invocation.into_database)
            try:
                restored = backup_adapter.restore(
                    path=path,
                    conninfo=target_info,
                    server_version=server_version,
                    env=settings.environ,
                    clean=False,
                    jobs=jobs,
                )
            except BaseException:
                _drop_database(session, invocation.into_database)  # hmig created it, empty
                raise
            where = invocation.into_database
        else:
            _confirm_restore(project, session, invocation)
            with postgres.advisory_lock(session, wait_s=invocation.lock_wait_s):
                restored = backup_adapter.restore(
                    path=path,
                    conninfo=conninfo,
                    server_version=server_version,
                    env=settings.environ,
                    clean=True,
                )
            target_info = conninfo
            where = session.target.database
        notices.extend(_dropped_notices(restored))
    console.line(_restored_line(restored, where))
    with _session(target_info, session.target, database=where) as restored_session:
        restored_session.begin(read_only=True)
        try:
            history = history_tables(project, restored_session).read()
        finally:
            restored_session.rollback()
        target = restored_session.target
    plan = project.plan(history)
    console.line("The history table of the restored database now says:")
    for text in reporting.status_lines(plan):
        console.line(text)
    print_notices(console, notices)
    result = make_result(
        invocation,
        project,
        Outcome.OK,
        target=target,
        plan=plan,
        notices=[*plan.notices, *notices],
    )
    return _with(result, restored=restored_report(restored, database=where))


def backups(
    invocation: Invocation,
    settings: Settings,
    console: Console,
) -> Result:
    """List the environment's backups: age, size, and the migrations each one holds."""
    project = load_project(invocation)
    policy = on_demand_policy(project)
    now = datetime.now().astimezone()
    found = backup_adapter.list_backups(policy.dir, environment=project.environment.name, now=now)
    config = project.manifest.migrations
    entries = []
    console.line(
        f"{len(found)} backup(s) of environment {project.environment.name} in {policy.dir}"
    )
    for item in found:
        applied, state = _held_history(
            item, schema=config.schema, table=config.table, settings=settings
        )
        age = (now - item.taken_at).total_seconds()
        console.line(
            f"  {item.path.name}  {_age(age):>9} old  {human_size(item.bytes):>10}  {state}"
        )
        entries.append(
            {
                "path": str(item.path),
                "taken_at": item.taken_at.isoformat(),
                "age_s": round(age),
                "bytes": item.bytes,
                "commit": item.commit,
                "encrypted": item.encrypted,
                "format": "directory" if item.directory else "custom",
                "applied": applied,
                "state": state,
            }
        )
    result = make_result(invocation, project, Outcome.OK, target=None)
    return _with(result, backups=entries)


# --- what apply's backup gate can reuse -------------------------------------------------------


def on_demand_policy(project: Project) -> BackupPolicy:
    """The environment's policy for a backup asked for by name: never `none`, never `tables`."""
    policy = project.environment.backup or BackupPolicy(
        mode="full", required=False, dir=project.manifest.base_dir / "backups"
    )
    if policy.mode in ("none", "tables"):
        policy = dataclasses.replace(policy, mode="full")
    return policy


def backup_gate(
    project: Project,
    settings: Settings,
    *,
    session: postgres.PgSession,
    rendered: Sequence[tuple[MigrationFile, Rendered | None]],
    console: Console,
) -> tuple[BackupArtifact | None, list[Notice]]:
    """The backup before the first migration (or down) runs, under the lock.

    A required backup that fails stops everything (`BackupFailed`, exit 2: nothing was applied);
    one that is not required is reported and the run goes on.
    """
    policy = project.environment.backup
    if policy is None or policy.mode == "none":
        return None, []
    config = project.manifest.migrations
    history = [
        f"{config.schema}.{name}"
        for name in (config.table, "hmig_history", "hmig_audit", "hmig_meta", "hmig_progress")
    ]
    scope = planning.backup_scope(policy.mode, rendered, history_tables=history)
    notices: list[Notice] = []
    if policy.mode == "tables" and scope.tables is None:
        notices.append(Notice(code="backup-full", message=f"backup: {scope.reason}"))
    console.line(f"Taking a backup before the first migration ({scope.reason}) …")
    try:
        artifact = take_backup(
            project,
            settings,
            session=session,
            conninfo=session.conninfo,
            policy=policy,
            tables=scope.tables,
        )
    except HmigError as exc:
        if policy.required:
            raise BackupFailed(
                f"the required backup failed, so no migration was applied: {exc.message}",
                hint=exc.hint
                or "Fix the cause, or set backup.required: false for this environment.",
            ) from exc
        notices.append(
            Notice(
                code="backup-skipped",
                message=f"the backup failed; it is not required (backup.required: false), so "
                f"the migrations ran without one: {exc.message}",
            )
        )
        return None, notices
    for text in artifact_lines(artifact):
        console.line(text)
    notices.extend(backup_notices(project, artifact))
    return artifact, notices


def take_backup(
    project: Project,
    settings: Settings,
    *,
    session: postgres.PgSession,
    conninfo: str,
    policy: BackupPolicy,
    tables: Sequence[str] | None,
) -> BackupArtifact:
    """Take a backup of the connected database with `policy` (the apply gate calls this too)."""
    size = session.fetch(sql.SQL("SELECT pg_catalog.pg_database_size(current_database())"))
    return backup_adapter.take(
        conninfo=conninfo,
        server_version=session.target.server_version or "",
        policy=policy,
        environment=project.environment.name,
        commit=_commit(project, settings),
        tables=tables,
        env=settings.environ,
        database_bytes=int(size[0][0]),
        now=datetime.now().astimezone(),
    )


def backup_notices(project: Project, artifact: BackupArtifact) -> list[Notice]:
    """Warnings about a backup: an unencrypted one of a protected environment."""
    if not project.environment.protected or artifact.encrypted:
        return []
    return [
        Notice(
            code="backup-unencrypted",
            message=f"the backup of protected environment {project.environment.name!r} is not "
            "encrypted: anyone who can read the file (or a workflow artifact of it) can read "
            "the data. Set backup.encrypt.recipients to age public keys.",
        )
    ]


def artifact_lines(artifact: BackupArtifact) -> list[str]:
    """Human lines for a backup taken."""
    what = artifact.mode + (f" ({', '.join(artifact.tables)})" if artifact.tables else "")
    lock = ", encrypted" if artifact.encrypted else ""
    return [
        f"✓ Backup {artifact.path} ({human_size(artifact.bytes)}, {what}, {artifact.format}"
        f"{lock}) in {artifact.duration_ms / 1000:.1f} s, verified ({artifact.verified})",
        f"  sha256 {artifact.sha256} · pg_dump {artifact.pg_dump_version} · "
        f"PostgreSQL {artifact.server_version}",
    ]


def restored_report(restored: backup_adapter.Restored, *, database: str) -> dict[str, Any]:
    """What `restore` did, for the JSON report."""
    return {
        "path": str(restored.path),
        "database": database,
        "pg_restore_version": restored.pg_restore_version,
        "via": restored.via,
        "dropped_settings": list(restored.dropped_settings),
        "duration_ms": round(restored.duration_ms, 1),
    }


# --- internals --------------------------------------------------------------------------------


@contextmanager
def _session(conninfo: str, like: Target, *, database: str) -> Iterator[postgres.PgSession]:
    """A session on another database of `like`'s server, named as `like` names that server."""
    target = dataclasses.replace(like, database=database, server_version=None)
    session = postgres.connect(conninfo, target=target)
    session.target = dataclasses.replace(session.target, host=like.host, port=like.port)
    try:
        yield session
    finally:
        session.close()


def _archive_path(path: Path | None) -> Path:
    if path is None:
        raise ConfigurationError(
            "restore needs the backup to restore",
            hint="Run hmig restore --from PATH (hmig backups lists this environment's).",
        )
    if not path.exists():
        raise ConfigurationError(f"{path} does not exist", hint="Give the path of a backup.")
    return path.resolve()


def _confirm_restore(project: Project, session: postgres.PgSession, invocation: Invocation) -> None:
    """Restoring over a database replaces its data: the user must name what they replace."""
    name = project.environment.name
    where = session.target.describe()
    needed = f"--yes --confirm {name}" + (" --force" if project.environment.protected else "")
    if not invocation.yes or invocation.confirm != name:
        got = f" (--confirm was {invocation.confirm!r})" if invocation.confirm else ""
        raise Refused(
            f"restoring replaces the data of {where} (environment {name!r}): it needs --yes "
            f"and --confirm {name}{got}",
            hint=f"Check the target above, then run again with {needed}; or restore into a "
            "new database with --into-database NAME.",
        )
    if project.environment.protected and not invocation.force:
        raise Refused(
            f"environment {name!r} is protected: restoring over {where} also needs --force",
            hint=f"Run again with {needed}.",
        )


def _create_database(session: postgres.PgSession, conninfo: str, name: str) -> str:
    exists = session.fetch(
        sql.SQL("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %(name)s"), {"name": name}
    )
    if exists:
        raise Refused(
            f"database {name!r} already exists: --into-database creates a new one",
            hint="Choose another name, or restore over the environment's database with "
            "--yes --confirm NAME.",
        )
    session.run(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return pg_conninfo.make_conninfo(conninfo, dbname=name)


def _drop_database(session: postgres.PgSession, name: str) -> None:
    if session.usable():
        session.run(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _dropped_notices(restored: backup_adapter.Restored) -> list[Notice]:
    """Objects made after the backup were dropped with the restore: say which."""
    if not restored.dropped_objects:
        return []
    return [
        Notice(
            code="dropped-newer-objects",
            message=f"{len(restored.dropped_objects)} object(s) not in the backup (made after "
            f"it) were dropped: {', '.join(restored.dropped_objects)}",
        )
    ]


def _restored_line(restored: backup_adapter.Restored, database: str) -> str:
    how = f"pg_restore {restored.pg_restore_version}"
    if restored.via == "psql":
        how += " through psql"
    if restored.dropped_settings:
        how += f"; left out for this server: {' '.join(restored.dropped_settings)}"
    return (
        f"✓ Restored {restored.path.name} into {database} in "
        f"{restored.duration_ms / 1000:.1f} s ({how})"
    )


def _held_history(
    item: backup_adapter.BackupFile, *, schema: str, table: str, settings: Settings
) -> tuple[list[str] | None, str]:
    """The migrations a backup holds as applied, and the same in words."""
    if item.encrypted:
        return None, "encrypted (history not readable without the key)"
    try:
        rows = backup_adapter.history_in(
            item.path, schema=schema, table=table, env=settings.environ
        )
    except HmigError as exc:
        return None, f"unreadable: {exc.message.splitlines()[0]}"
    if rows is None:
        return None, f"no {schema}.{table} data (schema-only backup, or no history yet)"
    ordered = sorted(rows, key=lambda r: (r.get("run_on") or "", int(r.get("id") or 0)))
    names = [str(r.get("name")) for r in ordered]
    if not names:
        return [], "no migration applied"
    return names, f"{len(names)} applied, last {names[-1]}"


def _commit(project: Project, settings: Settings) -> str | None:
    """The commit the backup is taken at: GITHUB_SHA in CI, else the repository's HEAD."""
    if settings.github_sha:
        return settings.github_sha
    try:
        completed = _subprocess.run(
            ["git", "-C", str(project.manifest.base_dir), "rev-parse", "HEAD"],
            env=settings.environ,
            timeout=10.0,
        )
    except HmigError:
        return None
    head = completed.stdout.strip()
    return head if completed.returncode == 0 and head else None


def _with(result: Result, **extra: Any) -> Result:
    return Result(
        outcome=result.outcome, exit_code=result.exit_code, report={**result.report, **extra}
    )


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
