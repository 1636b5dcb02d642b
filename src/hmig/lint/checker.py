"""The lint pipeline: hmig's rules on every pending statement, merged with squawk's findings.

Order of work: run hmig's rules (with the locks of each statement and the target's table
sizes); drop squawk findings that an hmig finding on the same statement already says better
(with the table's size); apply `-- hmig:ignore` directives (to both), then the environment's
`lint.ignore`; report directives that matched nothing; decide `failed` from `lint.fail_on`.
Pure: it never runs squawk nor queries the database: both arrive as values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pglast
from pglast import ast
from pglast.enums import VariableSetKind

from hmig.lint.directives import Ignore, ignores
from hmig.lint.rules import Context, rules
from hmig.lint.values import SEVERITIES, LintReport, RelationSize
from hmig.locks import StatementLocks, analyse
from hmig.model import Finding, LintPolicy, MigrationFile, Rendered, Statement

UNUSED_IGNORE = "unused-ignore"

# squawk rules whose finding an hmig finding on the same statement replaces: hmig's says the
# same thing with the table's size, so keeping both is noise (squawk#364 shows how much noise
# hurts adoption).
SUPERSEDES: Mapping[str, frozenset[str]] = {
    "no-lock-timeout": frozenset({"require-lock-timeout"}),
    "table-rewrite": frozenset({"changing-column-type", "adding-field-with-default"}),
    "full-table-scan-under-lock": frozenset(
        {
            "constraint-missing-not-valid",
            "adding-foreign-key-constraint",
            "adding-not-nullable-field",
        }
    ),
    "blocking-lock-on-large-table": frozenset(
        {"require-concurrent-index-creation", "disallowed-unique-constraint"}
    ),
}


def check(
    pending: Sequence[tuple[MigrationFile, Rendered]],
    *,
    squawk: Sequence[Finding],
    sizes: Mapping[str, RelationSize],
    policy: LintPolicy,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    sources: Mapping[str, str] | None = None,
) -> LintReport:
    """Lint the pending migrations, in the order they will run.

    `sizes` holds the tables that exist on the target, keyed by the names the migrations use
    (see `tables_to_size`); `sources` maps a `.sql` migration's `path` to its text, for the
    `-- hmig:ignore` comments above statements (without it only comments inside a statement's
    own text count).
    """
    own: list[Finding] = []
    directives: list[tuple[MigrationFile, Ignore]] = []
    for migration, rendered in pending:
        own.extend(
            _lint_migration(
                migration,
                rendered,
                sizes=sizes,
                lock_timeout_ms=lock_timeout_ms,
                statement_timeout_ms=statement_timeout_ms,
            )
        )
        source = (sources or {}).get(migration.path)
        directives.extend((migration, d) for d in ignores(rendered.statements, source))
    theirs = _superseded(own, squawk)
    used: set[tuple[str, Ignore]] = set()
    kept = [
        finding
        for finding in [*own, *squawk]
        if not _ignored(finding, directives, used) and finding not in theirs
    ]
    kept = [f for f in kept if f.rule not in policy.ignore]
    unused = (
        ()
        if UNUSED_IGNORE in policy.ignore
        else tuple(
            _unused(migration, directive)
            for migration, directive in directives
            if (migration.name, directive) not in used
        )
    )
    order = {migration.name: position for position, (migration, _) in enumerate(pending)}
    findings = tuple(sorted(kept, key=lambda f: _sort_key(f, order)))
    return LintReport(
        findings=findings,
        unused_ignores=unused,
        failed=_fails(policy.fail_on, [*findings, *unused]),
    )


def tables_to_size(pending: Sequence[tuple[MigrationFile, Rendered]]) -> tuple[str, ...]:
    """Every table the pending statements lock: the names to ask the target's sizes for."""
    names: dict[str, None] = {}
    for _, rendered in pending:
        for statement in rendered.statements:
            for lock in analyse(statement.sql).locks:
                if not lock.creates:
                    names.setdefault(lock.table)
    return tuple(names)


@dataclass(frozen=True, slots=True)
class _Timeouts:
    lock_ms: int
    statement_ms: int


def _lint_migration(
    migration: MigrationFile,
    rendered: Rendered,
    *,
    sizes: Mapping[str, RelationSize],
    lock_timeout_ms: int,
    statement_timeout_ms: int,
) -> list[Finding]:
    found: list[Finding] = []
    timeouts = _Timeouts(lock_timeout_ms, statement_timeout_ms)
    for statement in rendered.statements:
        locks = analyse(statement.sql)
        context = Context(
            migration=migration,
            statement=statement,
            locks=locks,
            sizes=sizes,
            lock_timeout_ms=timeouts.lock_ms,
            statement_timeout_ms=timeouts.statement_ms,
            transactional=rendered.transactional,
        )
        found.extend(_apply_rules(context, locks))
        timeouts = _after(statement, timeouts)
    return found


def _apply_rules(context: Context, locks: StatementLocks) -> list[Finding]:
    found: list[Finding] = []
    if not locks.locks:
        return found
    for rule in rules():
        for hit in rule.check(context):
            found.append(
                Finding(
                    rule=rule.id,
                    severity="warning" if hit.softened else rule.severity,
                    message=hit.message,
                    help=hit.help,
                    migration=context.migration.name,
                    file=context.migration.path,
                    line=context.statement.line,
                    column=context.statement.column,
                    statement_index=context.statement.index,
                    source="hmig",
                )
            )
    return found


def _after(statement: Statement, timeouts: _Timeouts) -> _Timeouts:
    """The timeouts in force after `statement`: a `SET [LOCAL] lock_timeout` changes them.

    RESET goes back to the session's default, which hmig cannot see: taken as 0 (none).
    """
    try:
        parsed = pglast.parse_sql(statement.sql)
    except pglast.parser.ParseError:
        return timeouts
    for raw in parsed:
        node = raw.stmt
        if not isinstance(node, ast.VariableSetStmt) or node.name is None:
            continue
        value = _milliseconds(node)
        if node.name == "lock_timeout":
            timeouts = replace(timeouts, lock_ms=value)
        elif node.name == "statement_timeout":
            timeouts = replace(timeouts, statement_ms=value)
    return timeouts


def _milliseconds(node: ast.VariableSetStmt) -> int:
    """A timeout setting's value in ms; only zero versus non-zero matters to the rules."""
    if node.kind != VariableSetKind.VAR_SET_VALUE or not node.args:
        return 0
    value = getattr(node.args[0], "val", None)
    number = getattr(value, "ival", None)
    if isinstance(number, int):
        return number
    text = str(getattr(value, "sval", "") or getattr(value, "fval", "") or "0").strip()
    digits = ""
    for char in text:
        if not (char.isdigit() or char == "."):
            break
        digits += char
    try:
        return 1 if float(digits or "0") > 0 else 0
    except ValueError:
        return 1


def _superseded(own: Sequence[Finding], squawk: Sequence[Finding]) -> set[Finding]:
    """Squawk findings that one of hmig's findings on the same statement replaces."""
    replaced: set[tuple[str, int | None, str]] = set()
    for finding in own:
        for rule in SUPERSEDES.get(finding.rule, ()):
            replaced.add((finding.migration, finding.statement_index, rule))
    return {
        finding
        for finding in squawk
        if finding.statement_index is not None
        and (finding.migration, finding.statement_index, finding.rule) in replaced
    }


def _ignored(
    finding: Finding,
    directives: Sequence[tuple[MigrationFile, Ignore]],
    used: set[tuple[str, Ignore]],
) -> bool:
    matched = False
    for migration, directive in directives:
        if (
            migration.name == finding.migration
            and directive.statement_index is not None
            and directive.statement_index == finding.statement_index
            and directive.rule == finding.rule
        ):
            used.add((migration.name, directive))
            matched = True
    return matched


def _unused(migration: MigrationFile, directive: Ignore) -> Finding:
    if directive.statement_index is None:
        message = (
            f"-- hmig:ignore {directive.rule} is neither on a statement's lines nor in the "
            "comment lines right above one, so it ignores nothing"
        )
        help_text = "Move the comment directly above the statement (no blank line between)."
    else:
        message = f"-- hmig:ignore {directive.rule} matched no finding on this statement"
        help_text = "Remove the rule from the comment, or check its id (hmig's and squawk's rules)."
    return Finding(
        rule=UNUSED_IGNORE,
        severity="warning",
        message=message,
        help=help_text,
        migration=migration.name,
        file=migration.path,
        line=directive.line,
        statement_index=directive.statement_index,
        source="hmig",
    )


def _fails(fail_on: str, findings: Sequence[Finding]) -> bool:
    """`error`: an error fails; `warning`: a warning or an error; `never`: nothing does."""
    if fail_on not in SEVERITIES:
        return False
    floor = SEVERITIES.index(fail_on)
    return any(f.severity in SEVERITIES and SEVERITIES.index(f.severity) >= floor for f in findings)


def _sort_key(finding: Finding, order: Mapping[str, int]) -> tuple[int, int, int, int, int]:
    """Migrations in run order, then statements; hmig's findings first, in rule order."""
    return (
        order.get(finding.migration, len(order)),
        -1 if finding.statement_index is None else finding.statement_index,
        finding.line or 0,
        finding.column or 0,
        0 if finding.source == "hmig" else 1,
    )
