"""Run pending migrations through the ports and say exactly what happened.

Each migration commits together with its history row (or all of them in one transaction), so a
migration is applied exactly once or not at all. Statements that cannot run in a transaction
run one by one, each recorded before and after, so a crash leaves an exact account instead of
a guess. The first failure stops the run; what was applied stays applied and is reported.
Pure: every effect goes through `Session`, `HistoryWriter` and `JsRenderer`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hmig import statements as statement_text
from hmig.errors import HmigError, InDoubt, JsMigrationError, Refused, StatementFailed
from hmig.model import (
    Failure,
    Kind,
    MigrationFile,
    Ran,
    Rendered,
    RunContext,
    RunReport,
    Statement,
    StatementProgress,
    TransactionMode,
)
from hmig.ports import HistoryWriter, JsRenderer, QueryFn, Session

Clock = Callable[[], float]


class Progress(Protocol):
    """Receives progress as it happens, for the terminal and the job log."""

    def started(self, migration: MigrationFile) -> None:
        """A migration begins."""

    def finished(self, ran: Ran) -> None:
        """A migration was applied and recorded."""


@dataclass(frozen=True, slots=True)
class Options:
    """How to run: the environment's settings and who is running."""

    mode: TransactionMode
    lock_timeout_ms: int
    statement_timeout_ms: int
    context: RunContext


def statement_checksum(statement: Statement) -> str:
    """Identifies a statement in `hmig_progress`, so an edited file is not resumed blindly."""
    return hashlib.sha256(statement.sql.encode("utf-8")).hexdigest()[:16]


def render(migration: MigrationFile, *, renderer: JsRenderer | None, query: QueryFn) -> Rendered:
    """The SQL a migration sends: parsed `.sql` statements, or `.js` through node-pg-migrate."""
    if migration.kind is Kind.SQL:
        reason = migration.no_transaction_reason
        return Rendered(migration.statements, transactional=reason is None, reason=reason)
    if renderer is None:
        raise JsMigrationError("no JavaScript renderer is available", file=migration.path)
    return renderer.render(migration, direction="up", query=query)


def check_resumable(
    pending: Sequence[MigrationFile], progress: Sequence[StatementProgress]
) -> None:
    """Refuse (exit 2) when an earlier run left a statement whose outcome is unknown."""
    by_name = {m.name: m for m in pending}
    for row in progress:
        migration = by_name.get(row.migration)
        if migration is None or row.state != "started":
            continue
        shown = _statement_label(migration, row.index)
        raise InDoubt(
            f"{migration.name}: an earlier run started {shown} outside a transaction and did "
            "not finish; it may or may not have taken effect",
            hint=(
                "Check the database. If it took effect, mark it done; if not, clear it so it "
                "runs again:\n"
                f"  UPDATE hmig_progress SET state = 'done' WHERE name = '{migration.name}' "
                f"AND statement_index = {row.index};\n"
                f"  DELETE FROM hmig_progress WHERE name = '{migration.name}' "
                f"AND statement_index = {row.index};\n"
                "then run hmig apply again. An INVALID index left by CREATE INDEX "
                "CONCURRENTLY must be dropped (DROP INDEX CONCURRENTLY) before it is retried."
            ),
        )


def apply(
    pending: Sequence[MigrationFile],
    *,
    session: Session,
    history: HistoryWriter,
    renderer: JsRenderer | None,
    options: Options,
    progress: Progress,
    done_statements: Sequence[StatementProgress] = (),
    clock: Clock,
) -> RunReport:
    """Apply `pending` in order; stop at the first failure and report it."""
    runner = _Runner(
        session=session,
        history=history,
        renderer=renderer,
        options=options,
        progress=progress,
        done=done_statements,
        clock=clock,
    )
    if options.mode is TransactionMode.ALL:
        return runner.all_in_one(pending)
    return runner.each_in_own(pending)


def refuse_non_transactional(rendered: Sequence[tuple[MigrationFile, Rendered]]) -> None:
    """`transaction: all` cannot hold a migration that must run outside a transaction."""
    blocked = [(m, r) for m, r in rendered if not r.transactional]
    if blocked:
        names = "; ".join(f"{m.path} ({r.reason})" for m, r in blocked)
        raise Refused(
            f"transaction: all cannot run migrations that must run outside a transaction: {names}",
            hint="Use transaction: per-migration for this environment, or move the statement "
            "to a migration of its own and apply in two steps.",
        )


class _Runner:
    def __init__(
        self,
        *,
        session: Session,
        history: HistoryWriter,
        renderer: JsRenderer | None,
        options: Options,
        progress: Progress,
        done: Sequence[StatementProgress],
        clock: Clock,
    ) -> None:
        self.session = session
        self.history = history
        self.renderer = renderer
        self.options = options
        self.progress = progress
        self.done = done
        self.clock = clock
        self.ran: list[Ran] = []

    # -- per-migration -----------------------------------------------------------------------

    def each_in_own(self, pending: Sequence[MigrationFile]) -> RunReport:
        for migration in pending:
            self.progress.started(migration)
            started = self.clock()
            try:
                failure = self._one(migration, started)
            except KeyboardInterrupt:
                self._rollback()
                return RunReport(ran=tuple(self.ran), cancelled=True)
            if failure is not None:
                return RunReport(ran=tuple(self.ran), failure=failure)
        return RunReport(ran=tuple(self.ran))

    def _one(self, migration: MigrationFile, started: float) -> Failure | None:
        if migration.kind is Kind.SQL and migration.no_transaction_reason:
            return self._outside_transaction(migration, _sql_rendered(migration), started)
        self.session.begin()
        statement: Statement | None = None
        try:
            self._timeouts_local()
            rendered = render(migration, renderer=self.renderer, query=self.session.query)
            if not rendered.transactional:
                # node-pg-migrate ran pgm.db queries outside any transaction: keep their effects.
                self.session.commit()
                return self._outside_transaction(migration, rendered, started)
            for statement in rendered.statements:
                self.session.execute(statement.sql)
            self.history.record_applied(
                migration=migration,
                duration_ms=self._elapsed(started),
                context=self.options.context,
            )
            self.session.commit()
        except (StatementFailed, JsMigrationError) as exc:
            self._rollback()
            return self._failure(migration, exc, statement, advice=self._advice_each())
        self._record_ran(migration, rendered, started)
        return None

    # -- all in one --------------------------------------------------------------------------

    def all_in_one(self, pending: Sequence[MigrationFile]) -> RunReport:
        applied: list[tuple[MigrationFile, Rendered, float]] = []
        self.session.begin()
        current: MigrationFile | None = None
        statement: Statement | None = None
        try:
            self._timeouts_local()
            for current in pending:
                self.progress.started(current)
                started = self.clock()
                rendered = render(current, renderer=self.renderer, query=self.session.query)
                refuse_non_transactional([(current, rendered)])
                for statement in rendered.statements:
                    self.session.execute(statement.sql)
                self.history.record_applied(
                    migration=current,
                    duration_ms=self._elapsed(started),
                    context=self.options.context,
                )
                applied.append((current, rendered, started))
                statement = None
            self.session.commit()
        except KeyboardInterrupt:
            self._rollback()
            return RunReport(ran=(), cancelled=True)
        except (StatementFailed, JsMigrationError, Refused) as exc:
            self._rollback()
            assert current is not None
            advice = (
                f"The whole batch was rolled back: none of the {len(pending)} migrations was "
                f"applied. Fix {current.path} and run hmig apply again."
            )
            return RunReport(ran=(), failure=self._failure(current, exc, statement, advice))
        for migration, rendered, started in applied:
            self._record_ran(migration, rendered, started)
        return RunReport(ran=tuple(self.ran))

    # -- outside a transaction ---------------------------------------------------------------

    def _outside_transaction(
        self, migration: MigrationFile, rendered: Rendered, started: float
    ) -> Failure | None:
        done = self._done_indexes(migration, rendered)
        total = len(rendered.statements)
        opts = self.options
        self.session.set_session_timeouts(
            lock_timeout_ms=opts.lock_timeout_ms, statement_timeout_ms=opts.statement_timeout_ms
        )
        for statement in rendered.statements:
            if statement.index in done:
                continue
            checksum = statement_checksum(statement)
            self.history.record_statement(
                migration=migration.name, index=statement.index, checksum=checksum, state="started"
            )
            try:
                self.session.execute(statement.sql)
            except (StatementFailed, KeyboardInterrupt) as exc:
                # The server rolled the failed statement back, so it is safe to run it again.
                self._record_failed(migration, statement, checksum, exc)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                completed = statement.index
                advice = (
                    f"This migration runs outside a transaction ({rendered.reason}). Statements "
                    f"1 to {completed} of {total} ran and stay applied; statement "
                    f"{completed + 1} failed and was rolled back. Fix it and run hmig apply "
                    f"again: it resumes at statement {completed + 1}."
                    if completed
                    else f"This migration runs outside a transaction ({rendered.reason}). "
                    "Its first statement failed and was rolled back; nothing of it is applied. "
                    "Fix it and run hmig apply again."
                )
                return self._failure(
                    migration, exc, statement, advice=advice, done=completed, total=total
                )
            self.history.record_statement(
                migration=migration.name, index=statement.index, checksum=checksum, state="done"
            )
        self.session.set_session_timeouts(lock_timeout_ms=0, statement_timeout_ms=0)
        self.session.begin()
        self.history.record_applied(
            migration=migration,
            duration_ms=self._elapsed(started),
            context=self.options.context,
        )
        self.history.clear_progress(migration=migration.name)
        self.session.commit()
        self._record_ran(migration, rendered, started)
        return None

    def _done_indexes(self, migration: MigrationFile, rendered: Rendered) -> set[int]:
        """Statements an earlier run completed; refuse when the file changed under them."""
        by_index = {s.index: s for s in rendered.statements}
        done: set[int] = set()
        for row in self.done:
            if row.migration != migration.name or row.state != "done":
                continue
            statement = by_index.get(row.index)
            if statement is None or statement_checksum(statement) != row.checksum:
                raise InDoubt(
                    f"{migration.name}: statement {row.index + 1} ran in an earlier attempt, "
                    "but the file has changed since, so hmig cannot tell what is left to run",
                    hint="Restore the file as it was and run hmig apply again to finish it; "
                    "put further changes in a new migration.",
                )
            done.add(row.index)
        return done

    def _record_failed(
        self,
        migration: MigrationFile,
        statement: Statement,
        checksum: str,
        exc: BaseException,
    ) -> None:
        # If the connection is gone, the row stays "started" and the next run asks a human.
        with contextlib.suppress(HmigError):
            self.history.record_statement(
                migration=migration.name,
                index=statement.index,
                checksum=checksum,
                state="failed",
                error=str(exc) or type(exc).__name__,
            )

    # -- helpers -----------------------------------------------------------------------------

    def _timeouts_local(self) -> None:
        self.session.set_local_timeouts(
            lock_timeout_ms=self.options.lock_timeout_ms,
            statement_timeout_ms=self.options.statement_timeout_ms,
        )

    def _rollback(self) -> None:
        with contextlib.suppress(HmigError):  # a lost connection rolls back on the server
            self.session.rollback()

    def _elapsed(self, started: float) -> float:
        return (self.clock() - started) * 1000

    def _record_ran(self, migration: MigrationFile, rendered: Rendered, started: float) -> None:
        ran = Ran(
            name=migration.name,
            kind=migration.kind,
            transactional=rendered.transactional,
            duration_ms=round(self._elapsed(started), 1),
            statements=len(rendered.statements),
        )
        self.ran.append(ran)
        self.progress.finished(ran)

    def _advice_each(self) -> str:
        kept = len(self.ran)
        earlier = f"the {kept} migration(s) before it in this run stay applied. " if kept else ""
        return f"This migration was rolled back; {earlier}Fix it and run hmig apply again."

    def _failure(
        self,
        migration: MigrationFile,
        exc: BaseException,
        statement: Statement | None,
        advice: str,
        *,
        done: int | None = None,
        total: int | None = None,
    ) -> Failure:
        sqlstate = detail = hint = None
        line = column = None
        position = None
        if isinstance(exc, StatementFailed):
            sqlstate, detail, hint, position = (
                exc.sqlstate,
                exc.detail,
                exc.server_hint,
                exc.position,
            )
        if isinstance(exc, JsMigrationError):
            line = exc.line
        if statement is not None and migration.kind is Kind.SQL:
            line, column = statement_text.locate(statement, position)
        return Failure(
            migration=migration.name,
            file=migration.path,
            message=getattr(exc, "reason", None) or str(exc),
            sqlstate=sqlstate,
            detail=detail,
            hint=hint,
            line=line,
            column=column,
            statement=statement.sql if statement is not None else None,
            statements_done=done,
            statements_total=total,
            advice=advice,
        )


def _sql_rendered(migration: MigrationFile) -> Rendered:
    reason = migration.no_transaction_reason
    return Rendered(migration.statements, transactional=reason is None, reason=reason)


def _statement_label(migration: MigrationFile, index: int) -> str:
    statements = migration.statements
    if index < len(statements) and statements[index].line:
        first = statements[index].sql.splitlines()[0][:80]
        return f"statement {index + 1} (line {statements[index].line}: {first})"
    return f"statement {index + 1}"
