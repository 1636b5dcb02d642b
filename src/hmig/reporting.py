"""Plans and run reports → the JSON report and the text a person reads.

The JSON report's shape is `report.schema.json`, documented in the README. Human text reads
like the team's own runner: one line per migration with its duration, and on failure exactly
where and what to do. Pure: values in, strings and dicts out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from hmig.errors import ExitCode, HmigError
from hmig.model import (
    Applied,
    BackupArtifact,
    BackupPlan,
    Drift,
    DriftFinding,
    Failure,
    Finding,
    MigrationFile,
    Notice,
    Outcome,
    Plan,
    Ran,
    Rendered,
    Retry,
    RunReport,
    Target,
)

# Documented warning codes (README, "Warnings"); a test keeps this list and the README in step.
WARNING_CODES = (
    "out-of-order",
    "legacy-up-name",
    "adopted",
    "unverified",
    "not-rendered",
    "backup-unencrypted",
    "backup-full",
    "dropped-newer-objects",
    "backup-skipped",
)


@cache
def report_schema() -> dict[str, Any]:
    """The JSON Schema of the `--json` report."""
    text = resources.files("hmig").joinpath("report.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def build_report(
    *,
    command: str,
    environment: str | None,
    target: Target | None,
    outcome: Outcome,
    exit_code: ExitCode,
    hmig_version: str,
    applied: Sequence[Applied] = (),
    pending: Sequence[tuple[MigrationFile, Rendered | None]] = (),
    unknown: Sequence[Applied] = (),
    run: RunReport | None = None,
    notices: Sequence[Notice] = (),
    error: HmigError | None = None,
    findings: Sequence[Finding] = (),
    backup: BackupArtifact | None = None,
    backup_plan: BackupPlan | None = None,
    drift: Drift | None = None,
) -> dict[str, Any]:
    """The one machine-readable report every command prints with `--json`.

    `context` is always null here: only the GitHub Action knows the event, and it fills it in.
    `drift` is null when no drift check ran.
    """
    return {
        "hmig_version": hmig_version,
        "command": command,
        "environment": environment,
        "database": _database(target),
        "outcome": outcome.value,
        "exit_code": int(exit_code),
        "applied": [_applied(row) for row in applied],
        "pending": [_pending(m, r) for m, r in pending],
        "unknown": [_applied(row) for row in unknown],
        "ran": [_ran(r) for r in (run.ran if run else ())],
        "failure": _failure(run.failure) if run and run.failure else None,
        "warnings": [_notice(n) for n in notices],
        "findings": [_finding(f) for f in findings],
        "backup": backup_report(backup) if backup else None,
        "backup_plan": _backup_plan(backup_plan) if backup_plan else None,
        "drift": _drift(drift) if drift else None,
        "restored": None,  # `restore` fills these two in
        "backups": None,
        "error": _error(error) if error else None,
        "context": None,
    }


def redact(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret in `text` with `***`."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


# --- human text -------------------------------------------------------------------------------


def header(command: str, environment: str, target: Target) -> str:
    """The first line: which database this command talks to, before anything is written."""
    version = f" (PostgreSQL {target.server_version})" if target.server_version else ""
    return f"hmig {command} · environment {environment} · {target.describe()}{version}"


def counts(plan: Plan) -> str:
    """The counts line, e.g. "Found 10 migrations: 8 applied, 2 pending."."""
    applied = len(plan.files) - len(plan.pending)
    unknown = f", {len(plan.unknown)} recorded without a file" if plan.unknown else ""
    return (
        f"Found {len(plan.files)} migrations: {applied} applied, "
        f"{len(plan.pending)} pending{unknown}."
    )


def notice_lines(notices: Sequence[Notice]) -> list[str]:
    """Warnings, one line each."""
    return [f"⚠ {n.code}: {n.message}" for n in notices]


def status_lines(plan: Plan) -> list[str]:
    """`hmig status`: applied in recorded order, then pending, then unknown rows."""
    lines = [counts(plan), ""]
    for row in plan.applied:
        lines.append(f"  applied  {row.run_on:%Y-%m-%d %H:%M:%S}  {row.name}")
    for migration in plan.pending:
        mark = "  (out of order)" if migration.name in plan.out_of_order else ""
        lines.append(f"  pending  {'':19}  {migration.name}{mark}")
    for row in plan.unknown:
        lines.append(f"  unknown  {row.run_on:%Y-%m-%d %H:%M:%S}  {row.name}  (no file)")
    return lines


def plan_lines(
    pending: Sequence[tuple[MigrationFile, Rendered | None]],
    findings: Sequence[Finding] = (),
) -> list[str]:
    """`hmig plan`: each pending migration with the exact SQL it will run, and its findings."""
    if not pending:
        return ["Nothing to apply: the database is up to date."]
    lines = [f"{len(pending)} migration(s) would be applied, in this order:", ""]
    for number, (migration, rendered) in enumerate(pending, start=1):
        mode = "in a transaction"
        if rendered is not None and not rendered.transactional:
            mode = f"outside a transaction: {rendered.reason}"
        lines.append(f"{number}. {migration.name}  ({migration.path}, {mode})")
        sql = rendered.sql if rendered is not None else "(not rendered: see the warning above)"
        lines.extend("   " + line if line else "" for line in sql.splitlines())
        lines.extend(finding_lines([f for f in findings if f.migration == migration.name]))
        lines.append("")
    return lines


def finding_lines(findings: Sequence[Finding]) -> list[str]:
    """Lint findings, most severe first, each with where it is and how to fix it."""
    lines = []
    for finding in sorted(findings, key=lambda f: (f.severity != "error", f.line or 0)):
        where = finding.file + (f":{finding.line}" if finding.line else "")
        if finding.line is None and finding.statement_index is not None:
            where += f" (statement {finding.statement_index + 1})"
        mark = "✗" if finding.severity == "error" else "⚠"
        lines.append(f"   {mark} {finding.rule} at {where}: {finding.message}")
        if finding.help:
            lines.append(f"     fix: {finding.help}")
    return lines


def lint_summary(findings: Sequence[Finding], *, failed: bool, fail_on: str) -> str:
    """One line: how many findings, and whether they stop the run."""
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    counted = f"Lint: {errors} error(s), {warnings} warning(s)"
    if failed:
        return f"✗ {counted}, at or above lint.fail_on: {fail_on}. Nothing was applied."
    return f"{counted} (lint.fail_on: {fail_on})."


def drift_lines(drift: Drift, *, note: str | None = None) -> list[str]:
    """What the drift checks found, each finding with what to do; one line when clean.

    `note` says what the findings mean for this run when they do not fail it.
    """
    checked = " and ".join(drift.checked) or "nothing"
    if not drift.findings:
        return [f"✓ No drift ({checked} checked)."]
    mark = "✗" if drift.fail else "⚠"
    consequence = f" ({note})" if note and not drift.fail else ""
    lines = [f"{mark} Drift ({checked} checked): {len(drift.findings)} finding(s){consequence}:"]
    for finding in drift.findings:
        lines.append(f"   {mark} {finding.code}: {finding.message}")
        if finding.hint:
            lines.append(f"     fix: {finding.hint}")
    return lines


def started_line(migration: MigrationFile) -> str:
    """Printed when a migration starts."""
    return f"→ Running {migration.name}"


def finished_line(ran: Ran) -> str:
    """Printed when a migration is applied and recorded."""
    where = "" if ran.transactional else ", outside a transaction"
    retries = (
        f", after {ran.retries} lock retr{'y' if ran.retries == 1 else 'ies'}"
        if ran.retries
        else ""
    )
    return f"✓ Completed {ran.name} ({_duration(ran.duration_ms)}{where}{retries})"


def retry_lines(retry: Retry) -> list[str]:
    """A lost lock race: what happened, who held the lock, when the next try is."""
    what = (
        "hit lock_timeout" if retry.reason == "lock_timeout" else "was chosen as a deadlock victim"
    )
    where = f" (statement {retry.statement + 1})" if retry.statement is not None else ""
    lines = [
        f"↻ {retry.migration}{where} {what} on attempt {retry.attempt}; rolled back, "
        f"retrying in {retry.delay_s:.1f} s"
    ]
    lines.extend(f"    held by {holder}" for holder in retry.holders)
    return lines


def result_lines(run: RunReport, *, pending_left: int) -> list[str]:
    """The closing lines of `apply`."""
    if run.cancelled:
        kept = f"{len(run.ran)} migration(s) applied before it stay applied. " if run.ran else ""
        return [
            "✗ Interrupted: the running migration was cancelled and rolled back. "
            f"{kept}Run hmig apply again to continue."
        ]
    if run.failure is not None:
        return failure_lines(run.failure)
    if not run.ran:
        return ["✓ Nothing to apply: the database is up to date."]
    total = sum(r.duration_ms for r in run.ran)
    left = f" {pending_left} still pending after --target." if pending_left else ""
    return [f"✓ Applied {len(run.ran)} migration(s) in {_duration(total)}.{left}"]


def failure_lines(failure: Failure) -> list[str]:
    """Where a migration failed and what to do, as a person needs it."""
    if failure.at_commit:
        # No statement failed: the transaction's COMMIT did, after its last migration.
        lines = [f"✗ COMMIT failed after {failure.migration}: {failure.message}"]
    else:
        where = failure.file
        if failure.line:
            where += f":{failure.line}" + (f":{failure.column}" if failure.column else "")
        lines = [f"✗ {failure.migration} failed: {failure.message}", f"    at {where}"]
    if failure.sqlstate:
        lines.append(f"    SQLSTATE {failure.sqlstate}")
    if failure.detail:
        lines.append(f"    detail: {failure.detail}")
    if failure.hint:
        lines.append(f"    hint: {failure.hint}")
    if failure.statement:
        excerpt = failure.statement.strip().splitlines()
        shown = excerpt[:6] + (["…"] if len(excerpt) > 6 else [])
        lines.append("    statement:")
        lines.extend(f"      {line}" for line in shown)
    if failure.advice:
        lines.append(failure.advice)
    return lines


def error_lines(error: HmigError) -> list[str]:
    """An error that stopped the command before it changed anything (or while it waited)."""
    lines = [f"✗ {error.message}"]
    if error.hint:
        lines.extend(f"  {line}" for line in error.hint.splitlines())
    return lines


# --- internals --------------------------------------------------------------------------------


def _duration(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _database(target: Target | None) -> dict[str, Any] | None:
    if target is None:
        return None
    return {
        "host": target.host,
        "port": target.port,
        "name": target.database,
        "server_version": target.server_version,
    }


def _applied(row: Applied) -> dict[str, Any]:
    return {"name": row.name, "run_on": row.run_on.isoformat()}


def _pending(migration: MigrationFile, rendered: Rendered | None) -> dict[str, Any]:
    return {
        "name": migration.name,
        "path": migration.path,
        "kind": migration.kind.value,
        "transactional": rendered.transactional if rendered else None,
        "statements": len(rendered.statements) if rendered else None,
        "sql": rendered.sql if rendered else None,
    }


def _backup_plan(plan: BackupPlan) -> dict[str, Any]:
    return {"mode": plan.mode, "required": plan.required, "description": plan.description}


def _ran(ran: Ran) -> dict[str, Any]:
    return {
        "name": ran.name,
        "kind": ran.kind.value,
        "transactional": ran.transactional,
        "duration_ms": ran.duration_ms,
        "statements": ran.statements,
        "retries": ran.retries,
    }


def _failure(failure: Failure) -> dict[str, Any]:
    return {
        "migration": failure.migration,
        "file": failure.file,
        "line": failure.line,
        "column": failure.column,
        "message": failure.message,
        "sqlstate": failure.sqlstate,
        "detail": failure.detail,
        "hint": failure.hint,
        "statement": failure.statement,
        "statements_done": failure.statements_done,
        "statements_total": failure.statements_total,
        "advice": failure.advice,
        "at_commit": failure.at_commit,
    }


def _notice(notice: Notice) -> dict[str, Any]:
    return {
        "code": notice.code,
        "message": notice.message,
        "migration": notice.migration,
        "file": notice.file,
        "line": notice.line,
    }


def backup_report(artifact: BackupArtifact) -> dict[str, Any]:
    """A backup artifact as the JSON report shows it."""
    return {
        "path": str(artifact.path),
        "bytes": artifact.bytes,
        "sha256": artifact.sha256,
        "mode": artifact.mode,
        "format": artifact.format,
        "pg_dump_version": artifact.pg_dump_version,
        "server_version": artifact.server_version,
        "duration_ms": round(artifact.duration_ms, 1),
        "verified": artifact.verified,
        "tables": list(artifact.tables),
        "encrypted": artifact.encrypted,
    }


def _drift(drift: Drift) -> dict[str, Any]:
    return {
        "checked": list(drift.checked),
        "fail": drift.fail,
        "findings": [_drift_finding(f) for f in drift.findings],
    }


def _drift_finding(finding: DriftFinding) -> dict[str, Any]:
    return {
        "check": finding.check,
        "code": finding.code,
        "object": finding.object,
        "message": finding.message,
        "hint": finding.hint,
        "since": finding.since.isoformat() if finding.since else None,
    }


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "rule": finding.rule,
        "severity": finding.severity,
        "message": finding.message,
        "help": finding.help,
        "migration": finding.migration,
        "file": finding.file,
        "line": finding.line,
        "column": finding.column,
        "statement_index": finding.statement_index,
        "source": finding.source,
    }


def _error(error: HmigError) -> dict[str, Any]:
    return {"type": type(error).__name__, "message": error.message, "hint": error.hint or None}
