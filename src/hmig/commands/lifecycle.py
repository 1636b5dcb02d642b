"""rollback, baseline and repair: the commands that change the history on purpose.

Each takes the same lock as apply, names its target first, and writes an audit row for every
migration it touches. rollback goes through the same execution as apply, in the down direction.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from hmig import discovery, execution, new_migration, planning, postgres, reporting
from hmig import manifest as manifest_module
from hmig._subprocess import run
from hmig.commands._common import (
    Console,
    Invocation,
    Project,
    Result,
    confirm_write,
    connect,
    history_tables,
    load_project,
    make_result,
    optional_bridge,
    print_notices,
    read_history,
    run_context,
)
from hmig.commands.recovery import backup_gate
from hmig.errors import HmigError, JsMigrationError, Refused
from hmig.model import (
    BackupArtifact,
    Kind,
    MigrationFile,
    Outcome,
    Ran,
    Rendered,
    Repair,
    Retry,
    RunContext,
    RunReport,
    Target,
    TransactionMode,
)
from hmig.node import NodeBridge
from hmig.ports import NoDown
from hmig.settings import Settings

# node-pg-migrate's own words when a `.js` migration has no way down (src/migration.ts).
_NO_DOWN_TEXTS = ("User has disabled down migration", "Impossible to automatically infer down")


def rollback(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Undo the last migration(s), newest first, each with the deletion of its history row."""
    project = load_project(invocation)
    environment = project.environment
    with connect(project, settings, console, invocation) as session:
        if environment.protected and not invocation.yes:
            raise Refused(
                f"environment {environment.name!r} is protected: rollback changes the schema "
                "of a protected database and is never implied",
                hint="Check the target and the plan (--dry-run), then run again with --yes.",
            )
        tables = history_tables(project, session)
        context = run_context(settings)
        with postgres.advisory_lock(session, wait_s=invocation.lock_wait_s):
            history = read_history(session, tables)
            targets = planning.rollback_range(
                project.files,
                history,
                count=invocation.count,
                to=invocation.to,
                renamed=project.manifest.migrations.renamed,
            )
            execution.check_resumable(
                targets, history.progress, progress_table=tables.progress_table, direction="down"
            )
            needs_js = any(m.kind is Kind.JS for m in targets)
            with optional_bridge(project, settings, needed=needs_js) as bridge:
                downs = _render_downs(session, bridge, targets)
                if invocation.dry_run:
                    return _preview(invocation, project, session.target, downs, console)
                # The guide: "Always backup before rollback".
                artifact, notices = backup_gate(
                    project, settings, session=session, rendered=list(downs), console=console
                )
                print_notices(console, notices)
                if artifact is not None:
                    _log_backup(session, tables, artifact, context)
                console.line(f"Rolling back {len(targets)} migration(s), newest first.")
                run = execution.apply(
                    targets,
                    session=session,
                    history=tables,
                    renderer=bridge,
                    options=execution.Options(
                        mode=TransactionMode.PER_MIGRATION,  # each down with its history row
                        lock_timeout_ms=environment.lock_timeout_ms,
                        statement_timeout_ms=environment.statement_timeout_ms,
                        context=context,
                        retry=environment.lock_retry,
                        direction="down",
                    ),
                    progress=_DownProgress(console),
                    done_statements=history.progress,
                    clock=time.monotonic,
                    sleep=time.sleep,
                    jitter=random.random,
                )
            # A session the server ended mid-run cannot read the history again: the run's own
            # report says which rows it deleted.
            after = (
                read_history(session, tables)
                if session.usable()
                else planning.without(
                    history,
                    reverted=[r.name for r in run.ran],
                    files=project.files,
                    renamed=project.manifest.migrations.renamed,
                )
            )
        left = project.plan(after)
        for text in _result_lines(run):
            console.line(text)
        return make_result(
            invocation,
            project,
            run.outcome,
            target=session.target,
            plan=left,
            run=run,
            notices=notices,
            backup=artifact,
        )


def baseline(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Record every migration up to --to as applied, without running it."""
    project = load_project(invocation)
    if invocation.to is None:
        raise Refused("baseline needs --to NAME: the last migration the database already has")
    names = [f.name for f in project.files]
    if invocation.to not in names:
        raise Refused(
            f"--to {invocation.to!r} is not a migration of this project",
            hint="Give the file name without its extension, as `hmig status` lists it.",
        )
    upto = project.files[: names.index(invocation.to) + 1]
    with connect(project, settings, console, invocation) as session:
        confirm_write(project, session, invocation)
        tables = history_tables(project, session)
        context = run_context(settings)
        with postgres.advisory_lock(session, wait_s=invocation.lock_wait_s):
            session.begin()
            try:
                history = tables.read()
                plan_ = project.plan(history)
                pending = {m.name for m in plan_.pending}
                recorded = [m for m in upto if m.name in pending]
                tables.ensure()
                for migration in recorded:
                    tables.record_baseline(migration=migration, context=context)
                session.commit()
            except BaseException:
                session.rollback()
                raise
            after = tables.read()
    skipped = len(upto) - len(recorded)
    if recorded:
        console.line(f"Recorded {len(recorded)} migration(s) as applied, without running them:")
        for migration in recorded:
            console.line(f"  ✓ {migration.name}")
    if skipped:
        console.line(f"{skipped} migration(s) up to {invocation.to} were already applied.")
    left = project.plan(after)
    return make_result(
        invocation,
        project,
        Outcome.OK if recorded else Outcome.NOTHING_TO_DO,
        target=session.target,
        plan=left,
    )


def repair(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Bring the history in line with the files on purpose: what history drift reports.

    Accepts the checksum of applied files changed on purpose and of rows adopted from another
    tool; re-maps a row whose file was renamed (recognised by its content); removes rows no
    file explains and second rows of a migration. Without --yes it only shows what it would do.
    """
    project = load_project(invocation)
    renamed = project.manifest.migrations.renamed
    with connect(project, settings, console, invocation) as session:
        tables = history_tables(project, session)
        context = run_context(settings)
        with postgres.advisory_lock(session, wait_s=invocation.lock_wait_s):
            session.begin()
            try:
                history = tables.read()
                if invocation.yes and history.table_exists:
                    tables.ensure()
                    tables.adopt({f.name: f for f in project.files}, history, context)
                    history = tables.read()
                changes = planning.repairs(project.files, history, renamed=renamed)
                if not changes:
                    session.rollback()
                    console.line("Nothing to repair: the history matches the migration files.")
                    return make_result(
                        invocation, project, Outcome.NOTHING_TO_DO, target=session.target
                    )
                verb = "Repaired" if invocation.yes else "Would repair"
                console.line(f"{verb} {len(changes)} history entr{_ies(len(changes))}:")
                for change in changes:
                    console.line(f"  {_repair_line(change)}")
                    if invocation.yes:
                        _apply_repair(tables, change, context)
                if invocation.yes:
                    session.commit()
                else:
                    session.rollback()
                    console.line("Nothing was written. Run again with --yes to make these changes.")
            except BaseException:
                session.rollback()
                raise
            after = read_history(session, tables)
        return make_result(
            invocation,
            project,
            Outcome.OK,
            target=session.target,
            plan=project.plan(after),
        )


def _ies(count: int) -> str:
    return "y" if count == 1 else "ies"


def _repair_line(change: Repair) -> str:
    if change.action == "remap":
        return f"re-map {change.name} → {change.new_name}: {change.detail}"
    return f"{change.action} {change.name}: {change.detail}"


def _apply_repair(tables: postgres.HistoryTables, change: Repair, context: RunContext) -> None:
    if change.action == "accept":
        assert change.checksum is not None
        tables.accept_checksum(
            name=change.name, checksum=change.checksum, detail=change.detail, context=context
        )
    elif change.action == "remap":
        assert change.row_id is not None and change.new_name is not None
        tables.remap_row(
            row_id=change.row_id,
            name=change.name,
            new_name=change.new_name,
            detail=change.detail,
            context=context,
        )
    else:
        assert change.row_id is not None
        tables.remove_row(
            row_id=change.row_id, name=change.name, detail=change.detail, context=context
        )


def new(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Create `{Date.now()}_{description}.{sql|js}` from a template; print its path alone."""
    manifest = discovery.load_manifest(invocation.manifest_path)
    folder = manifest.migrations.dir
    description = invocation.description or ""
    try:
        name = new_migration.file_name(
            description, now_ms=time.time_ns() // 1_000_000, kind=invocation.new_kind
        )
    except ValueError as exc:
        raise Refused(str(exc)) from exc
    new_migration.check_sorts_last(name, existing=discovery.names(manifest.migrations))
    text = new_migration.template(
        invocation.new_kind,
        description=description,
        date=time.strftime("%Y-%m-%d"),
        author=_git_author(settings),
    )
    path = folder / name
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise Refused(f"{path} already exists; hmig never overwrites a migration") from None
    print(path)  # the path alone on stdout, for scripts: `$EDITOR "$(hmig new …)"`
    environment = manifest_module.select_environment(manifest, invocation.env_name)
    project = Project(manifest=manifest, environment=environment, files=())
    return make_result(invocation, project, Outcome.OK, target=None)


def _git_author(settings: Settings) -> str | None:
    """`git config user.name`, when git and a name are there."""
    try:
        completed = run(["git", "config", "user.name"], env=settings.environ, timeout=10)
    except HmigError:
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def _log_backup(
    session: postgres.PgSession,
    tables: postgres.HistoryTables,
    artifact: BackupArtifact,
    context: RunContext,
) -> None:
    session.begin()
    try:
        tables.record_backup(artifact=artifact, context=context)
        session.commit()
    except BaseException:
        session.rollback()
        raise


# --- helpers ----------------------------------------------------------------------------------


def _render_downs(
    session: postgres.PgSession, bridge: NodeBridge | None, targets: Sequence[MigrationFile]
) -> list[tuple[MigrationFile, Rendered]]:
    """Every down, rendered read-only first: if any has none, nothing runs (exit 2)."""
    rendered: list[tuple[MigrationFile, Rendered]] = []
    missing: list[str] = []
    session.begin(read_only=True)
    try:
        for migration in targets:
            if migration.down_problem is not None:
                problem = migration.down_problem
                where = migration.down_path or migration.path
                line = "" if problem.line is None else f":{problem.line}"
                missing.append(f"{where}{line}: {problem.message}")
                continue
            try:
                down = execution.render(
                    migration, renderer=bridge, query=session.query, direction="down"
                )
                # The same checks as apply's: bad down SQL is refused before anything runs.
                execution.check_rendered(migration, down, direction="down")
                rendered.append((migration, down))
            except NoDown as exc:
                missing.append(f"{migration.path}: {exc.reason}")
            except JsMigrationError as exc:
                if not any(text in exc.reason for text in _NO_DOWN_TEXTS):
                    raise
                missing.append(f"{migration.path}: {exc.reason}")
    finally:
        session.rollback()
    if missing:
        raise Refused(
            f"{len(missing)} migration(s) in the range have no down, so nothing was rolled "
            "back:\n  " + "\n  ".join(missing),
            hint="Add a -- Down Migration section (or exports.down), or roll back fewer.",
        )
    return rendered


def _preview(
    invocation: Invocation,
    project: Project,
    target: Target,
    downs: Sequence[tuple[MigrationFile, Rendered]],
    console: Console,
) -> Result:
    console.line(f"{len(downs)} migration(s) would be rolled back, newest first:")
    console.line()
    for number, (migration, rendered) in enumerate(downs, start=1):
        mode = "in a transaction" if rendered.transactional else f"outside: {rendered.reason}"
        console.line(f"{number}. {migration.name}  ({migration.path}, {mode})")
        for line in rendered.sql.splitlines():
            console.line("   " + line if line else "")
        console.line()
    console.line("Nothing was changed (--dry-run).")
    return make_result(invocation, project, Outcome.OK, target=target, pending=list(downs))


def _result_lines(run: RunReport) -> list[str]:
    if run.cancelled:
        return ["✗ Interrupted: the running rollback was cancelled and rolled back."]
    if run.failure is not None:
        return reporting.failure_lines(run.failure)
    return [f"✓ Rolled back {len(run.ran)} migration(s)."]


class _DownProgress:
    def __init__(self, console: Console) -> None:
        self._console = console

    def started(self, migration: MigrationFile) -> None:
        self._console.line(f"← Reverting {migration.name}")

    def finished(self, ran: Ran) -> None:
        where = "" if ran.transactional else ", outside a transaction"
        self._console.line(f"✓ Reverted {ran.name} ({ran.duration_ms:.0f} ms{where})")

    def retrying(self, retry: Retry) -> None:
        for text in reporting.retry_lines(retry):
            self._console.line(text)
