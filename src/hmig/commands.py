"""The commands (validate, status, plan, apply): adapters wired to the core.

This is the composition root the CLI (and later the Action) calls. It builds the adapters,
passes values through the core, and returns a `Result`; it never picks an exit code for an
`HmigError` itself: the entry point does that, from the error's class.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hmig import (
    __version__,
    binaries,
    discovery,
    embedded,
    execution,
    planning,
    postgres,
    reporting,
)
from hmig import manifest as manifest_module
from hmig.errors import ExitCode, Refused
from hmig.model import (
    Environment,
    Kind,
    Manifest,
    MigrationFile,
    Notice,
    Outcome,
    Plan,
    Ran,
    Rendered,
    RunContext,
    RunReport,
    Target,
    TransactionMode,
)
from hmig.node import BRIDGE_DIR, NodeBridge
from hmig.settings import Settings, conninfo_for


class Console(Protocol):
    """Where human text goes (stdout, or stderr under --json)."""

    def line(self, text: str = "") -> None:
        """Print one line."""


@dataclass(frozen=True, slots=True)
class Invocation:
    """What the user asked for on the command line."""

    command: str
    manifest_path: Path
    env_name: str | None = None
    lock_wait_s: float = 60.0
    yes: bool = False
    interactive: bool = False
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """A finished command: its outcome and the JSON report."""

    outcome: Outcome
    exit_code: ExitCode
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Project:
    """The manifest, the chosen environment, and the migrations in execution order."""

    manifest: Manifest
    environment: Environment
    files: tuple[MigrationFile, ...]


def load_project(invocation: Invocation) -> Project:
    """Read the manifest and the migrations folder (no database)."""
    manifest = discovery.load_manifest(invocation.manifest_path)
    environment = manifest_module.select_environment(manifest, invocation.env_name)
    found = discovery.discover(manifest.migrations, base_dir=manifest.base_dir)
    ordered = planning.order(
        found, explicit=manifest.migrations.order, manifest_file=manifest.path.name
    )
    return Project(manifest=manifest, environment=environment, files=ordered)


# --- commands ---------------------------------------------------------------------------------


def validate(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Check the manifest and every migration file, without a database."""
    project = load_project(invocation)
    planning.check_runnable(project.files)
    js_files = [f for f in project.files if f.kind is Kind.JS]
    if js_files:
        with _bridge(project, settings):
            pass  # starting the bridge imports every .js file: syntax and load errors surface
    console.line(
        f"✓ {invocation.manifest_path.name} and {len(project.files)} migrations are valid "
        f"({len(project.files) - len(js_files)} SQL, {len(js_files)} JavaScript)."
    )
    return _result(invocation, project, Outcome.OK, target=None)


def status(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Applied / pending / unknown, read in a read-only transaction."""
    project = load_project(invocation)
    with _database(project, settings, console, invocation) as session:
        session.begin(read_only=True)
        try:
            history = _tables(project, session).read()
        finally:
            session.rollback()
        plan = planning.plan(project.files, history)
        for text in reporting.status_lines(plan):
            console.line(text)
        _notices(console, plan.notices)
        return _result(
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
    with _database(project, settings, console, invocation) as session:
        session.begin(read_only=True)
        try:
            history = _tables(project, session).read()
            plan_ = planning.plan(project.files, history, target=invocation.target)
            planning.check_runnable(plan_.to_run)
            rendered = _render_all(project, settings, session, plan_.to_run)
        finally:
            session.rollback()
        console.line(reporting.counts(plan_))
        _notices(console, plan_.notices)
        console.line()
        for text in reporting.plan_lines(rendered):
            console.line(text)
        if project.environment.transaction is TransactionMode.ALL:
            execution.refuse_non_transactional([(m, r) for m, r in rendered if r is not None])
        planning.check_order(plan_, strict=project.environment.strict_order)
        outcome = Outcome.OK if rendered else Outcome.NOTHING_TO_DO
        return _result(
            invocation, project, outcome, target=session.target, plan=plan_, pending=rendered
        )


def apply(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Apply pending migrations under the lock, each with its history row."""
    project = load_project(invocation)
    environment = project.environment
    with _database(project, settings, console, invocation) as session:
        if environment.protected and invocation.interactive and not invocation.yes:
            raise Refused(
                f"environment {environment.name!r} is protected: applying to "
                f"{session.target.describe()} needs confirmation",
                hint="Check the target above, then run the command again with --yes.",
            )
        tables = _tables(project, session)
        context = RunContext(
            hmig_version=__version__,
            actor=settings.github_actor,
            commit=settings.github_sha,
            run_id=settings.github_run_id,
        )
        with postgres.advisory_lock(session, wait_s=invocation.lock_wait_s):
            plan_, done, adopted = _prepare(project, session, tables, invocation, context)
            console.line(reporting.counts(plan_))
            _notices(console, plan_.notices + adopted)
            run = _run(project, settings, session, tables, plan_, done, context, console)
            session.begin(read_only=True)
            try:
                after = tables.read()
            finally:
                session.rollback()
        left = planning.plan(project.files, after)
        for text in reporting.result_lines(run, pending_left=len(left.pending)):
            console.line(text)
        return _result(
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
    )
    needs_js = any(m.kind is Kind.JS for m in plan_.to_run)
    with _optional_bridge(project, settings, needed=needs_js) as bridge:
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


# --- adapters ---------------------------------------------------------------------------------


@contextmanager
def _database(
    project: Project, settings: Settings, console: Console, invocation: Invocation
) -> Iterator[postgres.PgSession]:
    environment = project.environment
    spec = environment.database
    if spec is not None and spec.embedded:
        conninfo = embedded.start(project.manifest.base_dir, database=spec.embedded_name)
        target = postgres.describe(conninfo)
        target = Target(host="embedded", port=None, database=target.database, user=target.user)
    else:
        conninfo = conninfo_for(environment, settings)
        target = postgres.describe(conninfo)
    session = postgres.connect(conninfo, target=target)
    try:
        console.line(reporting.header(invocation.command, environment.name, session.target))
        postgres.check_target(session)
        yield session
    finally:
        session.close()


def _tables(project: Project, session: postgres.PgSession) -> postgres.HistoryTables:
    config = project.manifest.migrations
    return postgres.HistoryTables(session, schema=config.schema, table=config.table)


@contextmanager
def _bridge(project: Project, settings: Settings) -> Iterator[NodeBridge]:
    node = binaries.find_node(settings.environ)
    with NodeBridge(node=node, bridge_dir=BRIDGE_DIR, env=settings.environ) as bridge:
        # Shorthands accumulate over every file in order, applied ones included.
        bridge.start([f for f in project.files if f.kind is Kind.JS])
        yield bridge


@contextmanager
def _optional_bridge(
    project: Project, settings: Settings, *, needed: bool
) -> Iterator[NodeBridge | None]:
    if not needed:
        yield None
        return
    with _bridge(project, settings) as bridge:
        yield bridge


def _render_all(
    project: Project,
    settings: Settings,
    session: postgres.PgSession,
    pending: Sequence[MigrationFile],
) -> list[tuple[MigrationFile, Rendered | None]]:
    needs_js = any(m.kind is Kind.JS for m in pending)
    with _optional_bridge(project, settings, needed=needs_js) as bridge:
        return [(m, execution.render(m, renderer=bridge, query=session.query)) for m in pending]


def _notices(console: Console, notices: Sequence[Notice]) -> None:
    for text in reporting.notice_lines(notices):
        console.line(text)


def _result(
    invocation: Invocation,
    project: Project,
    outcome: Outcome,
    *,
    target: Target | None,
    plan: Plan | None = None,
    pending: Sequence[tuple[MigrationFile, Rendered | None]] = (),
    run: RunReport | None = None,
    notices: Sequence[Notice] | None = None,
) -> Result:
    exit_code = {
        Outcome.FAILED: ExitCode.NO,
        Outcome.CANCELLED: ExitCode.INTERRUPTED,
    }.get(outcome, ExitCode.OK)
    report = reporting.build_report(
        command=invocation.command,
        environment=project.environment.name,
        target=target,
        outcome=outcome,
        exit_code=exit_code,
        hmig_version=__version__,
        applied=plan.applied if plan else (),
        pending=pending,
        unknown=plan.unknown if plan else (),
        run=run,
        notices=notices if notices is not None else (plan.notices if plan else ()),
    )
    return Result(outcome=outcome, exit_code=exit_code, report=report)
