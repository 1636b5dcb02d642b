"""drift: is the database what the repository says it is? The history and live-schema checks.

The history check compares the history tables with the migration files (`planning`, pure); the
schema check replays the applied migrations into a shadow database and compares its catalog
with the target's (`commands.shadow`). Both run under the migration lock, so an apply in flight
is waited for, never reported as drift. `plan` and `apply` call `check` with the environment's
policy; `hmig drift` runs it on its own. This module picks no exit code for an error: the entry
point does.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from hmig import planning, postgres, reporting
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
    read_history,
    run_context,
)
from hmig.commands.shadow import check_schema
from hmig.drift import Difference
from hmig.errors import StatementFailed
from hmig.model import (
    CHECKS,
    Drift,
    DriftFinding,
    DriftPolicy,
    History,
    Notice,
    Outcome,
    RunContext,
)
from hmig.settings import Settings


def drift(invocation: Invocation, settings: Settings, console: Console) -> Result:
    """Run the drift checks now; any finding is exit 1 (outcome `drift`), whatever `fail` says.

    Without `--check`, the environment's `drift.check`, or both when it says none: asking for a
    drift check by name is asking for one. A passing schema check verifies adopted rows.
    """
    project = load_project(invocation)
    checks = requested(invocation.drift_check, project.environment.drift)
    with connect(project, settings, console, invocation) as session:
        tables = history_tables(project, session)
        with postgres.advisory_lock(session, wait_s=invocation.lock_wait_s):
            history = read_history(session, tables)
            found = check(
                project, settings, console, session=session, history=history, checks=checks
            )
            verified, not_recorded = _verify(project, session, tables, history, found, settings)
            if verified:
                history = read_history(session, tables)
        plan_ = project.plan(history)
        notices = (*plan_.notices, *unverified(project, history, found), *not_recorded)
        print_notices(console, notices)
        for text in reporting.drift_lines(found):
            console.line(text)
        if verified:
            console.line(f"✓ Verified {len(verified)} adopted migration(s): {', '.join(verified)}.")
        return make_result(
            invocation,
            project,
            Outcome.DRIFT if found.findings else Outcome.OK,
            target=session.target,
            plan=plan_,
            notices=notices,
            drift=found,
        )


def requested(explicit: str | None, policy: DriftPolicy) -> tuple[str, ...]:
    """`--check`, else the environment's `drift.check`, else both."""
    if explicit is not None:
        return CHECKS[explicit]
    return policy.checks or CHECKS["both"]


def check(
    project: Project,
    settings: Settings,
    console: Console,
    *,
    session: postgres.PgSession,
    history: History,
    checks: Sequence[str],
    fail: bool = True,
) -> Drift:
    """Run `checks` (history, schema) against `history`, read under the lock the caller holds.

    `drift.ignore` leaves out schema objects (`drift.compare` applies it); history drift cannot
    be ignored, only repaired.
    """
    policy = project.environment.drift
    findings: list[DriftFinding] = []
    if "history" in checks:
        findings.extend(
            planning.history_drift(
                project.files, history, renamed=project.manifest.migrations.renamed
            )
        )
    if "schema" in checks:
        schema = check_schema(
            project, settings, console, session=session, history=history, policy=policy
        )
        findings.extend(_finding(d) for d in schema.differences)
    return Drift(checked=tuple(checks), fail=fail, findings=tuple(findings))


def unverified(
    project: Project, history: History, found: Drift | None, *, skip: Collection[str] = ()
) -> tuple[Notice, ...]:
    """The `unverified` warning, unless no check ran or a clean schema check just verified."""
    if found is None or schema_passed(found):
        return ()
    return planning.unverified(
        project.files, history, renamed=project.manifest.migrations.renamed, skip=skip
    )


def schema_passed(found: Drift | None) -> bool:
    """A schema check ran and nothing at all was found: the files build the live schema."""
    return found is not None and "schema" in found.checked and not found.findings


def verify_recorded(
    project: Project, tables: postgres.HistoryTables, history: History, context: RunContext
) -> list[str]:
    """Mark adopted rows whose checksum matches the file verified, in the caller's transaction."""
    names = planning.verifiable(project.files, history, renamed=project.manifest.migrations.renamed)
    return tables.verify(names=names, context=context) if names else []


# --- internals --------------------------------------------------------------------------------


def _verify(
    project: Project,
    session: postgres.PgSession,
    tables: postgres.HistoryTables,
    history: History,
    found: Drift,
    settings: Settings,
) -> tuple[list[str], tuple[Notice, ...]]:
    """After a clean schema check: record rows another tool wrote, and mark them verified.

    A read-only role cannot record it; the check still passed, so that is a warning.
    """
    renamed = project.manifest.migrations.renamed
    if not schema_passed(found) or not planning.unverified(project.files, history, renamed=renamed):
        return [], ()
    context = run_context(settings)
    session.begin()
    try:
        tables.ensure()
        tables.adopt({f.name: f for f in project.files}, history, context)
        verified = verify_recorded(project, tables, tables.read(), context)
        session.commit()
    except StatementFailed as exc:
        session.rollback()
        return [], (
            Notice(
                code="unverified",
                message="the schema check passed, but hmig could not record that the adopted "
                f"migrations are verified: {exc.message}",
            ),
        )
    except BaseException:
        session.rollback()
        raise
    return verified, ()


def _finding(difference: Difference) -> DriftFinding:
    return DriftFinding(
        check="schema",
        code=difference.code,
        object=difference.object,
        message=difference.message,
        hint=difference.hint,
    )
