"""`-- hmig:ignore rule-id[, rule-id]` comments: which rules the author accepted on a statement.

A directive applies to the statement on whose lines it stands (a trailing comment after the
`;` included) or to the statement directly below the run of comment lines that holds it, the
way squawk's own `-- squawk-ignore` works. Pure: text in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hmig.model import Statement
from hmig.statements import up_section

# One prefix for all of hmig's comments, as `-- hmig:no-transaction` (issue 8).
_DIRECTIVE = re.compile(
    r"--\s*hmig:ignore\s+([A-Za-z0-9_-]+(?:\s*,\s*[A-Za-z0-9_-]+)*)", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Ignore:
    """One rule id named by a directive, and where the directive is."""

    statement_index: int | None  # None: the comment is on or above no statement
    rule: str
    line: int | None  # 1-based line in the file; None for SQL generated from `.js`


def ignores(statements: Sequence[Statement], source: str | None) -> tuple[Ignore, ...]:
    """Every rule a directive names, attached to its statement.

    With the file's text (`.sql`), comments above a statement count; without it (`.js`, whose
    SQL is generated), only comments inside the statement's own text do.
    """
    found: list[Ignore] = []
    lines = source.split("\n") if source is not None else None
    for statement in statements:
        if lines is not None and statement.line is not None:
            found.extend(_in_file(statement, lines))
        else:
            found.extend(_in_text(statement))
    if source is not None and lines is not None:
        found.extend(_orphans(source, lines, {d.line for d in found}))
    return tuple(dict.fromkeys(found))


def _orphans(source: str, lines: list[str], attached: set[int | None]) -> list[Ignore]:
    """Directives of the up section that stand on or above no statement: they ignore nothing."""
    section = up_section(source)
    first = source[: section.offset].count("\n") + 1
    last = first + section.text.count("\n")
    return [
        Ignore(None, rule, number)
        for number in range(first, min(last, len(lines)) + 1)
        if number not in attached
        for rule in _rules(lines[number - 1])
    ]


def _in_file(statement: Statement, lines: list[str]) -> list[Ignore]:
    first = statement.line or 1
    last = first + statement.sql.count("\n")
    numbers = list(range(first, min(last, len(lines)) + 1))
    above = first - 1
    while above >= 1 and lines[above - 1].strip().startswith("--"):
        numbers.append(above)
        above -= 1
    return [
        Ignore(statement.index, rule, number)
        for number in sorted(numbers)
        for rule in _rules(lines[number - 1])
    ]


def _in_text(statement: Statement) -> list[Ignore]:
    found: list[Ignore] = []
    for offset, text in enumerate(statement.sql.split("\n")):
        line = statement.line + offset if statement.line is not None else None
        found.extend(Ignore(statement.index, rule, line) for rule in _rules(text))
    return found


def _rules(line: str) -> list[str]:
    match = _DIRECTIVE.search(line)
    if match is None:
        return []
    return [rule.strip().lower() for rule in match.group(1).split(",") if rule.strip()]
