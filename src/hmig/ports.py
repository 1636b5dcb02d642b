"""The Protocols through which the pure core talks to the world.

Adapters (`postgres`, `node`) implement them; entry points pass the implementations in. Nothing
here may import an adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from hmig.model import MigrationFile, QueryResult, Rendered, RunContext

QueryFn = Callable[[str, Sequence[object]], Sequence[QueryResult]]


class Session(Protocol):
    """A live database session; transactions are explicit."""

    def begin(
        self,
        *,
        read_only: bool = False,
        lock_timeout_ms: int | None = None,
        statement_timeout_ms: int | None = None,
    ) -> None:
        """Open a transaction, with the environment's timeouts as SET LOCAL when given."""

    def commit(self) -> None:
        """Commit the open transaction."""

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""

    def together(self) -> AbstractContextManager[None]:
        """Send the statements run inside at once, when the block ends; their results unread."""

    def set_session_timeouts(self, *, lock_timeout_ms: int, statement_timeout_ms: int) -> None:
        """Apply the timeouts to the session, for statements run outside a transaction."""

    def execute(self, sql: str) -> None:
        """Run one statement (or a multi-statement string); raise `StatementFailed`."""

    def query(self, sql: str, params: Sequence[object]) -> Sequence[QueryResult]:
        """Run a query for a `.js` migration's `pgm.db` and return its rows."""

    def lock_holders(self, relations: Sequence[str]) -> list[str]:
        """Other sessions holding locks on these relations (all relations when empty)."""

    def invalid_index(self, name: str) -> bool:
        """True when an index of that name exists and is INVALID."""


class HistoryWriter(Protocol):
    """Writes the history tables; every call runs in the session's current transaction."""

    @property
    def progress_table(self) -> str:
        """`hmig_progress` as SQL a person runs by hand: schema-qualified, quoted as needed."""

    def record_applied(
        self, *, migration: MigrationFile, duration_ms: float, context: RunContext
    ) -> None:
        """Insert the `pgmigrations` row and hmig's own record of it."""

    def record_applied_batch(
        self, *, applied: Sequence[tuple[MigrationFile, float]], context: RunContext
    ) -> None:
        """`transaction: all`: the rows of every migration of the batch, in order, at once."""

    def record_reverted(self, *, migration: MigrationFile, context: RunContext) -> None:
        """Delete the `pgmigrations` row (as node-pg-migrate's down does) and hmig's record."""

    def record_statement(
        self, *, migration: str, index: int, checksum: str, state: str, error: str | None = None
    ) -> None:
        """Record a non-transactional statement's progress (autocommit)."""

    def clear_progress(self, *, migration: str) -> None:
        """Forget a non-transactional migration's progress once it is recorded as applied."""


class JsRenderer(Protocol):
    """Turns a `.js` migration into SQL with node-pg-migrate's own MigrationBuilder."""

    def render(self, migration: MigrationFile, *, direction: str, query: QueryFn) -> Rendered:
        """Run the migration's `up`/`down` and return the SQL it queued."""


class NoDown(Exception):
    """A migration has no way down (raised by renderers; execution lists them all)."""

    def __init__(self, migration: MigrationFile, reason: str) -> None:
        super().__init__(reason)
        self.migration = migration
        self.reason = reason
