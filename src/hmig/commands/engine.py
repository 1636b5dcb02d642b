"""validate, status, plan and apply: the engine's commands."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from hmig import __version__, execution, planning, postgres, reporting
from hmig.commands._common import (
    Console,
    Invocation,
    Project,
    Result,
    connect,
    history_tables,
    js_bridge,
    load_project,
    make_result,
    optional_bridge,
    print_notices,
    render_all,
)
from hmig.errors import Refused
from hmig.model import (
    Kind,
    MigrationFile,
    Notice,
    Outcome,
    Plan,
    Ran,
    Retry,
    RunContext,
    RunReport,
    TransactionMode,
)
from hmig.node import NodeBridge
from hmig.settings import Settings

# --- commands ---------------------------------------------------------------------------------


def validate(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Check the manifest and every migration file, without a database."""
    project = load_project(invocation)
    planning.check_runnable(project.files)
    js_files = [f for f in project.files if f.kind is Kind.JS]
    if js_files:
        with js_bridge(project, settings):
            pass  # starting the bridge imports every .js file: syntax and load errors surface
    console.line(
        f"✓ {invocation.manifest_path.name} and {len(project.files)} migrations are valid "
        f"({len(project.files) - len(js_files)} SQL, {len(js_files)} JavaScript)."
    )
    return make_result(invocation, project, Outcome.OK, target=None)


def status(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Applied / pending / unknown, read in a read-only transaction."""
    project = load_project(invocation)
    with connect(project, settings, console, invocation) as session:
        session.begin(read_only=True)
        try:
            history = history_tables(project, session).read()
        finally:
            session.rollback()
        plan = planning.plan(project.files, history)
        for text in reporting.status_lines(plan):
            console.line(text)
        print_notices(console, plan.notices)
        return make_result(
            invocation,
            project,
            Outcome.OK,
            target=session.target,
            plan=plan,
            pending=[(m, None) for m in plan.pending],
        )


def plan(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """What apply would do, with the exact SQL, computed in a read-only transaction."""
    project = load_project(invocation)
    with connect(project, settings, console, invocation) as session:
        session.begin(read_only=True)
        try:
            history = history_tables(project, session).read()
            plan_ = planning.plan(project.files, history, target=invocation.target)
            planning.check_runnable(plan_.to_run)
            rendered = render_all(project, settings, session, plan_.to_run)
        finally:
            session.rollback()
        console.line(reporting.counts(plan_))
        print_notices(console, plan_.notices)
        console.line()
        for text in reporting.plan_lines(rendered):
            console.line(text)
        if project.environment.transaction is TransactionMode.ALL:
            execution.refuse_non_transactional([(m, r) for m, r in rendered if r is not None])
        planning.check_order(plan_, strict=project.environment.strict_order)
        outcome = Outcome.OK if rendered else Outcome.NOTHING_TO_DO
        return make_result(
            invocation, project, outcome, target=session.target, plan=plan_, pending=rendered
        )


def apply(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Apply pending migrations under the lock, each with its history row."""
    project = load_project(invocation)
    environment = project.environment
    with connect(project, settings, console, invocation) as session:
        if environment.protected and invocation.interactive and not invocation.yes:
            raise Refused(
                f"environment {environment.name!r} is protected: applying to "
                f"{session.target.describe()} needs confirmation",
                hint="Check the target above, then run the command again with --yes.",
            )
        tables = history_tables(project, session)
        context = RunContext(
            hmig_version=__version__,
            actor=settings.github_actor,
            commit=settings.github_sha,
            run_id=settings.github_run_id,
        )
        with postgres.advisory_lock(session, wait_s=invocation.lock_wait_s):
            plan_, done, adopted = _prepare(project, session, tables, invocation, context)
            console.line(reporting.counts(plan_))
            print_notices(console, plan_.notices + adopted)
            run = _run(project, settings, session, tables, plan_, done, context, console)
            session.begin(read_only=True)
            try:
                after = tables.read()
            finally:
                session.rollback()
        left = planning.plan(project.files, after)
        for text in reporting.result_lines(run, pending_left=len(left.pending)):
            console.line(text)
        return make_result(
            invocation,
            project,
            run.outcome,
            target=session.target,
            plan=left,
            pending=[(m, None) for m in left.pending],
            run=run,
            notices=plan_.notices + adopted,
        )


# --- apply, step by step ----------------------------------------------------------------------


def _prepare(
    project: Project,
    session: postgres.PgSession,
    tables: postgres.HistoryTables,
    invocation: Invocation,
    context: RunContext,
) -> tuple[Plan, Sequence[Any], tuple[Notice, ...]]:
    """Check everything before writing anything; then create the tables and adopt old rows."""
    session.begin()
    try:
        history = tables.read()
        plan_ = planning.plan(project.files, history, target=invocation.target)
        planning.check_order(plan_, strict=project.environment.strict_order)
        planning.check_runnable(plan_.to_run)
        execution.check_resumable(plan_.to_run, history.progress)
        if project.environment.transaction is TransactionMode.ALL:
            static = [
                (m, execution.render(m, renderer=None, query=session.query))
                for m in plan_.to_run
                if m.kind is Kind.SQL
            ]
            execution.refuse_non_transactional(static)
        tables.ensure()
        adopted_names = tables.adopt({f.name: f for f in project.files}, history, context)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    adopted = tuple(
        Notice(
            code="adopted",
            message=f"{name} was applied by another tool; hmig recorded its current checksum "
            "(unverified until a drift check passes)",
            migration=name,
        )
        for name in adopted_names
    )
    return plan_, history.progress, adopted


def _run(
    project: Project,
    settings: Settings,
    session: postgres.PgSession,
    tables: postgres.HistoryTables,
    plan_: Plan,
    done: Sequence[Any],
    context: RunContext,
    console: Console,
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
    needs_js = any(m.kind is Kind.JS for m in plan_.to_run)
    with optional_bridge(project, settings, needed=needs_js) as bridge:
        if bridge is not None and environment.transaction is TransactionMode.ALL:
            _refuse_js_outside_transaction(session, bridge, plan_.to_run)
        return execution.apply(
            plan_.to_run,
            session=session,
            history=tables,
            renderer=bridge,
            options=options,
            progress=_ConsoleProgress(console),
            done_statements=done,
            clock=time.monotonic,
            sleep=time.sleep,
            jitter=random.random,
        )


def _refuse_js_outside_transaction(
    session: postgres.PgSession, bridge: NodeBridge, pending: Sequence[MigrationFile]
) -> None:
    """`transaction: all`: learn which `.js` migrations call noTransaction() before running."""
    session.begin(read_only=True)
    try:
        rendered = [
            (m, bridge.render(m, direction="up", query=session.query))
            for m in pending
            if m.kind is Kind.JS
        ]
    finally:
        session.rollback()
    execution.refuse_non_transactional(rendered)


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
