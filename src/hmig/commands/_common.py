"""What every command shares: the invocation, the result, and the adapters wired to the core.

The commands package is the composition root the CLI (and later the Action) calls. It builds
the adapters, passes values through the core, and returns a `Result`; it never picks an exit
code for an `HmigError` itself: the entry point does that, from the error's class.
"""

from __future__ import annotations

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
    Rendered,
    RunContext,
    RunReport,
    Target,
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
    count: int | None = None  # rollback --count
    to: str | None = None  # rollback --to, baseline --to
    dry_run: bool = False  # rollback --dry-run
    description: str | None = None  # new DESCRIPTION
    new_kind: str = "sql"  # new --sql | --js


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


# --- adapters ---------------------------------------------------------------------------------


@contextmanager
def connect(
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


def history_tables(project: Project, session: postgres.PgSession) -> postgres.HistoryTables:
    config = project.manifest.migrations
    return postgres.HistoryTables(session, schema=config.schema, table=config.table)


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


def render_all(
    project: Project,
    settings: Settings,
    session: postgres.PgSession,
    pending: Sequence[MigrationFile],
) -> list[tuple[MigrationFile, Rendered | None]]:
    needs_js = any(m.kind is Kind.JS for m in pending)
    with optional_bridge(project, settings, needed=needs_js) as js:
        return [(m, execution.render(m, renderer=js, query=session.query)) for m in pending]


def print_notices(console: Console, notices: Sequence[Notice]) -> None:
    for text in reporting.notice_lines(notices):
        console.line(text)


def make_result(
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
