"""hmig's own lint rules: what squawk cannot know, because it needs the target's table sizes.

Each rule lives in its own module with a docstring giving the problem and the fix, and exposes
`RULE`. A rule looks at one statement at a time, with the locks `hmig.locks` found in it, the
sizes of the tables on the target and the timeouts in force, and says what goes wrong and how
to avoid it. Rules must not read anything but their `Context`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hmig.lint.values import RelationSize, describe_size
from hmig.locks import StatementLocks, TableLock
from hmig.model import MigrationFile, Statement

# Below both, a lock held for the length of a scan or rewrite lasts milliseconds: no finding.
LARGE_ROWS = 10_000
LARGE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Context:
    """One statement of a pending migration, and what is known about the target."""

    migration: MigrationFile
    statement: Statement
    locks: StatementLocks
    sizes: Mapping[str, RelationSize]  # tables that exist on the target; new ones are absent
    lock_timeout_ms: int  # in force for this statement: the environment's, or a SET before it
    statement_timeout_ms: int
    transactional: bool

    def existing(self) -> Iterable[tuple[TableLock, RelationSize]]:
        """Locks on tables that exist on the target (and are not created by this statement)."""
        for lock in self.locks.locks:
            size = self.sizes.get(lock.table)
            if size is not None and not lock.creates:
                yield lock, size


@dataclass(frozen=True, slots=True)
class Hit:
    """What a rule found: the consequence, the fix, and whether to soften the severity."""

    message: str
    help: str
    softened: bool = False  # the text alone cannot prove it: reported as a warning


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule id (kebab-case), its severity, and the check itself."""

    id: str
    severity: str  # "error" | "warning"
    check: Callable[[Context], Iterable[Hit]]


def large(size: RelationSize) -> bool:
    """Big enough that a lock held while every row is read or copied is felt by users."""
    return (size.rows or 0) >= LARGE_ROWS or size.bytes >= LARGE_BYTES


def sized(lock: TableLock, size: RelationSize) -> str:
    """`patients (≈ 2.1 M rows, 1.4 GB)`."""
    return f"{lock.table} ({describe_size(size)})"


def blocked(level: str) -> str:
    """What waits behind `level`: ACCESS EXCLUSIVE stops reads too, the others only writes."""
    return "reads and writes" if level == "ACCESS EXCLUSIVE" else "writes"


def a_lock(level: str) -> str:
    """`an ACCESS EXCLUSIVE lock`, `a SHARE lock`."""
    return f"{'an' if level[:1] in 'AEIOU' else 'a'} {level} lock"


def rules() -> tuple[Rule, ...]:
    """Every hmig rule, in the order findings are reported for one statement."""
    from hmig.lint.rules import (
        blocking_lock_on_large_table,
        full_table_scan_under_lock,
        no_lock_timeout,
        table_rewrite,
    )

    return (
        table_rewrite.RULE,
        full_table_scan_under_lock.RULE,
        blocking_lock_on_large_table.RULE,
        no_lock_timeout.RULE,
    )
