"""Run pending migrations through the ports and say exactly what happened.

Each migration commits together with its history row (or all of them in one transaction), so a
migration is applied exactly once or not at all. Statements that cannot run in a transaction
run one by one, each recorded before and after, so a crash leaves an exact account instead of
a guess. The first failure stops the run; what was applied stays applied and is reported.
Pure: every effect goes through `Session`, `HistoryWriter` and `JsRenderer` (`faults.reached`
marks where the fault-injection tests kill a run; it does nothing unless a test armed it).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hmig import faults
from hmig import statements as statement_text
from hmig.errors import (
    HmigError,
    InDoubt,
    JsMigrationError,
    MigrationFileError,
    Refused,
    StatementFailed,
)
from hmig.model import (
    Failure,
    Kind,
    LockRetry,
    MigrationFile,
    Problem,
    Ran,
    Rendered,
    Retry,
    RunContext,
    RunReport,
    Statement,
    StatementProgress,
    TransactionMode,
)
from hmig.ports import HistoryWriter, JsRenderer, NoDown, QueryFn, Session

Clock = Callable[[], float]


class Progress(Protocol):
    """Receives progress as it happens, for the terminal and the job log."""

    def started(self, migration: MigrationFile) -> None:
        """A migration begins."""

    def finished(self, ran: Ran) -> None:
        """A migration was applied and recorded."""

    def retrying(self, retry: Retry) -> None:
        """A migration lost a lock race and will run again after a pause."""


# SQLSTATEs after which a rolled-back transaction may simply run again (PostgreSQL docs,
# Appendix A): lock_not_available (lock_timeout fired) and deadlock_detected.
_RETRYABLE = {"55P03": "lock_timeout", "40P01": "deadlock"}


@dataclass(frozen=True, slots=True)
class Options:
    """How to run: the environment's settings and who is running."""

    mode: TransactionMode
    lock_timeout_ms: int
    statement_timeout_ms: int
    context: RunContext
    retry: LockRetry = field(default_factory=LockRetry)
    direction: str = "up"  # "down" for rollback


def statement_checksum(statement: Statement) -> str:
    """Identifies a statement in `hmig_progress`, so an edited file is not resumed blindly."""
    return hashlib.sha256(statement.sql.encode("utf-8")).hexdigest()[:16]


def render(
    migration: MigrationFile,
    *,
    renderer: JsRenderer | None,
    query: QueryFn | None,
    direction: str = "up",
) -> Rendered:
    """The SQL a migration sends: parsed `.sql` statements, or `.js` through node-pg-migrate.

    Down for `.sql` is the `-- Down Migration` section or the `.down.sql` file; a migration
    without one raises `NoDown`.
    """
    if migration.kind is Kind.SQL:
        if direction == "up":
            return _sql_rendered(migration.statements, migration.no_transaction_directive)
        if migration.down_statements is None:
            raise NoDown(
                migration,
                "no -- Down Migration section"
                + ("" if migration.down_path else " and no .down.sql file"),
            )
        return _sql_rendered(migration.down_statements, directive=False)
    if renderer is None or query is None:
        raise JsMigrationError("no JavaScript renderer is available", file=migration.path)
    return renderer.render(migration, direction=direction, query=query)


def check_rendered(migration: MigrationFile, rendered: Rendered, *, direction: str = "up") -> None:
    """Refuse (exit 2) SQL a `.js` migration rendered that hmig refuses in a `.sql` file.

    node-pg-migrate sends each step as it is. hmig checks the steps as it checks a `.sql`
    file's statements (`statements.split`: parse errors, transaction control, ...), before
    anything runs: a `pgm.sql('COMMIT')` would otherwise commit half a migration, and the
    history would not say so.
    """
    reason = _rendered_problem(migration, rendered, direction=direction)
    if reason is not None:
        raise MigrationFileError(
            reason, file=migration.path, hint="Nothing was run. " + _RENDERED_HINT
        )


def check_resumable(
    pending: Sequence[MigrationFile],
    progress: Sequence[StatementProgress],
    *,
    progress_table: str,
    direction: str = "up",
) -> None:
    """Refuse (exit 2) when an earlier run left a statement whose outcome is unknown.

    `pending` is what this run would run in `direction`; `progress_table` names the table in
    the SQL the hint gives (schema-qualified, as the person will type it).
    """
    by_key = {progress_key(m.name, direction): m for m in pending}
    for row in progress:
        migration = by_key.get(row.migration)
        if migration is None or row.state != "started":
            continue
        shown = _statement_label(migration, row.index, direction)
        where = _row_filter(row.migration, row.index)
        command = _command(direction)
        raise InDoubt(
            f"{migration.name}: an earlier run started {shown} outside a transaction and did "
            "not finish; it may or may not have taken effect",
            hint=(
                "Check the database. If it took effect, mark it done; if not, clear it so it "
                "runs again:\n"
                f"  UPDATE {progress_table} SET state = 'done' {where};\n"
                f"  DELETE FROM {progress_table} {where};\n"
                f"then run hmig {command} again. An INVALID index left by CREATE INDEX "
                "CONCURRENTLY must be dropped (DROP INDEX CONCURRENTLY) before it is retried."
            ),
        )


def _command(direction: str) -> str:
    """The hmig command that runs migrations in `direction`, as advice names it."""
    return "rollback" if direction == "down" else "apply"


def progress_key(name: str, direction: str) -> str:
    """A migration's rows in `hmig_progress`: its up and down runs are kept apart."""
    return name + "#down" if direction == "down" else name


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
    sleep: Callable[[float], None],
    jitter: Callable[[], float],
) -> RunReport:
    """Apply `pending` in order; stop at the first failure and report it.

    `sleep` and `jitter` (a random number in [0, 1)) pace lock retries; they are passed in so
    the core stays free of clocks and randomness.
    """
    runner = _Runner(
        session=session,
        history=history,
        renderer=renderer,
        options=options,
        progress=progress,
        done=done_statements,
        clock=clock,
        pacing=(sleep, jitter),
    )
    if options.mode is TransactionMode.ALL:
        return runner.all_in_one(pending)
    return runner.each_in_own(pending)


def refuse_non_transactional(rendered: Sequence[tuple[MigrationFile, Rendered]]) -> None:
    """`transaction: all` cannot hold a migration that must run outside a transaction.

    Nor an enum value added by one migration and used by a later one of the batch: PostgreSQL
    refuses a new enum value until the transaction that adds it commits ("unsafe use of new
    value"), so the batch would fail, and roll back, at that migration.
    """
    blocked = [f"{m.path} ({r.reason})" for m, r in rendered if not r.transactional]
    if blocked:
        raise Refused(
            "transaction: all cannot run migrations that must run outside a transaction: "
            + "; ".join(blocked),
            hint="Use transaction: per-migration for this environment, or move the statement "
            "to a migration of its own and apply in two steps.",
        )
    used = _enum_values_used_later(rendered)
    if used:
        raise Refused(
            "transaction: all cannot run these migrations in one transaction: " + "; ".join(used),
            hint="A transaction cannot use an enum value it added. Apply up to the migration "
            "that adds it first (hmig apply --target NAME), then the rest; or use transaction: "
            "per-migration for this environment.",
        )


def _enum_values_used_later(rendered: Sequence[tuple[MigrationFile, Rendered]]) -> list[str]:
    found = []
    for index, (migration, sent) in enumerate(rendered):
        for statement in sent.statements:
            literal = statement_text.added_enum_value(statement.sql)
            if literal is None:
                continue
            users = [
                later.path
                for later, later_sent in rendered[index + 1 :]
                if any(literal in s.sql for s in later_sent.statements)
            ]
            if users:
                found.append(
                    f"{migration.path} adds enum value {literal}, which {users[0]} appears to use"
                )
    return found


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
        pacing: tuple[Callable[[float], None], Callable[[], float]],
    ) -> None:
        self.sleep, self.jitter = pacing
        self.retries = 0
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
            faults.reached("after-commit")
        return RunReport(ran=tuple(self.ran))

    def _one(self, migration: MigrationFile, started: float) -> Failure | None:
        if migration.kind is Kind.SQL:
            # `.sql` statements are known before running: go straight outside a transaction.
            rendered = self._render(migration)
            if not rendered.transactional:
                return self._outside_transaction(migration, rendered, started)
        self.retries = 0
        while True:
            try:
                rendered = self._attempt(migration, started)
            except _AttemptFailed as failed:
                self._rollback()
                if self._pause_before_retry(migration, failed, started):
                    continue
                advice = _with_retry_note(self._advice_each(failed), failed)
                return self._failure(
                    migration, failed.exc, failed.statement, advice, at_commit=failed.at_commit
                )
            if not rendered.transactional:
                return self._outside_transaction(migration, rendered, started)
            self._record_ran(migration, rendered, duration_ms=self._elapsed(started))
            return None

    def _attempt(self, migration: MigrationFile, started: float) -> Rendered:
        """One try: render and run the migration with its history row, then commit."""
        self._begin()
        statement: Statement | None = None
        try:
            rendered = self._render(migration)
            if not rendered.transactional:
                # node-pg-migrate ran pgm.db queries outside any transaction: keep their effects.
                self.session.commit()
                return rendered
            for statement in rendered.statements:
                self.session.execute(statement.sql)
        except (StatementFailed, JsMigrationError) as exc:
            raise _AttemptFailed(exc, statement) from exc
        try:
            self._record_and_commit(migration, started)
        except StatementFailed as exc:  # the COMMIT's (a deferred constraint): no line
            raise _AttemptFailed(exc, None, at_commit=True) from exc
        return rendered

    def _pause_before_retry(
        self,
        migration: MigrationFile,
        failed: _AttemptFailed,
        started: float,
        *,
        statement_index: int | None = None,
    ) -> bool:
        """Sleep before another try when the failure was a lost lock race within budget."""
        exc = failed.exc
        reason = _RETRYABLE.get(exc.sqlstate or "") if isinstance(exc, StatementFailed) else None
        retry = self.options.retry
        if reason is None or retry.budget_ms <= 0:
            return False
        base_ms = min(retry.max_delay_ms, retry.initial_delay_ms * 2**self.retries)
        delay_ms = base_ms * (0.5 + 0.5 * self.jitter())  # "equal jitter": spread, never zero
        if self._elapsed(started) + delay_ms > retry.budget_ms:
            failed.exhausted = (
                f"gave up after {self.retries + 1} attempts in "
                f"{self._elapsed(started) / 1000:.1f} s (lock_retry.budget "
                f"{retry.budget_ms / 1000:g} s); last {reason}"
            )
            return False
        relations = statement_text.relations(failed.statement.sql) if failed.statement else ()
        self.retries += 1
        self.progress.retrying(
            Retry(
                migration=migration.name,
                attempt=self.retries,
                reason=reason,
                delay_s=delay_ms / 1000,
                holders=tuple(self.session.lock_holders(relations)),
                statement=statement_index,
            )
        )
        self.sleep(delay_ms / 1000)
        return True

    # -- all in one --------------------------------------------------------------------------

    def all_in_one(self, pending: Sequence[MigrationFile]) -> RunReport:
        started = self.clock()
        while True:
            try:
                applied = self._batch(pending)
            except KeyboardInterrupt:
                self._rollback()
                return RunReport(ran=(), cancelled=True)
            except _AttemptFailed as failed:
                self._rollback()
                assert failed.migration is not None
                if self._pause_before_retry(failed.migration, failed, started):
                    continue
                advice = _with_retry_note(self._advice_all(failed, len(pending)), failed)
                failure = self._failure(
                    failed.migration,
                    failed.exc,
                    failed.statement,
                    advice,
                    at_commit=failed.at_commit,
                )
                return RunReport(ran=(), failure=failure)
            for migration, rendered, duration_ms in applied:
                self._record_ran(migration, rendered, duration_ms=duration_ms)
            return RunReport(ran=tuple(self.ran))

    def _batch(
        self, pending: Sequence[MigrationFile]
    ) -> list[tuple[MigrationFile, Rendered, float]]:
        """One try at the whole batch in one transaction."""
        applied: list[tuple[MigrationFile, Rendered, float]] = []
        failed_at_commit = False
        self._begin()
        current: MigrationFile | None = None
        statement: Statement | None = None
        try:
            for current in pending:
                self.progress.started(current)
                started = self.clock()
                rendered = self._render(current)
                refuse_non_transactional([(current, rendered)])
                for statement in rendered.statements:
                    self.session.execute(statement.sql)
                # Its own duration, not the batch's: the commit comes after all of them.
                applied.append((current, rendered, self._elapsed(started)))
                statement = None
            failed_at_commit = True
            # One transaction: the history rows go in together, before the one commit.
            faults.reached("before-history-row")
            with self.session.together():
                self.history.record_applied_batch(
                    applied=[(m, ms) for m, _, ms in applied], context=self.options.context
                )
                faults.reached("after-history-row")
                self.session.commit()
        except (StatementFailed, JsMigrationError, Refused) as exc:
            raise _AttemptFailed(exc, statement, current, at_commit=failed_at_commit) from exc
        return applied

    def _advice_all(self, failed: _AttemptFailed, count: int) -> str:
        assert failed.migration is not None
        if _session_ended(failed.exc):
            return (
                "The server ended hmig's session during the batch. It commits together with "
                f"its history rows, so all {count} migrations are applied or none, and the "
                "history says which: when the server accepts connections again, run hmig "
                "apply again."
            )
        rolled_back = (
            f"The whole batch was rolled back: none of the {count} migrations was applied."
        )
        if failed.at_commit:
            return (
                "Every statement of the batch ran; writing its history rows or its COMMIT "
                f"failed. {rolled_back} When the message is about a constraint, a check "
                "deferred to COMMIT (a DEFERRABLE constraint or a constraint trigger) failed, "
                "and any migration of the batch may have broken it, not only the last one "
                "named here: find it from the server's message, fix it and run hmig apply again."
            )
        return f"{rolled_back} Fix {failed.migration.path} and run hmig apply again."

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
            key = self._progress_key(migration)
            try:
                self.history.record_statement(
                    migration=key, index=statement.index, checksum=checksum, state="started"
                )
            except StatementFailed as exc:  # the statement was not sent
                advice = self._advice_unstarted(migration, rendered, exc, statement.index, total)
                return self._failure(
                    migration, exc, None, advice, done=statement.index, total=total
                )
            faults.reached("before-statement")
            try:
                self._run_statement_with_retries(migration, statement, started)
                faults.reached("after-statement")
            except (StatementFailed, KeyboardInterrupt) as exc:
                # The server rolled the failed statement back, so it is safe to run it again.
                self._record_failed(migration, statement, checksum, exc)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                completed = statement.index
                advice = self._advice_outside(rendered, exc, completed=completed, total=total)
                return self._failure(
                    migration, exc, statement, advice=advice, done=completed, total=total
                )
            try:
                self.history.record_statement(
                    migration=key, index=statement.index, checksum=checksum, state="done"
                )
            except StatementFailed as exc:  # the statement ran; its row still says `started`
                advice = self._advice_unmarked(migration, rendered, exc, statement.index, total)
                return self._failure(
                    migration, exc, None, advice, done=statement.index + 1, total=total
                )
            faults.reached("between-statements")
        try:
            self._record_outside(migration, started)
        except StatementFailed as exc:
            self._rollback()
            advice = self._advice_unrecorded(rendered, exc, total=total)
            return self._failure(
                migration, exc, None, advice, done=total, total=total, at_commit=True
            )
        self._record_ran(migration, rendered, duration_ms=self._elapsed(started))
        return None

    def _record_outside(self, migration: MigrationFile, started: float) -> None:
        """Every statement ran: the history row, and the progress rows cleared, in one commit."""
        self.session.set_session_timeouts(lock_timeout_ms=0, statement_timeout_ms=0)
        self.session.begin()
        with self.session.together():
            self._record_in_transaction(migration, started)
            self.history.clear_progress(migration=self._progress_key(migration))
            self.session.commit()

    def _run_statement_with_retries(
        self, migration: MigrationFile, statement: Statement, started: float
    ) -> None:
        """Run one statement outside a transaction; on a lost lock race, run only it again.

        Only statements that are safe to repeat are retried. A failed CREATE INDEX CONCURRENTLY
        leaves an INVALID index behind: it is dropped (DROP INDEX CONCURRENTLY) first.
        """
        retrying = False
        while True:
            try:
                if retrying:
                    # The cleanup waits for the same lockers, so it is retried like the build.
                    self._drop_invalid_index(statement)
                self.session.execute(statement.sql)
                return
            except StatementFailed as exc:
                if not statement_text.safe_to_repeat(statement.sql):
                    raise
                failed = _AttemptFailed(exc, statement)
                if not self._pause_before_retry(
                    migration, failed, started, statement_index=statement.index
                ):
                    raise
                retrying = True

    def _drop_invalid_index(self, statement: Statement) -> None:
        name = statement_text.concurrent_index_name(statement.sql)
        if name is not None and self.session.invalid_index(name):
            self.session.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_quote_qualified(name)}")

    def _done_indexes(self, migration: MigrationFile, rendered: Rendered) -> set[int]:
        """Statements an earlier run completed; refuse when the file changed under them."""
        by_index = {s.index: s for s in rendered.statements}
        done: set[int] = set()
        for row in self.done:
            if row.migration != self._progress_key(migration) or row.state != "done":
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
                migration=self._progress_key(migration),
                index=statement.index,
                checksum=checksum,
                state="failed",
                error=str(exc) or type(exc).__name__,
            )

    # -- helpers -----------------------------------------------------------------------------

    def _render(self, migration: MigrationFile) -> Rendered:
        """Render, then check the SQL as `check_rendered` does; none of it has run yet.

        The read-only preview already checked what it could render; this catches a migration
        that renders differently now (its `pgm.db` queries see what earlier ones did), as a
        failure of this migration: the migrations before it in this run are already applied.
        """
        direction = self.options.direction
        rendered = render(
            migration, renderer=self.renderer, query=self.session.query, direction=direction
        )
        reason = _rendered_problem(migration, rendered, direction=direction)
        if reason is not None:
            raise JsMigrationError(reason, file=migration.path, hint=_RENDERED_HINT)
        return rendered

    def _record_and_commit(self, migration: MigrationFile, started: float) -> None:
        """The history row and the COMMIT, sent together: one round trip, not two."""
        with self.session.together():
            self._record_in_transaction(migration, started)
            self.session.commit()

    def _record_in_transaction(self, migration: MigrationFile, started: float) -> None:
        """The history row, inside the migration's open transaction (a fault point each side)."""
        faults.reached("before-history-row")
        self._record(migration, started)
        faults.reached("after-history-row")

    def _record(self, migration: MigrationFile, started: float) -> None:
        if self.options.direction == "down":
            self.history.record_reverted(migration=migration, context=self.options.context)
        else:
            self.history.record_applied(
                migration=migration,
                duration_ms=self._elapsed(started),
                context=self.options.context,
            )

    @property
    def _command(self) -> str:
        return _command(self.options.direction)

    def _progress_key(self, migration: MigrationFile) -> str:
        return progress_key(migration.name, self.options.direction)

    def _begin(self) -> None:
        self.session.begin(
            lock_timeout_ms=self.options.lock_timeout_ms,
            statement_timeout_ms=self.options.statement_timeout_ms,
        )

    def _rollback(self) -> None:
        with contextlib.suppress(HmigError):  # a lost connection rolls back on the server
            self.session.rollback()

    def _elapsed(self, started: float) -> float:
        return (self.clock() - started) * 1000

    def _record_ran(
        self, migration: MigrationFile, rendered: Rendered, *, duration_ms: float
    ) -> None:
        ran = Ran(
            name=migration.name,
            kind=migration.kind,
            transactional=rendered.transactional,
            duration_ms=round(duration_ms, 1),
            statements=len(rendered.statements),
            retries=self.retries,
        )
        self.ran.append(ran)
        self.progress.finished(ran)

    def _advice_outside(
        self, rendered: Rendered, exc: BaseException, *, completed: int, total: int
    ) -> str:
        """What to do after statement `completed + 1` of a non-transactional migration failed."""
        outside = f"This migration runs outside a transaction ({rendered.reason})."
        if _session_ended(exc):
            # Cut off with its session, the statement may have taken effect (or left an
            # INVALID index): its progress row stays `started` and the next run asks a human.
            kept = f"; statements 1 to {completed} ran and stay applied" if completed else ""
            return (
                f"{outside} The server ended hmig's session while statement {completed + 1} of "
                f"{total} ran, so whether it took effect is unknown{kept}. When the server "
                f"accepts connections again, run hmig {self._command} again: it stops at that "
                "statement and says how to check it."
            )
        if completed:
            return (
                f"{outside} Statements 1 to {completed} of {total} ran and stay applied; "
                f"statement {completed + 1} failed and was rolled back. Fix it and run hmig "
                f"{self._command} again: it resumes at statement {completed + 1}."
            )
        return (
            f"{outside} Its first statement failed and was rolled back; nothing of it is "
            f"applied. Fix it and run hmig {self._command} again."
        )

    def _advice_unstarted(
        self,
        migration: MigrationFile,
        rendered: Rendered,
        exc: StatementFailed,
        index: int,
        total: int,
    ) -> str:
        """What to do when recording that statement `index + 1` starts failed: it never ran."""
        number = index + 1
        kept = f" {_statements_kept(index, total)}." if index else ""
        told = (
            f"This migration runs outside a transaction ({rendered.reason}).{kept} Recording in "
            f"hmig_progress that statement {number} was starting failed, so hmig did not send "
            "it: it has not run."
        )
        if _session_ended(exc):
            return (
                f"{told} The server ended hmig's session during that write, so its row may say "
                f"`started`. When the server accepts connections again, run hmig "
                f"{self._command} again. If it stops at statement {number}, clear that row "
                f"(DELETE FROM {self.history.progress_table} "
                f"{_row_filter(self._progress_key(migration), index)}) and run it again."
            )
        return (
            f"{told} Fix the cause and run hmig {self._command} again: it resumes at "
            f"statement {number}."
        )

    def _advice_unmarked(
        self,
        migration: MigrationFile,
        rendered: Rendered,
        exc: StatementFailed,
        index: int,
        total: int,
    ) -> str:
        """What to do when statement `index + 1` ran but recording it as done failed."""
        number = index + 1
        row = "may still say" if _session_ended(exc) else "still says"
        then = (
            "it records the migration without running any statement again"
            if number == total
            else f"it resumes after statement {number}"
        )
        return (
            f"This migration runs outside a transaction ({rendered.reason}). "
            f"{_statements_kept(number, total)}, but recording in hmig_progress that "
            f"statement {number} finished failed: its row {row} `started`, and a run that "
            "finds it so stops there, unsure whether it took effect. It did: mark it done "
            f"(UPDATE {self.history.progress_table} SET state = 'done' "
            f"{_row_filter(self._progress_key(migration), index)}) and run hmig "
            f"{self._command} again: {then}."
        )

    def _advice_unrecorded(self, rendered: Rendered, exc: StatementFailed, *, total: int) -> str:
        """What to do when every statement ran outside a transaction but the record failed."""
        statements = (
            "Its statement ran and stays applied"
            if total == 1
            else f"All {total} of its statements ran and stay applied"
        )
        ran = (
            f"This migration runs outside a transaction ({rendered.reason}). {statements}, "
            "and hmig_progress says so"
        )
        if _session_ended(exc):
            return (
                f"{ran}; the server ended hmig's session while it recorded the migration, so "
                "whether the record was committed is unknown. When the server accepts "
                f"connections again, run hmig {self._command} again: it finds the migration "
                "recorded, or records it without running any statement again."
            )
        return (
            f"{ran}; recording it in the history failed and was rolled back. Fix the cause and "
            f"run hmig {self._command} again: it records the migration without running any "
            "statement again."
        )

    def _advice_each(self, failed: _AttemptFailed) -> str:
        exc = failed.exc
        kept = len(self.ran)
        earlier = f"The {kept} migration(s) before it in this run stay applied. " if kept else ""
        if _session_ended(exc):
            return (
                "The server ended hmig's session while this migration ran. It commits together "
                "with its history row, so it is applied entirely or not at all, and the history "
                f"says which. {earlier}Nothing points at the migration itself: when the server "
                "accepts connections again, run hmig apply again."
            )
        if failed.at_commit:
            return (
                "Every statement of this migration ran; writing its history row or its COMMIT "
                "failed. When the message is about a constraint, a check deferred to COMMIT (a "
                "DEFERRABLE constraint or a constraint trigger) found the violation. This "
                f"migration was rolled back. {earlier}Fix it and run hmig apply again."
            )
        return f"This migration was rolled back. {earlier}Fix it and run hmig apply again."

    def _failure(
        self,
        migration: MigrationFile,
        exc: BaseException,
        statement: Statement | None,
        advice: str,
        *,
        done: int | None = None,
        total: int | None = None,
        at_commit: bool = False,
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
        message = getattr(exc, "reason", None) or str(exc)
        if isinstance(exc, StatementFailed):
            advice = _with_extension_note(advice, message)
        return Failure(
            migration=migration.name,
            file=migration.path,
            message=message,
            sqlstate=sqlstate,
            detail=detail,
            hint=hint,
            line=line,
            column=column,
            statement=statement.sql if statement is not None else None,
            statements_done=done,
            statements_total=total,
            advice=advice,
            at_commit=at_commit,
        )


class _AttemptFailed(Exception):
    """Internal: one attempt failed; carries what `_failure` needs to explain it."""

    def __init__(
        self,
        exc: HmigError,
        statement: Statement | None,
        migration: MigrationFile | None = None,
        *,
        at_commit: bool = False,
    ) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.statement = statement
        self.migration = migration
        self.at_commit = at_commit  # every statement ran; the history rows or COMMIT failed
        self.exhausted: str | None = None


def _statements_kept(count: int, total: int) -> str:
    """The statements a run got through, which stay applied (`count` is at least 1)."""
    if count == 1:
        return f"Statement 1 of {total} ran and stays applied"
    return f"Statements 1 to {count} of {total} ran and stay applied"


def _row_filter(key: str, index: int) -> str:
    """The WHERE clause of one `hmig_progress` row, in SQL the advice asks a person to run."""
    literal = "'" + key.replace("'", "''") + "'"
    return f"WHERE name = {literal} AND statement_index = {index}"


def _session_ended(exc: BaseException) -> bool:
    """The server ended the session (it says nothing about the migration's SQL).

    PostgreSQL docs, Appendix A: class 08 (connection exception) and 57P01-57P05 (terminated
    by an administrator or a shutdown, cannot connect now, database dropped, idle timeout).
    """
    return isinstance(exc, StatementFailed) and (exc.sqlstate or "").startswith(("08", "57P0"))


# PostgreSQL 16+: `extension "x" is not available`; 15 and older name the control file.
_MISSING_EXTENSION = re.compile(
    r'extension "(?P<name>[^"]+)" is not available'
    r'|extension control file "[^"]*?(?P<file>[^/"]+)\.control"'
)


def missing_extension(message: str) -> str | None:
    """The extension a server's error says is not installed on it, or None."""
    found = _MISSING_EXTENSION.search(message)
    return (found["name"] or found["file"]) if found else None


def _with_extension_note(advice: str, message: str) -> str:
    """A missing extension is the server's setup, not the migration's SQL: say what to do."""
    name = missing_extension(message)
    if name is None:
        return advice
    return (
        f"The server has no {name!r} extension to create: it is not installed there. The "
        "embedded PostgreSQL ships without contrib extensions such as uuid-ossp and pgcrypto; "
        "for UUIDs, gen_random_uuid() is built in since PostgreSQL 13. Otherwise install the "
        f"extension on the server first. {advice}"
    )


def _with_retry_note(advice: str, failed: _AttemptFailed) -> str:
    if failed.exhausted is None:
        return advice
    return (
        f"Lock retries {failed.exhausted}. Find the session holding the lock (the retries above "
        "name it), or run when the table is quiet, or raise lock_retry.budget. " + advice
    )


def _quote_qualified(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


_RENDERED_HINT = (
    "node-pg-migrate would send this SQL as it is; hmig refuses it as it refuses it in a .sql "
    "file. Change the migration's pgm calls (pgm.noTransaction() rather than BEGIN or COMMIT) "
    "and run the command again."
)


def _rendered_problem(
    migration: MigrationFile, rendered: Rendered, *, direction: str
) -> str | None:
    """What hmig refuses in the first bad step of a `.js` migration's SQL, or None.

    The same checks a `.sql` file gets when it is read (discovery): control characters, then
    `statements.split` (parse errors, transaction control, psql meta-commands, COPY from or to
    the client).
    """
    if migration.kind is not Kind.JS:
        return None  # a `.sql` file's statements were checked when it was read
    total = len(rendered.statements)
    for step in rendered.statements:
        problem = statement_text.binary_problem(step.sql)
        if problem is None:
            try:
                statement_text.split(step.sql, statement_text.Section(step.sql, 0))
            except statement_text.SqlProblem as exc:
                problem = exc.problem
        if problem is not None:
            return f"{direction}() renders {_step_label(step, problem, total)}: {problem.message}"
    return None


def _step_label(step: Statement, problem: Problem, total: int) -> str:
    """The line of the step the problem is on, shown safely, and which step it is."""
    lines = step.sql.splitlines() or [""]
    line = min(max(problem.line or 1, 1), len(lines))
    shown = statement_text.visible(lines[line - 1].strip())
    shown = shown if len(shown) <= 80 else shown[:79] + "…"
    where = f", line {line}" if len(lines) > 1 else ""
    return f"`{shown}` (SQL step {step.index + 1} of {total}{where})"


def _sql_rendered(statements: tuple[Statement, ...], directive: bool) -> Rendered:
    reason = "declared with -- hmig:no-transaction" if directive else None
    for statement in statements:
        if reason is None and statement.no_transaction:
            line = f" (line {statement.line})" if statement.line else ""
            reason = f"{statement.no_transaction}{line}"
    return Rendered(statements, transactional=reason is None, reason=reason)


def _statement_label(migration: MigrationFile, index: int, direction: str) -> str:
    statements = (migration.down_statements or ()) if direction == "down" else migration.statements
    if index < len(statements) and statements[index].line:
        first = statements[index].sql.splitlines()[0][:80]
        return f"statement {index + 1} (line {statements[index].line}: {first})"
    return f"statement {index + 1}"
