"""What every command shares: the invocation, the result, and the adapters wired to the core.

The commands package is the composition root the CLI (and later the Action) calls. It builds
the adapters, passes values through the core, and returns a `Result`; it never picks an exit
code for an `HmigError` itself: the entry point does that, from the error's class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import Context, ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from hmig import (
    __version__,
    binaries,
    discovery,
    embedded,
    execution,
    lint,
    planning,
    postgres,
    reporting,
)
from hmig import manifest as manifest_module
from hmig.errors import (
    ExitCode,
    HmigError,
    JsMigrationError,
    ManifestError,
    Refused,
    StatementFailed,
)
from hmig.linter import Squawk, read_sources
from hmig.model import (
    BackupArtifact,
    BackupPlan,
    Drift,
    Environment,
    Finding,
    History,
    Kind,
    Manifest,
    MigrationFile,
    Notice,
    Outcome,
    Plan,
    Rendered,
    RunContext,
    RunReport,
    Target,
)
from hmig.node import BRIDGE_DIR, NodeBridge
from hmig.postgres import relations
from hmig.settings import Settings, conninfo_for

_READ_ONLY = "25006"  # read_only_sql_transaction


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
    count: int | None = None  # rollback --count
    to: str | None = None  # rollback --to, baseline --to
    dry_run: bool = False  # rollback --dry-run
    description: str | None = None  # new DESCRIPTION
    new_kind: str = "sql"  # new --sql | --js
    from_path: Path | None = None  # restore --from
    into_database: str | None = None  # restore --into-database
    confirm: str | None = None  # restore --confirm ENV
    force: bool = False  # restore --force (protected environments)
    drift_check: str | None = None  # drift --check history|schema|both; None: the policy


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

    def plan(self, history: History, *, target: str | None = None) -> Plan:
        """The files against `history`, reading rows of renamed files as the manifest says."""
        return planning.plan(
            self.files, history, target=target, renamed=self.manifest.migrations.renamed
        )


@dataclass(frozen=True, slots=True)
class Reached:
    """How far a command got, for the report of an error that stopped it.

    Such a command returns no result; its report still names the environment, the database and
    the history from this.
    """

    environment: str
    target: Target | None = None
    history: History | None = None  # as the error left it


_REACHED: ContextVar[Reached | None] = ContextVar("hmig_reached", default=None)


def reached_in(scope: Context) -> Reached | None:
    """How far the command run in `scope` (a `contextvars.Context`) got."""
    return scope.get(_REACHED)


def load_project(invocation: Invocation) -> Project:
    """Read the manifest and the migrations folder (no database)."""
    manifest = discovery.load_manifest(invocation.manifest_path)
    environment = manifest_module.select_environment(manifest, invocation.env_name)
    _REACHED.set(Reached(environment.name))
    found = discovery.discover(manifest.migrations, base_dir=manifest.base_dir)
    try:
        ordered = planning.order(
            found, explicit=manifest.migrations.order, manifest_file=manifest.path.name
        )
        planning.check_renamed(
            ordered, manifest.migrations.renamed, manifest_file=manifest.path.name
        )
    except ManifestError as error:  # checked against the files: the line comes from the text
        try:
            text = manifest.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            raise error from None
        raise manifest_module.located(error, text=text) from None
    return Project(manifest=manifest, environment=environment, files=ordered)


# --- adapters ---------------------------------------------------------------------------------


@contextmanager
def connect(
    project: Project,
    settings: Settings,
    console: Console,
    invocation: Invocation,
    *,
    check: bool = True,
) -> Iterator[postgres.PgSession]:
    """Connect to the environment's database and name it; refuse unsafe targets (`check`).

    A backup may read a hot standby, so `backup` connects without the check.
    """
    environment = project.environment
    spec = environment.database
    if spec is not None and spec.embedded:
        conninfo = embedded.start(project.manifest.base_dir, database=spec.embedded_name)
    else:
        conninfo = conninfo_for(environment, settings)
    session = postgres.connect(conninfo, target=postgres.describe(conninfo))
    if spec is not None and spec.embedded:
        # Its socket and port change from run to run; the project's .hmig/ is its identity.
        session.target = replace(session.target, host="embedded", port=None)
    _REACHED.set(Reached(environment.name, session.target))
    try:
        console.line(reporting.header(invocation.command, environment.name, session.target))
        if check:
            postgres.check_target(session)
        yield session
    except HmigError:
        history = _history_now(project, session)
        _REACHED.set(Reached(environment.name, session.target, history))
        raise
    finally:
        session.close()


def _history_now(project: Project, session: postgres.PgSession) -> History | None:
    """The history as an error left it, for its report; None when the session cannot tell.

    Best effort, and bounded: nothing that goes wrong here, not a lock held by another run
    nor a Ctrl-C, may hide or delay the error being reported.
    """
    with contextlib.suppress(Exception, KeyboardInterrupt):
        session.rollback()
        if session.usable():
            return read_history(
                session,
                history_tables(project, session),
                lock_timeout_ms=1000,
                statement_timeout_ms=5000,
            )
    return None


def run_context(settings: Settings) -> RunContext:
    """Who and what is running, for hmig's history and audit tables."""
    return RunContext(
        hmig_version=__version__,
        actor=settings.github_actor,
        commit=settings.github_sha,
        run_id=settings.github_run_id,
    )


def confirm_write(project: Project, session: postgres.PgSession, invocation: Invocation) -> None:
    """A protected environment, written from a terminal, needs --yes."""
    environment = project.environment
    if environment.protected and invocation.interactive and not invocation.yes:
        raise Refused(
            f"environment {environment.name!r} is protected: writing to "
            f"{session.target.describe()} needs confirmation",
            hint="Check the target above, then run the command again with --yes.",
        )


def read_history(
    session: postgres.PgSession,
    tables: postgres.HistoryTables,
    *,
    lock_timeout_ms: int | None = None,
    statement_timeout_ms: int | None = None,
) -> History:
    """The history as committed, read in a read-only transaction (bounded by the timeouts)."""
    session.begin(
        read_only=True, lock_timeout_ms=lock_timeout_ms, statement_timeout_ms=statement_timeout_ms
    )
    try:
        return tables.read()
    finally:
        session.rollback()


def history_tables(project: Project, session: postgres.PgSession) -> postgres.HistoryTables:
    config = project.manifest.migrations
    return postgres.HistoryTables(
        session, schema=config.schema, table=config.table, renamed=config.renamed
    )


@contextmanager
def js_bridge(project: Project, settings: Settings) -> Iterator[NodeBridge]:
    node = binaries.find_node(settings.environ)
    with NodeBridge(node=node, bridge_dir=BRIDGE_DIR, env=settings.environ) as bridge:
        # Shorthands accumulate over every file in order, applied ones included.
        bridge.start([f for f in project.files if f.kind is Kind.JS])
        yield bridge


@contextmanager
def optional_bridge(
    project: Project, settings: Settings, *, needed: bool
) -> Iterator[NodeBridge | None]:
    if not needed:
        yield None
        return
    with js_bridge(project, settings) as js:
        yield js


def render_pending(
    session: postgres.PgSession,
    bridge: NodeBridge | None,
    pending: Sequence[MigrationFile],
    *,
    strict: bool,
) -> tuple[list[tuple[MigrationFile, Rendered | None]], list[Notice]]:
    """Render in the caller's read-only transaction, each in a savepoint.

    A `.js` migration rendered before the earlier pending ones have run may not render: its
    `pgm.db` queries may write (refused read-only) or read what an earlier migration creates.
    It is reported (`not-rendered`) and the others still render. Other JavaScript errors are
    raised when `strict` (plan); apply reports them when the migration really runs.

    Refused (exit 2) whatever `strict` says, before anything runs: a migration that exports no
    `up` function, rendered SQL that a `.sql` file could not hold (`execution.check_rendered`),
    and a migration whose rendering stopped Node (the bridge's timeout, a crash, a
    `process.exit()`): nothing after it could render or run either.
    """
    if bridge is not None:
        for migration in pending:
            if migration.kind is Kind.JS:
                bridge.require_action(migration, direction="up")
    rendered: list[tuple[MigrationFile, Rendered | None]] = []
    notices: list[Notice] = []
    for migration in pending:
        if migration.kind is Kind.SQL:  # parsed from the file: no database involved
            rendered.append((migration, execution.render(migration, renderer=None, query=None)))
            continue
        try:
            with session.savepoint():
                one = execution.render(migration, renderer=bridge, query=session.query)
        except JsMigrationError as exc:
            if bridge is not None and bridge.stopped:
                raise _refused_up_front(exc) from exc
            cause = exc.__cause__
            if strict and not isinstance(cause, StatementFailed):
                raise
            rendered.append((migration, None))
            notices.append(
                Notice(
                    code="not-rendered",
                    message=f"{migration.name}: its SQL cannot be shown before it runs "
                    f"({_why_not_rendered(exc)}); it is not linted either",
                    migration=migration.name,
                    file=migration.path,
                )
            )
            continue
        execution.check_rendered(migration, one)
        rendered.append((migration, one))
    return rendered, notices


def _refused_up_front(exc: JsMigrationError) -> JsMigrationError:
    """A render that stopped Node while previewing: refused before the first migration runs."""
    return JsMigrationError(
        exc.reason,
        file=exc.file,
        line=exc.line,
        hint="hmig renders every pending .js migration before the first one runs, so nothing "
        f"was run. {exc.hint}".rstrip(),
    )


def _why_not_rendered(exc: JsMigrationError) -> str:
    cause = exc.__cause__
    if isinstance(cause, StatementFailed) and cause.sqlstate == _READ_ONLY:
        return f"its pgm.db queries write: {cause.message}"
    if isinstance(cause, StatementFailed):
        return (
            f"its pgm.db queries fail against the database as it is now: {cause.message}; "
            "they may depend on an earlier pending migration"
        )
    return exc.reason


def lint_pending(
    project: Project,
    settings: Settings,
    session: postgres.PgSession,
    rendered: Sequence[tuple[MigrationFile, Rendered | None]],
) -> lint.LintReport:
    """Squawk and hmig's rules over what will run, sized by the live database (read-only)."""
    pending = [(m, r) for m, r in rendered if r is not None]
    if not pending:
        return lint.LintReport(findings=(), unused_ignores=(), failed=False)
    environment = project.environment
    timeouts = {
        "lock_timeout_ms": environment.lock_timeout_ms,
        "statement_timeout_ms": environment.statement_timeout_ms,
    }
    sizes = relations.relation_sizes(session, lint.tables_to_size(pending))
    found = Squawk.find(settings.environ).lint(
        pending, server_version=session.server_version(), **timeouts
    )
    return lint.check(
        pending,
        squawk=found,
        sizes=sizes,
        policy=environment.lint,
        sources=read_sources(pending),
        **timeouts,
    )


def print_notices(console: Console, notices: Sequence[Notice]) -> None:
    for text in reporting.notice_lines(notices):
        console.line(text)


def _unrendered(plan: Plan | None) -> list[tuple[MigrationFile, Rendered | None]]:
    """Without rendered SQL, what is pending is what the plan says."""
    return [(m, None) for m in (plan.pending if plan else ())]


def make_result(
    invocation: Invocation,
    project: Project,
    outcome: Outcome,
    *,
    target: Target | None,
    plan: Plan | None = None,
    pending: Sequence[tuple[MigrationFile, Rendered | None]] | None = None,
    run: RunReport | None = None,
    notices: Sequence[Notice] | None = None,
    findings: Sequence[Finding] = (),
    backup: BackupArtifact | None = None,
    backup_plan: BackupPlan | None = None,
    drift: Drift | None = None,
) -> Result:
    exit_code = {
        Outcome.FAILED: ExitCode.NO,
        Outcome.DRIFT: ExitCode.NO,
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
        # Without rendered SQL, what is pending is what the plan says, unrendered.
        pending=pending
        if pending is not None
        else [(m, None) for m in (plan.pending if plan else ())],
        unknown=plan.unknown if plan else (),
        run=run,
        notices=notices if notices is not None else (plan.notices if plan else ()),
        findings=findings,
        backup=backup,
        backup_plan=backup_plan,
        drift=drift,
    )
    return Result(outcome=outcome, exit_code=exit_code, report=report)
