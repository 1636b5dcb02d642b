"""The pure parts of execution: rendering `.sql`, resuming, refusing, statement checksums."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from hmig import execution
from hmig.errors import ExitCode, InDoubt, JsMigrationError, Refused
from hmig.model import (
    Kind,
    MigrationFile,
    QueryResult,
    Rendered,
    Statement,
    StatementProgress,
)

CREATE_INDEX = Statement(
    index=1,
    sql="CREATE INDEX CONCURRENTLY users_email ON users (email)\n  WHERE email IS NOT NULL",
    line=4,
    column=1,
    no_transaction="CREATE INDEX CONCURRENTLY",
)
PLAIN = Statement(index=0, sql="CREATE TABLE users (email text)", line=2, column=1)


def migration(
    name: str,
    *statements: Statement,
    kind: Kind = Kind.SQL,
    directive: bool = False,
) -> MigrationFile:
    return MigrationFile(
        name=name,
        path=f"migrations/{name}.{kind.value}",
        abspath=Path("x"),
        kind=kind,
        checksum="sha256:0",
        statements=statements,
        no_transaction_directive=directive,
    )


def progress(name: str, index: int, state: str) -> StatementProgress:
    return StatementProgress(migration=name, index=index, checksum="abc", state=state)


def no_query(sql: str, params: Sequence[object] = ()) -> QueryResult:
    raise AssertionError(f"a .sql migration must not query the database: {sql}")


INDEXED = migration("002_index", PLAIN, CREATE_INDEX)
TABLE = '"Ops".hmig_progress'  # a history schema that is not public, as the adapter names it


# --- check_resumable --------------------------------------------------------------------------


def test_check_resumable__started_row_of_a_pending_migration__raises_in_doubt() -> None:
    with pytest.raises(InDoubt) as caught:
        execution.check_resumable(
            [INDEXED], [progress("002_index", 1, "started")], progress_table=TABLE
        )

    error = caught.value
    assert error.exit_code is ExitCode.CANNOT
    assert int(error.exit_code) == 2
    assert error.message == (
        "002_index: an earlier run started statement 2 (line 4: CREATE INDEX CONCURRENTLY "
        "users_email ON users (email)) outside a transaction and did not finish; it may or may "
        "not have taken effect"
    )
    assert (
        "  UPDATE \"Ops\".hmig_progress SET state = 'done' WHERE name = '002_index' "
        "AND statement_index = 1;\n"
    ) in error.hint
    assert (
        "  DELETE FROM \"Ops\".hmig_progress WHERE name = '002_index' AND statement_index = 1;\n"
    ) in error.hint
    assert "then run hmig apply again." in error.hint
    assert "DROP INDEX CONCURRENTLY" in error.hint


def test_check_resumable__started_row_beyond_the_statements__names_the_statement_number() -> None:
    with pytest.raises(InDoubt) as caught:
        execution.check_resumable(
            [INDEXED], [progress("002_index", 7, "started")], progress_table=TABLE
        )

    assert caught.value.message.startswith(
        "002_index: an earlier run started statement 8 outside a transaction"
    )
    assert "WHERE name = '002_index' AND statement_index = 7;" in caught.value.hint


def test_check_resumable__first_started_row__is_the_one_reported() -> None:
    other = migration("003_other", PLAIN)
    rows = [
        progress("002_index", 0, "done"),
        progress("003_other", 0, "started"),
        progress("002_index", 1, "started"),
    ]

    with pytest.raises(InDoubt) as caught:
        execution.check_resumable([INDEXED, other], rows, progress_table=TABLE)

    assert caught.value.message.startswith("003_other: an earlier run started statement 1 ")


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [progress("002_index", 0, "done")],
        [progress("002_index", 1, "failed")],
        [progress("002_index", 0, "done"), progress("002_index", 1, "failed")],
        [progress("001_applied_elsewhere", 0, "started")],
        [progress("002_index#down", 0, "started")],
    ],
    ids=["none", "done", "failed", "done-then-failed", "other-migration", "its-rollback"],
)
def test_check_resumable__no_started_row_of_a_pending_migration__does_nothing(
    rows: list[StatementProgress],
) -> None:
    execution.check_resumable([INDEXED], rows, progress_table=TABLE)


def test_check_resumable__rollback__reads_and_names_the_down_rows() -> None:
    # A rollback's progress rows are `NAME#down`; its up rows are another run's business.
    rows = [progress("002_index", 1, "started"), progress("002_index#down", 0, "started")]

    with pytest.raises(InDoubt) as caught:
        execution.check_resumable([INDEXED], rows, progress_table=TABLE, direction="down")

    assert caught.value.message.startswith("002_index: an earlier run started statement 1 ")
    assert "WHERE name = '002_index#down' AND statement_index = 0;\n" in caught.value.hint
    assert "then run hmig rollback again." in caught.value.hint


def test_check_resumable__quote_in_the_name__is_a_valid_literal() -> None:
    quoted = migration("004_o'brien", PLAIN)

    with pytest.raises(InDoubt) as caught:
        execution.check_resumable(
            [quoted], [progress("004_o'brien", 0, "started")], progress_table=TABLE
        )

    assert "WHERE name = '004_o''brien' AND statement_index = 0;" in caught.value.hint


# --- refuse_non_transactional -----------------------------------------------------------------


def test_refuse_non_transactional__blocked_migrations__raises_naming_files_and_reasons() -> None:
    transactional = Rendered((PLAIN,), transactional=True)
    index = Rendered((PLAIN, CREATE_INDEX), transactional=False, reason="CREATE INDEX CONCURRENTLY")
    vacuum = Rendered((PLAIN,), transactional=False, reason="VACUUM (line 3)")

    with pytest.raises(Refused) as caught:
        execution.refuse_non_transactional(
            [
                (migration("001_a", PLAIN), transactional),
                (INDEXED, index),
                (migration("003_vac", PLAIN), vacuum),
            ]
        )

    error = caught.value
    assert error.message == (
        "transaction: all cannot run migrations that must run outside a transaction: "
        "migrations/002_index.sql (CREATE INDEX CONCURRENTLY); "
        "migrations/003_vac.sql (VACUUM (line 3))"
    )
    assert "001_a" not in error.message
    assert error.outcome == "refused"
    assert error.exit_code is ExitCode.CANNOT
    assert "transaction: per-migration" in error.hint


def test_refuse_non_transactional__all_transactional__does_nothing() -> None:
    execution.refuse_non_transactional(
        [(migration("001_a", PLAIN), Rendered((PLAIN,), transactional=True))]
    )
    execution.refuse_non_transactional([])


def test_refuse_non_transactional__enum_value_added_then_used_by_a_later_migration() -> None:
    # One transaction cannot use an enum value it added: the batch would fail at 003.
    add = Statement(index=0, sql="ALTER TYPE mood ADD VALUE 'o''k'", line=1, column=1)
    use = Statement(index=0, sql="CREATE TABLE t (m mood DEFAULT 'o''k')", line=1, column=1)
    other = Statement(index=0, sql="CREATE TABLE u (m mood DEFAULT 'sad')", line=1, column=1)

    with pytest.raises(Refused) as caught:
        execution.refuse_non_transactional(
            [
                (migration("002_add", add), Rendered((add,), transactional=True)),
                (migration("003_use", use), Rendered((use,), transactional=True)),
            ]
        )

    assert caught.value.message == (
        "transaction: all cannot run these migrations in one transaction: migrations/002_add.sql "
        "adds enum value 'o''k', which migrations/003_use.sql appears to use"
    )
    assert "hmig apply --target NAME" in caught.value.hint
    execution.refuse_non_transactional(  # a value no later migration names is fine
        [
            (migration("002_add", add), Rendered((add,), transactional=True)),
            (migration("003_other", other), Rendered((other,), transactional=True)),
        ]
    )


# --- render -----------------------------------------------------------------------------------


def test_render__sql_migration_with_concurrent_index__is_not_transactional() -> None:
    rendered = execution.render(INDEXED, renderer=None, query=no_query)

    assert rendered == Rendered(
        (PLAIN, CREATE_INDEX), transactional=False, reason="CREATE INDEX CONCURRENTLY (line 4)"
    )


def test_render__sql_migration_with_directive__gives_the_directive_as_reason() -> None:
    rendered = execution.render(
        migration("001_a", PLAIN, directive=True), renderer=None, query=no_query
    )

    assert rendered.transactional is False
    assert rendered.reason == "declared with -- hmig:no-transaction"


def test_render__plain_sql_migration__is_transactional_as_written() -> None:
    rendered = execution.render(migration("001_a", PLAIN), renderer=None, query=no_query)

    assert rendered == Rendered((PLAIN,), transactional=True, reason=None)
    assert rendered.sql == "CREATE TABLE users (email text);"


def test_render__js_migration_without_renderer__raises_naming_the_file() -> None:
    with pytest.raises(JsMigrationError) as caught:
        execution.render(migration("001_j", kind=Kind.JS), renderer=None, query=no_query)

    assert caught.value.message == "migrations/001_j.js: no JavaScript renderer is available"


# --- statement_checksum -----------------------------------------------------------------------


def test_statement_checksum__is_the_first_16_hex_of_sha256_of_the_sql() -> None:
    expected = hashlib.sha256(CREATE_INDEX.sql.encode("utf-8")).hexdigest()[:16]

    assert execution.statement_checksum(CREATE_INDEX) == expected
    assert len(expected) == 16


def test_statement_checksum__depends_only_on_the_sql() -> None:
    moved = Statement(index=5, sql=PLAIN.sql, line=99, column=7)
    edited = Statement(index=0, sql=PLAIN.sql + " ", line=2, column=1)

    assert execution.statement_checksum(moved) == execution.statement_checksum(PLAIN)
    assert execution.statement_checksum(edited) != execution.statement_checksum(PLAIN)


@pytest.mark.parametrize(
    ("message", "name"),
    [
        ('extension "uuid-ossp" is not available', "uuid-ossp"),  # PostgreSQL 16 and later
        (
            'could not open extension control file "/usr/share/postgresql/15/extension/'
            'pgcrypto.control": No such file or directory',
            "pgcrypto",
        ),
        ('relation "t" does not exist', None),
    ],
)
def test_missing_extension__named_from_either_form_of_the_server_message(
    message: str, name: str | None
) -> None:
    assert execution.missing_extension(message) == name
