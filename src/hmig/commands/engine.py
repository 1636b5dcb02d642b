"""validate, status, plan and apply: the engine's commands."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from hmig import execution, faults, planning, postgres, reporting
from hmig.commands._common import (
    Console,
    Invocation,
    Project,
    Result,
    confirm_write,
    connect,
    history_tables,
    js_bridge,
    lint_pending,
    load_project,
    make_result,
    optional_bridge,
    print_notices,
    read_history,
    render_pending,
    run_context,
)
from hmig.commands.drift import check, schema_passed, unverified, verify_recorded
from hmig.commands.recovery import backup_gate
from hmig.lint import LintReport
from hmig.model import (
    BackupArtifact,
    BackupPlan,
    Drift,
    Finding,
    History,
    Kind,
    MigrationFile,
    Notice,
    Outcome,
    Plan,
    Ran,
    Rendered,
    Retry,
    RunContext,
    RunReport,
    Target,
    TransactionMode,
)
from hmig.node import NodeBridge
from hmig.settings import Settings

# --- commands ---------------------------------------------------------------------------------


def validate(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Check the manifest and every migration file, without a database."""
    project = load_project(invocation)
    planning.check_runnable(project.files, down=True)
    js_files = [f for f in project.files if f.kind is Kind.JS]
    if js_files:
        # Starting the bridge imports every .js file: syntax and load errors surface. Each must
        # also export `up`: node-pg-migrate imports a file without one and fails only when it
        # runs it, after the migrations before it have run.
        with js_bridge(project, settings) as bridge:
            for migration in js_files:
                bridge.require_action(migration, direction="up")
    console.line(
        f"✓ {invocation.manifest_path.name} and {len(project.files)} migrations are valid "
        f"({len(project.files) - len(js_files)} SQL, {len(js_files)} JavaScript)."
    )
    return make_result(invocation, project, Outcome.OK, target=None)


def status(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Applied / pending / unknown, read in a read-only transaction.

    With `drift.check` history (or both), history drift is shown too; status never fails on it.
    """
    project = load_project(invocation)
    with connect(project, settings, console, invocation) as session:
        history = read_history(session, history_tables(project, session))
        plan = project.plan(history)
        found = (
            check(
                project,
                settings,
                console,
                session=session,
                history=history,
                checks=["history"],
                fail=False,
            )
            if "history" in project.environment.drift.checks
            else None
        )
        notices = (*plan.notices, *unverified(project, history, found))
        for text in reporting.status_lines(plan):
            console.line(text)
        print_notices(console, notices)
        if found is not None and found.findings:
            for text in reporting.drift_lines(found, note="status never fails on drift"):
                console.line(text)
        return make_result(
            invocation,
            project,
            Outcome.OK,
            target=session.target,
            plan=plan,
            notices=notices,
            drift=found,
        )


def plan(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """What apply would do, with the exact SQL and its lint, in a read-only transaction."""
    project = load_project(invocation)
    policy = project.environment.drift
    with connect(project, settings, console, invocation) as session:
        # The schema check compares the live catalog: an apply in flight is waited for.
        with _lock_for_schema(session, invocation, checks=policy.checks):
            session.begin(read_only=True)
            try:
                history = history_tables(project, session).read()
                plan_ = project.plan(history, target=invocation.target)
                planning.check_runnable(plan_.to_run)
                preview = _preview(project, settings, session, None, plan_.to_run, strict=True)
            finally:
                session.rollback()
            found = _drift(project, settings, console, session, history)
        notices = (*plan_.notices, *unverified(project, history, found), *preview.notices)
        console.line(reporting.counts(plan_))
        print_notices(console, notices)
        _print_drift(console, found, stops="apply would run nothing")
        console.line()
        for text in reporting.plan_lines(preview.rendered, preview.lint.findings):
            console.line(text)
        _refuse_outside_transaction(project, preview.rendered)
        if found is None or not found.failed:
            planning.check_order(plan_, strict=project.environment.strict_order)
        outcome = Outcome.OK if preview.rendered else Outcome.NOTHING_TO_DO
        backup_plan = _backup_plan(project, preview) if preview.rendered else None
        if backup_plan is not None:
            console.line(_lint_line(project, preview))
            console.line(_backup_line(backup_plan))
        if preview.lint.failed:
            outcome = Outcome.FAILED
        if found is not None and found.failed:
            outcome = Outcome.DRIFT
        return make_result(
            invocation,
            project,
            outcome,
            target=session.target,
            plan=plan_,
            pending=preview.rendered,
            notices=notices,
            findings=_all_findings(preview),
            backup_plan=backup_plan,
            drift=found,
        )


def apply(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Apply pending migrations under the lock, each with its history row.

    Everything is checked (order, files, unfinished statements, lint) in a read-only pass
    before the first write; the same Node process renders for the check and for the run.
    """
    project = load_project(invocation)
    with connect(project, settings, console, invocation) as session:
        confirm_write(project, session, invocation)
        tables = history_tables(project, session)
        context = run_context(settings)
        faults.reached("before-lock")
        with postgres.advisory_lock(session, wait_s=invocation.lock_wait_s):
            history, plan_, found = _check(project, settings, console, session, tables, invocation)
            if found is not None and found.failed:
                return _drift_failed(invocation, project, console, session.target, plan_, found)
            _print_drift(console, found, stops=None)
            needs_js = any(m.kind is Kind.JS for m in plan_.to_run)
            with optional_bridge(project, settings, needed=needs_js) as bridge:
                session.begin(read_only=True)
                try:
                    preview = _preview(
                        project, settings, session, bridge, plan_.to_run, strict=False
                    )
                finally:
                    session.rollback()
                _refuse_outside_transaction(project, preview.rendered)
                _print_preview(console, project, plan_, preview)
                if preview.lint.failed:
                    return _lint_failed(invocation, project, session.target, plan_, preview)
                artifact, backup_notices = (
                    backup_gate(
                        project,
                        settings,
                        session=session,
                        rendered=preview.rendered,
                        console=console,
                    )
                    if plan_.to_run
                    else (None, [])
                )
                adopted = _bookkeep(
                    session,
                    tables,
                    project,
                    history,
                    context,
                    artifact,
                    verify=schema_passed(found),
                )
                skip = {n.migration for n in adopted if n.migration}
                notices = (
                    *plan_.notices,
                    *unverified(project, history, found, skip=skip),
                    *preview.notices,
                    *backup_notices,
                    *adopted,
                )
                print_notices(console, notices)
                run = _run(project, session, tables, plan_, history, context, console, bridge)
            left = _left(project, session, tables, plan_, run)
        for text in reporting.result_lines(run, pending_left=len(left.pending)):
            console.line(text)
        return make_result(
            invocation,
            project,
            run.outcome,
            target=session.target,
            plan=left,
            run=run,
            notices=notices,
            findings=_all_findings(preview),
            backup=artifact,
            drift=found,
        )


# --- apply, step by step ----------------------------------------------------------------------


def _left(
    project: Project,
    session: postgres.PgSession,
    tables: postgres.HistoryTables,
    plan_: Plan,
    run: RunReport,
) -> Plan:
    """The plan after the run, from the history as committed.

    When the server ended the session mid-run (pg_terminate_backend, a restart), the history
    cannot be read again; the run's own report says what was applied before that, so it is
    taken off what is pending rather than losing the report to a second connection error.
    """
    if session.usable():
        after = read_history(session, tables)
        return project.plan(after)
    ran = {r.name for r in run.ran}
    return dataclasses.replace(
        plan_,
        pending=tuple(m for m in plan_.pending if m.name not in ran),
        to_run=tuple(m for m in plan_.to_run if m.name not in ran),
    )


@dataclass(frozen=True, slots=True)
class _Preview:
    rendered: list[tuple[MigrationFile, Rendered | None]]
    notices: list[Notice]
    lint: LintReport


def _print_preview(console: Console, project: Project, plan_: Plan, preview: _Preview) -> None:
    """What apply is about to do: the counts, and lint when it ran."""
    console.line(reporting.counts(plan_))
    for text in reporting.finding_lines(_all_findings(preview)):
        console.line(text)
    if preview.rendered and project.environment.lint.fail_on != "never":
        console.line(_lint_line(project, preview))


def _check(
    project: Project,
    settings: Settings,
    console: Console,
    session: postgres.PgSession,
    tables: postgres.HistoryTables,
    invocation: Invocation,
) -> tuple[History, Plan, Drift | None]:
    """Everything that can refuse the run, read-only, before anything is written.

    Drift that fails the run is returned, not raised: the caller reports it (exit 1) before the
    backup, before hmig's own bookkeeping, before any migration.
    """
    history = read_history(session, tables)
    plan_ = project.plan(history, target=invocation.target)
    planning.check_runnable(plan_.to_run)
    execution.check_resumable(plan_.to_run, history.progress, progress_table=tables.progress_table)
    found = _drift(project, settings, console, session, history)
    if found is None or not found.failed:
        planning.check_order(plan_, strict=project.environment.strict_order)
    return history, plan_, found


def _drift(
    project: Project,
    settings: Settings,
    console: Console,
    session: postgres.PgSession,
    history: History,
) -> Drift | None:
    """The environment's drift checks; None when its policy is `check: none`."""
    policy = project.environment.drift
    if not policy.checks:
        return None
    return check(
        project,
        settings,
        console,
        session=session,
        history=history,
        checks=policy.checks,
        fail=policy.fail,
    )


def _lock_for_schema(
    session: postgres.PgSession, invocation: Invocation, *, checks: Sequence[str]
) -> AbstractContextManager[None]:
    """The migration lock for `plan`, held only when it compares the live schema."""
    if "schema" in checks:
        return postgres.advisory_lock(session, wait_s=invocation.lock_wait_s)
    return nullcontext()


def _print_drift(console: Console, found: Drift | None, *, stops: str | None) -> None:
    if found is None or (not found.findings and "schema" not in found.checked):
        return  # a clean history check is not news; a clean schema check took a while
    for text in reporting.drift_lines(found, note="drift.fail: false, so the run goes on"):
        console.line(text)
    if found.failed and stops:
        console.line(f"✗ drift.fail is true: {stops}.")


def _drift_failed(
    invocation: Invocation,
    project: Project,
    console: Console,
    target: Target,
    plan_: Plan,
    found: Drift,
) -> Result:
    """Drift stops apply before the backup and before any write (exit 1, outcome drift)."""
    console.line(reporting.counts(plan_))
    _print_drift(console, found, stops="nothing was applied, and nothing was written")
    return make_result(
        invocation,
        project,
        Outcome.DRIFT,
        target=target,
        plan=plan_,
        notices=plan_.notices,
        drift=found,
    )


def _preview(
    project: Project,
    settings: Settings,
    session: postgres.PgSession,
    bridge: NodeBridge | None,
    pending: Sequence[MigrationFile],
    *,
    strict: bool,
) -> _Preview:
    """Render and lint what will run, in the caller's read-only transaction."""
    if bridge is None and any(m.kind is Kind.JS for m in pending):
        with optional_bridge(project, settings, needed=True) as own:
            return _preview(project, settings, session, own, pending, strict=strict)
    rendered, notices = render_pending(session, bridge, pending, strict=strict)
    if not strict and project.environment.lint.fail_on == "never":
        # apply lints only when findings can stop it; `plan` always shows them.
        return _Preview(rendered, notices, LintReport(findings=(), unused_ignores=(), failed=False))
    return _Preview(rendered, notices, lint_pending(project, settings, session, rendered))


def _refuse_outside_transaction(
    project: Project, rendered: Sequence[tuple[MigrationFile, Rendered | None]]
) -> None:
    """`transaction: all` cannot hold a migration that must run outside a transaction."""
    if project.environment.transaction is TransactionMode.ALL:
        execution.refuse_non_transactional([(m, r) for m, r in rendered if r is not None])


def _bookkeep(
    session: postgres.PgSession,
    tables: postgres.HistoryTables,
    project: Project,
    history: History,
    context: RunContext,
    artifact: BackupArtifact | None,
    *,
    verify: bool,
) -> tuple[Notice, ...]:
    """Create hmig's tables when missing, adopt rows other tools wrote, log the backup.

    With `verify` (a schema check just passed), adopted rows are marked verified.
    """
    session.begin()
    try:
        tables.ensure()
        adopted_names = tables.adopt({f.name: f for f in project.files}, history, context)
        if verify:
            verify_recorded(project, tables, tables.read(), context)
        if artifact is not None:
            tables.record_backup(artifact=artifact, context=context)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    state = (
        "verified by the schema drift check" if verify else "unverified until a drift check passes"
    )
    return tuple(
        Notice(
            code="adopted",
            message=f"{name} was applied by another tool; hmig recorded its current checksum "
            f"({state})",
            migration=name,
        )
        for name in adopted_names
    )


def _all_findings(preview: _Preview) -> tuple[Finding, ...]:
    return (*preview.lint.findings, *preview.lint.unused_ignores)


def _lint_line(project: Project, preview: _Preview) -> str:
    return reporting.lint_summary(
        _all_findings(preview),
        failed=preview.lint.failed,
        fail_on=project.environment.lint.fail_on,
    )


def _backup_plan(project: Project, preview: _Preview) -> BackupPlan:
    """What apply will back up first, and why (for `backup.mode: tables`, which tables)."""
    policy = project.environment.backup
    if policy is None or policy.mode == "none":
        return BackupPlan(
            mode="none", required=False, description="none before apply (backup.mode: none)"
        )
    config = project.manifest.migrations
    scope = planning.backup_scope(
        policy.mode, preview.rendered, history_tables=[f"{config.schema}.{config.table}"]
    )
    required = "required" if policy.required else "not required"
    return BackupPlan(
        mode=policy.mode,
        required=policy.required,
        description=f"{scope.reason} ({required}, verify: {policy.verify})",
    )


def _backup_line(backup_plan: BackupPlan) -> str:
    if backup_plan.mode == "none":
        return f"Backup: {backup_plan.description}."
    return f"Backup before apply: {backup_plan.description}."


def _lint_failed(
    invocation: Invocation,
    project: Project,
    target: Target,
    plan_: Plan,
    preview: _Preview,
) -> Result:
    return make_result(
        invocation,
        project,
        Outcome.FAILED,
        target=target,
        plan=plan_,
        pending=preview.rendered,
        notices=(*plan_.notices, *preview.notices),
        findings=_all_findings(preview),
    )


def _run(
    project: Project,
    session: postgres.PgSession,
    tables: postgres.HistoryTables,
    plan_: Plan,
    history: History,
    context: RunContext,
    console: Console,
    bridge: NodeBridge | None,
) -> RunReport:
    if not plan_.to_run:
        return RunReport(ran=())
    environment = project.environment
    options = execution.Options(
        mode=environment.transaction,
        lock_timeout_ms=environment.lock_timeout_ms,
        statement_timeout_ms=environment.statement_timeout_ms,
        context=context,
        retry=environment.lock_retry,
    )
    return execution.apply(
        plan_.to_run,
        session=session,
        history=tables,
        renderer=bridge,
        options=options,
        progress=_ConsoleProgress(console),
        done_statements=history.progress,
        clock=time.monotonic,
        sleep=time.sleep,
        jitter=random.random,
    )


class _ConsoleProgress:
    def __init__(self, console: Console) -> None:
        self._console = console

    def started(self, migration: MigrationFile) -> None:
        self._console.line(reporting.started_line(migration))

    def finished(self, ran: Ran) -> None:
        self._console.line(reporting.finished_line(ran))

    def retrying(self, retry: Retry) -> None:
        for text in reporting.retry_lines(retry):
            self._console.line(text)
