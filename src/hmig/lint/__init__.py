"""Lint of pending migrations: hmig's own context rules, merged with squawk's findings.

`check` is the whole feature as a pure function: the entry point fetches squawk's findings
(through a `Linter`, the `hmig.linter.Squawk` adapter) and the target's table sizes (the
`hmig.postgres.relations` adapter, for the names `tables_to_size` returns), and passes them in.
This package must not start processes, read files or talk to a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hmig.lint.checker import SUPERSEDES, UNUSED_IGNORE, check, tables_to_size
from hmig.lint.values import LintReport, RelationSize, describe_bytes, describe_size
from hmig.model import Finding, MigrationFile, Rendered

__all__ = [
    "SUPERSEDES",
    "UNUSED_IGNORE",
    "LintReport",
    "Linter",
    "RelationSize",
    "check",
    "describe_bytes",
    "describe_size",
    "tables_to_size",
]


class Linter(Protocol):
    """An external linter run once over every pending migration (squawk)."""

    def lint(
        self,
        pending: Sequence[tuple[MigrationFile, Rendered]],
        *,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
        server_version: str | None = None,
    ) -> tuple[Finding, ...]:
        """Its findings, located in the migrations' files (or generated statements)."""
