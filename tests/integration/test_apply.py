"""apply / plan / status against real PostgreSQL (embedded 18 and HMIG_TEST_DSN)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from typing import Any

import jsonschema
import pytest

from hmig.reporting import report_schema
from tests.conftest import HMIG, Database, Project


def _schema_valid(report: dict[str, object]) -> None:
    jsonschema.Draft202012Validator(report_schema()).validate(report)


def test_apply__fresh_database__runs_all_in_order_and_records_history(project: Project) -> None:
    project.write("1678886400000_tenants.sql", "CREATE TABLE tenants (id int PRIMARY KEY);")
    project.write("005-fields.sql", "CREATE TABLE fields (id int);")
    project.write(
        "add-subdomain.sql",
        """
        -- Up Migration
        ALTER TABLE tenants ADD COLUMN subdomain text; -- a comment; with a semicolon
        DO $$ BEGIN RAISE NOTICE 'done; really'; END $$;
        -- Down Migration
        ALTER TABLE tenants DROP COLUMN subdomain;
        """,
    )
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    report = run.report()
    _schema_valid(report)
    assert report["outcome"] == "ok"
    assert [r["name"] for r in report["ran"]] == [
        "005-fields",
        "1678886400000_tenants",
        "add-subdomain",
    ]
    assert all(r["duration_ms"] >= 0 for r in report["ran"])
    db = project.database
    assert db is not None
    assert db.history() == ["005-fields", "1678886400000_tenants", "add-subdomain"]
    # The down section did not run: the column exists.
    assert (
        db.scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'tenants' "
            "AND column_name = 'subdomain'"
        )
        == 1
    )
    recorded = db.rows("SELECT name, checksum, adopted FROM hmig_history ORDER BY name")
    assert [(r[0], r[1].startswith("sha256:"), r[2]) for r in recorded] == [
        ("005-fields", True, False),
        ("1678886400000_tenants", True, False),
        ("add-subdomain", True, False),
    ]
    # Human text went to stderr under --json, and names the target before anything else.
    assert run.err.splitlines()[0].startswith("hmig apply · environment test · ")


def test_apply__history_table__is_node_pg_migrate_ddl(project: Project) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    assert project.hmig("apply").code == 0
    db = project.database
    assert db is not None
    columns = db.rows(
        "SELECT column_name, data_type, is_nullable, column_default FROM "
        "information_schema.columns WHERE table_name = 'pgmigrations' ORDER BY ordinal_position"
    )
    assert [(c[0], c[1], c[2]) for c in columns] == [
        ("id", "integer", "NO"),
        ("name", "character varying", "NO"),
        ("run_on", "timestamp without time zone", "NO"),
    ]
    assert columns[0][3].startswith("nextval(")
    assert (
        db.scalar(
            "SELECT character_maximum_length FROM information_schema.columns "
            "WHERE table_name = 'pgmigrations' AND column_name = 'name'"
        )
        == 255
    )
    assert db.scalar("SELECT value FROM hmig_meta WHERE key = 'schema_version'") == "1"


def test_apply__second_run__is_nothing_to_do(project: Project) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    assert project.hmig("apply").code == 0
    again = project.hmig("apply", "--json")
    assert again.code == 0, again.text
    assert again.report()["outcome"] == "nothing-to-do"
    assert again.report()["ran"] == []
    assert project.database is not None
    assert project.database.history() == ["001_a"]


def test_apply__history_in_own_schema_and_table__names_are_quoted(project: Project) -> None:
    # Upper case only survives quoted: a name sent unquoted would land in `ops`.`migration_log$1`.
    project.manifest(
        "version: 1\nmigrations:\n  dir: migrations\n  schema: Ops\n  table: Migration_Log$1\n"
        "environments:\n  test:\n    database:\n      url_env: HMIG_TEST_URL\n"
    )
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    project.write("002_b.sql", "CREATE TABLE b (id int);")
    first = project.hmig("apply")
    assert first.code == 0, first.text
    again = project.hmig("apply", "--json")
    assert again.code == 0, again.text
    assert again.report()["outcome"] == "nothing-to-do"
    db = project.database
    assert db is not None
    assert db.rows('SELECT name FROM "Ops"."Migration_Log$1" ORDER BY id') == [
        ("001_a",),
        ("002_b",),
    ]
    assert db.rows('SELECT name FROM "Ops".hmig_history ORDER BY name') == [("001_a",), ("002_b",)]
    assert "pgmigrations" not in db.tables() and "Migration_Log$1" in db.tables("Ops")


def test_apply__failing_migration__rolls_back_keeps_earlier_exit_1(project: Project) -> None:
    project.write("001_ok.sql", "CREATE TABLE ok (id int);")
    project.write(
        "002_bad.sql",
        """
        -- comment line
        CREATE TABLE half (id int);

        ALTER TABLE ok
          DROP COLUMN missing;
        """,
    )
    project.write("003_never.sql", "CREATE TABLE never (id int);")
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    report = run.report()
    _schema_valid(report)
    assert report["outcome"] == "failed"
    assert [r["name"] for r in report["ran"]] == ["001_ok"]
    failure = report["failure"]
    assert failure["migration"] == "002_bad"
    assert failure["file"] == "migrations/002_bad.sql"
    assert failure["line"] == 4  # the ALTER TABLE statement: the server gave no position
    assert failure["at_commit"] is False
    assert failure["sqlstate"] == "42703"
    assert "missing" in failure["message"]
    assert [p["name"] for p in report["pending"]] == ["002_bad", "003_never"]
    db = project.database
    assert db is not None
    assert db.history() == ["001_ok"]
    assert db.tables() >= {"ok"}
    assert "half" not in db.tables()  # rolled back with its migration
    assert "migrations/002_bad.sql:4" in run.err


def test_apply__failing_statement__nothing_after_it_runs(project: Project) -> None:
    # After the failing statement nothing more of its migration may run, not even a statement
    # the rollback would undo anyway: nextval() is not undone, so the sequence tells which ran.
    project.write("001_seq.sql", "CREATE SEQUENCE ran_calls;\n")
    project.write(
        "002_bad.sql",
        "SELECT nextval('ran_calls');\n"
        "ALTER TABLE nowhere ADD COLUMN x int;\n"
        "SELECT nextval('ran_calls');\n",
    )
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    failure = run.report()["failure"]
    assert (failure["migration"], failure["line"], failure["sqlstate"]) == ("002_bad", 2, "42P01")
    assert failure["statement"] == "ALTER TABLE nowhere ADD COLUMN x int"
    db = project.database
    assert db is not None
    assert db.scalar("SELECT last_value FROM ran_calls") == 1
    assert db.history() == ["001_seq"]
    assert db.scalar("SELECT count(*) FROM hmig_history WHERE name = '002_bad'") == 0


def test_apply__history_duration__is_the_time_its_statements_took(project: Project) -> None:
    # hmig_history.duration_ms is the migration's own time: its statements included, so a
    # change that queues the row before they have run must have the server time them.
    project.write("001_slow.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(0.3);\n")
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    db = project.database
    assert db is not None
    recorded = db.scalar("SELECT duration_ms FROM hmig_history WHERE name = '001_slow'")
    assert recorded >= 300
    assert run.report()["ran"][0]["duration_ms"] >= recorded


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("SELECT 1;\nSELECT * FROM nowhere_table;\n", 2, 15),
        # The first statement travels behind the transaction's BEGIN in one query string: the
        # server's position counts that prefix, the reported one must not (and counts
        # characters, not bytes).
        ("-- patients' données\n  SELECT * FROM nowhere_table;\n", 2, 17),
    ],
    ids=["second-statement", "first-statement"],
)
def test_apply__syntax_error_position__points_at_line_and_column(
    project: Project, text: str, line: int, column: int
) -> None:
    project.write("001_bad.sql", text)
    run = project.hmig("apply", "--json")
    assert run.code == 1
    failure = run.report()["failure"]
    assert (failure["line"], failure["column"]) == (line, column)
    assert failure["sqlstate"] == "42P01"


@pytest.mark.parametrize("transaction", ["per-migration", "all"])
def test_apply__failure_at_commit__rolls_back_with_its_history_row(
    project: Project, transaction: str
) -> None:
    # A deferred constraint is checked by COMMIT, which goes out together with the history
    # rows: the migration, its rows and the audit entry are rolled back as one.
    project.manifest(transaction=transaction)
    project.write(
        "001_tables.sql",
        "CREATE TABLE ward (id int PRIMARY KEY);\n"
        "CREATE TABLE bed (ward_id int REFERENCES ward DEFERRABLE INITIALLY DEFERRED);\n",
    )
    project.write("002_orphan.sql", "INSERT INTO bed VALUES (42);\n")
    project.write("003_never.sql", "CREATE TABLE never (id int);\n")
    if transaction == "all":
        assert project.hmig("apply", "--target", "001_tables").code == 0
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    failure = run.report()["failure"]
    assert failure["sqlstate"] == "23503"
    assert failure["line"] is None  # no statement failed: the COMMIT did
    assert failure["at_commit"] is True
    # The human text names the COMMIT, not a place in the last migration's file.
    last = failure["migration"]
    assert f"✗ COMMIT failed after {last}: insert or update on table" in run.err
    assert f"    at migrations/{last}.sql" not in run.err
    if transaction == "all":
        # Which migration broke a deferred check cannot be known: the advice says so.
        assert last == "003_never"
        assert "any migration of the batch may have broken it" in failure["advice"]
        assert "none of the 2 migrations was applied" in failure["advice"]
    else:
        assert last == "002_orphan"
        assert "a check deferred to COMMIT" in failure["advice"]
        assert "This migration was rolled back." in failure["advice"]
    assert "Traceback" not in run.err
    db = project.database
    assert db is not None
    assert db.history() == ["001_tables"]
    assert db.scalar("SELECT count(*) FROM bed") == 0
    assert db.scalar("SELECT count(*) FROM hmig_history WHERE name = '002_orphan'") == 0
    assert db.scalar("SELECT count(*) FROM hmig_audit WHERE name = '002_orphan'") == 0
    assert "never" not in db.tables()
    assert project.hmig("status").code == 0  # the session and lock were left clean


def test_apply__non_transactional_sql__runs_outside_transaction(project: Project) -> None:
    project.write("001_t.sql", "CREATE TABLE t (id int);")
    project.write(
        "002_idx.sql",
        """
        CREATE INDEX CONCURRENTLY t_id_idx ON t (id);
        CREATE INDEX CONCURRENTLY t_id2_idx ON t (id);
        """,
    )
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    ran = {r["name"]: r for r in run.report()["ran"]}
    assert ran["002_idx"]["transactional"] is False
    assert ran["002_idx"]["statements"] == 2
    db = project.database
    assert db is not None
    assert (
        db.scalar(
            "SELECT count(*) FROM pg_index WHERE indisvalid AND "
            "indexrelid::regclass::text IN ('t_id_idx', 't_id2_idx')"
        )
        == 2
    )
    assert db.scalar("SELECT count(*) FROM hmig_progress") == 0
    assert db.history() == ["001_t", "002_idx"]


def test_apply__non_transactional_record_fails__reported_and_rerun_records_it(
    project: Project,
) -> None:
    # Every statement ran outside a transaction; then writing the history row failed (here a
    # trigger refuses it). The report must say the statements stay applied, with the earlier
    # migrations of the run; the re-run records the migration without building anything again.
    project.write("001_t.sql", "CREATE TABLE t (id int);")
    assert project.hmig("apply").code == 0  # hmig's tables exist now, for the trigger
    project.write("002_u.sql", "CREATE TABLE u (id int);")
    project.write("003_idx.sql", "CREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n")
    db = project.database
    assert db is not None
    db.execute(
        "CREATE FUNCTION refuse_003() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'history is read-only today'; END $$;\n"
        "CREATE TRIGGER refuse_003 BEFORE INSERT ON hmig_history FOR EACH ROW "
        "WHEN (NEW.name = '003_idx') EXECUTE FUNCTION refuse_003()"
    )
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    report = run.report()
    _schema_valid(report)
    assert report["outcome"] == "failed"
    assert [r["name"] for r in report["ran"]] == ["002_u"]
    failure = report["failure"]
    assert (failure["migration"], failure["at_commit"]) == ("003_idx", True)
    assert (failure["statements_done"], failure["statements_total"]) == (1, 1)
    assert failure["message"] == "history is read-only today"
    assert "Its statement ran and stays applied" in failure["advice"]
    assert "✗ COMMIT failed after 003_idx: history is read-only today" in run.err
    assert "Traceback" not in run.err
    assert db.history() == ["001_t", "002_u"]
    assert db.rows("SELECT statement_index, state FROM hmig_progress") == [(0, "done")]
    built = db.scalar("SELECT oid FROM pg_class WHERE relname = 't_id_idx'")
    db.execute("DROP TRIGGER refuse_003 ON hmig_history")
    again = project.hmig("apply", "--json")
    assert again.code == 0, again.text
    assert db.history() == ["001_t", "002_u", "003_idx"]
    assert db.scalar("SELECT count(*) FROM hmig_progress") == 0
    assert db.scalar("SELECT oid FROM pg_class WHERE relname = 't_id_idx'") == built  # not rebuilt


def test_apply__non_transactional_failure__reports_statements_and_resumes(
    project: Project,
) -> None:
    project.write("001_t.sql", "CREATE TABLE t (id int);")
    project.write(
        "002_idx.sql",
        """
        -- hmig:no-transaction
        CREATE INDEX CONCURRENTLY t_a ON t (id);
        CREATE INDEX CONCURRENTLY t_b ON t (nope);
        CREATE INDEX CONCURRENTLY t_c ON t (id);
        """,
    )
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    failure = run.report()["failure"]
    assert (failure["statements_done"], failure["statements_total"]) == (1, 3)
    assert failure["line"] == 3
    assert "resumes at statement 2" in failure["advice"]
    db = project.database
    assert db is not None
    assert db.history() == ["001_t"]
    assert db.rows("SELECT statement_index, state FROM hmig_progress ORDER BY 1") == [
        (0, "done"),
        (1, "failed"),
    ]
    # Fix the failing statement only; the re-run must not run statement 1 again.
    project.write(
        "002_idx.sql",
        """
        -- hmig:no-transaction
        CREATE INDEX CONCURRENTLY t_a ON t (id);
        CREATE INDEX CONCURRENTLY t_b ON t (id);
        CREATE INDEX CONCURRENTLY t_c ON t (id);
        """,
    )
    again = project.hmig("apply", "--json")
    assert again.code == 0, again.text
    assert db.history() == ["001_t", "002_idx"]
    assert db.scalar("SELECT count(*) FROM hmig_progress") == 0
    assert db.scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 't'") == 3


_TWO_CONCURRENT_INDEXES = """
-- hmig:no-transaction
CREATE INDEX CONCURRENTLY t_a ON t (id);
CREATE INDEX CONCURRENTLY t_b ON t (id);
"""


def _indexes_pending(project: Project) -> Database:
    """`001_t` applied; `002_idx` pending: two concurrent index builds, outside a transaction."""
    project.write("001_t.sql", "CREATE TABLE t (id int);")
    assert project.hmig("apply").code == 0
    project.write("002_idx.sql", _TWO_CONCURRENT_INDEXES)
    assert project.database is not None
    return project.database


def _refuse_progress(
    project: Project, when: str, event: str = "INSERT", table: str = "hmig_progress"
) -> None:
    """A trigger on hmig_progress refusing the rows that match `when` (hmig's tables exist)."""
    assert project.database is not None
    project.database.execute(
        "CREATE FUNCTION refuse_progress() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'progress is read-only today'; END $$;\n"
        f"CREATE TRIGGER refuse_progress BEFORE {event} ON {table} FOR EACH ROW "
        f"WHEN ({when}) EXECUTE FUNCTION refuse_progress()"
    )


def _session_ended_in_progress_write(
    project: Project, when: str, event: str = "INSERT"
) -> dict[str, Any]:
    """Run apply and end its session (pg_terminate_backend) while a trigger holds the
    hmig_progress write that matches `when`; the report's failure (statement 1 of 2 ran)."""
    assert project.database is not None
    project.database.execute(
        "CREATE FUNCTION hold_progress() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$;\n"
        f"CREATE TRIGGER hold_progress BEFORE {event} ON hmig_progress FOR EACH ROW "
        f"WHEN ({when}) EXECUTE FUNCTION hold_progress()"
    )
    run = project.run_terminated("apply", "--json", when="wait_event = 'PgSleep'")  # the trigger
    assert run.code == 1, run.text
    assert "Traceback" not in run.err
    failure: dict[str, Any] = run.report()["failure"]
    assert failure["sqlstate"] == "57P01"
    assert (failure["statements_done"], failure["statements_total"]) == (1, 2)
    project.database.execute("DROP TRIGGER hold_progress ON hmig_progress")
    return failure


def test_apply__progress_start_not_recorded__statement_not_sent_rerun_resumes(
    project: Project,
) -> None:
    # Recording that statement 2 starts fails: hmig must not send it, and must say that
    # statement 1 ran and statement 2 did not (not a bare error).
    db = _indexes_pending(project)
    _refuse_progress(project, "NEW.statement_index = 1")
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    failure = run.report()["failure"]
    assert (failure["migration"], failure["at_commit"]) == ("002_idx", False)
    assert (failure["statements_done"], failure["statements_total"]) == (1, 2)
    assert failure["message"] == "progress is read-only today"
    assert failure["statement"] is None
    assert "Statement 1 of 2 ran and stays applied" in failure["advice"]
    assert "did not send it: it has not run" in failure["advice"]
    assert "✗ 002_idx failed: progress is read-only today" in run.err
    assert "Traceback" not in run.err
    assert db.rows("SELECT indexname FROM pg_indexes WHERE tablename = 't'") == [("t_a",)]
    assert db.rows("SELECT statement_index, state FROM hmig_progress") == [(0, "done")]
    built = db.scalar("SELECT oid FROM pg_class WHERE relname = 't_a'")
    db.execute("DROP TRIGGER refuse_progress ON hmig_progress")
    again = project.hmig("apply")
    assert again.code == 0, again.text
    assert db.history() == ["001_t", "002_idx"]
    assert db.scalar("SELECT oid FROM pg_class WHERE relname = 't_a'") == built  # not rebuilt
    assert db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 't_b'") == 1


def test_apply__session_ended_while_recording_a_start__says_statement_was_not_sent(
    project: Project,
) -> None:
    # The server ends hmig's session while it records that statement 2 starts (a trigger
    # holds that write until the test terminates the backend).
    db = _indexes_pending(project)
    failure = _session_ended_in_progress_write(project, "NEW.statement_index = 1")
    assert "so hmig did not send it: it has not run" in failure["advice"]
    assert "The server ended hmig's session during that write" in failure["advice"]
    assert "WHERE name = '002_idx' AND statement_index = 1" in failure["advice"]
    assert db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 't_b'") == 0
    again = project.hmig("apply")
    assert again.code == 0, again.text
    assert db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 't_b'") == 1


def test_apply__session_ended_while_marking_a_statement_done__says_it_ran(
    project: Project,
) -> None:
    # The server ends hmig's session while it records that statement 1 finished (a trigger
    # holds that write). The statement ran; whether its row says so is unknown, so the report
    # must say it ran, that the row may still say `started`, and how to settle it.
    db = _indexes_pending(project)
    failure = _session_ended_in_progress_write(
        project, "NEW.state = 'done' AND NEW.statement_index = 0", event="UPDATE"
    )
    assert "Statement 1 of 2 ran and stays applied" in failure["advice"]
    assert "its row may still say `started`" in failure["advice"]
    assert db.rows("SELECT statement_index, state FROM hmig_progress") == [(0, "started")]
    built = db.scalar("SELECT oid FROM pg_class WHERE relname = 't_a'")
    assert built is not None
    assert db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 't_b'") == 0
    assert project.hmig("apply").code == 2  # in doubt, the next run stops at statement 1
    db.execute(failure["advice"].split("mark it done (", 1)[1].split(") and run", 1)[0])
    again = project.hmig("apply")
    assert again.code == 0, again.text
    assert db.history() == ["001_t", "002_idx"]
    assert db.scalar("SELECT oid FROM pg_class WHERE relname = 't_a'") == built  # not rebuilt
    assert db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 't_b'") == 1


def test_apply__progress_done_not_recorded__advice_marks_it_done_and_resumes(
    project: Project,
) -> None:
    # Statement 1 ran, but recording it as done fails: its row stays `started`. The report
    # must say it ran, and the statement its advice gives must let the next run go on, run as
    # written from a session whose search_path does not hold the history's schema.
    project.manifest(
        "version: 1\nmigrations:\n  dir: migrations\n  schema: Ops\n"
        "environments:\n  test:\n    database:\n      url_env: HMIG_TEST_URL\n"
    )
    db = _indexes_pending(project)
    _refuse_progress(project, "NEW.state = 'done'", event="UPDATE", table='"Ops".hmig_progress')
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    failure = run.report()["failure"]
    assert (failure["migration"], failure["at_commit"]) == ("002_idx", False)
    assert (failure["statements_done"], failure["statements_total"]) == (1, 2)
    assert "Statement 1 of 2 ran and stays applied" in failure["advice"]
    assert "its row still says `started`" in failure["advice"]
    assert db.rows('SELECT statement_index, state FROM "Ops".hmig_progress') == [(0, "started")]
    built = db.scalar("SELECT oid FROM pg_class WHERE relname = 't_a'")
    assert built is not None
    db.execute('DROP TRIGGER refuse_progress ON "Ops".hmig_progress')
    # Left `started`, the statement is in doubt for the next run: it stops there (exit 2).
    assert project.hmig("apply").code == 2
    fix = failure["advice"].split("mark it done (", 1)[1].split(") and run", 1)[0]
    assert fix.startswith("UPDATE \"Ops\".hmig_progress SET state = 'done'")
    db.execute(fix)
    again = project.hmig("apply")
    assert again.code == 0, again.text
    assert db.rows('SELECT name FROM "Ops".pgmigrations ORDER BY id') == [("001_t",), ("002_idx",)]
    assert db.scalar("SELECT oid FROM pg_class WHERE relname = 't_a'") == built  # not rebuilt
    assert db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 't_b'") == 1


def test_apply__statement_left_started__refuses_with_exact_account(project: Project) -> None:
    project.write("001_t.sql", "CREATE TABLE t (id int);")
    project.write("002_idx.sql", "CREATE INDEX CONCURRENTLY t_a ON t (id);\n")
    assert project.hmig("apply", "--target", "001_t").code == 0
    db = project.database
    assert db is not None
    # What a run killed mid-statement leaves behind.
    db.execute(
        "INSERT INTO hmig_progress (name, statement_index, statement_checksum, state) "
        "VALUES ('002_idx', 0, 'x', 'started')"
    )
    run = project.hmig("apply")
    assert run.code == 2, run.text
    assert "002_idx: an earlier run started statement 1 (line 1: CREATE INDEX" in run.text
    assert "UPDATE \"public\".hmig_progress SET state = 'done' WHERE name = '002_idx'" in run.text
    assert db.history() == ["001_t"]
    assert "t_a" not in {r[0] for r in db.rows("SELECT indexname FROM pg_indexes")}


def test_apply__transaction_all__failure_rolls_back_everything(project: Project) -> None:
    project.manifest(transaction="all")
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    project.write("002_b.sql", "CREATE TABLE b (id int);")
    project.write("003_bad.sql", "ALTER TABLE a DROP COLUMN nope;")
    run = project.hmig("apply", "--json")
    assert run.code == 1
    report = run.report()
    assert report["ran"] == []
    assert "none of the 3 migrations was applied" in report["failure"]["advice"]
    db = project.database
    assert db is not None
    assert db.history() == []
    assert not {"a", "b"} & db.tables()


def test_apply__transaction_all__succeeds_in_one_transaction(project: Project) -> None:
    project.manifest(transaction="all")
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    project.write("002_b.sql", "CREATE TABLE b (id int);")
    assert project.hmig("apply").code == 0
    db = project.database
    assert db is not None
    # One transaction: every row has the same run_on (NOW() is the transaction start).
    assert db.scalar("SELECT count(DISTINCT run_on) FROM pgmigrations") == 1
    assert db.history() == ["001_a", "002_b"]


def test_apply__transaction_all_with_concurrent_index__refused_before_anything(
    project: Project,
) -> None:
    project.manifest(transaction="all")
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    project.write("002_idx.sql", "CREATE INDEX CONCURRENTLY a_id ON a (id);")
    run = project.hmig("apply", "--json")
    assert run.code == 2
    assert run.report()["outcome"] == "refused"
    assert "migrations/002_idx.sql (CREATE INDEX CONCURRENTLY" in run.report()["error"]["message"]
    assert project.database is not None
    assert project.database.tables() == set()  # not even the history table


def test_apply__transaction_all_uses_an_enum_value_it_adds__refused_per_migration_runs(
    project: Project,
) -> None:
    project.write("001_type.sql", "CREATE TYPE mood AS ENUM ('sad');")
    assert project.hmig("apply").code == 0
    project.write("002_add.sql", "ALTER TYPE mood ADD VALUE 'ok';")
    project.write("003_use.sql", "CREATE TABLE t (m mood DEFAULT 'ok');")
    project.manifest(transaction="all")
    run = project.hmig("apply", "--json")
    assert run.code == 2, run.text
    assert run.report()["outcome"] == "refused"
    assert (
        "migrations/002_add.sql adds enum value 'ok', which migrations/003_use.sql appears to use"
        in run.report()["error"]["message"]
    )
    assert project.database is not None
    assert project.database.history() == ["001_type"]
    project.manifest()  # per-migration: 002 commits before 003 uses its value
    again = project.hmig("apply")
    assert again.code == 0, again.text
    assert project.database.history() == ["001_type", "002_add", "003_use"]


def test_apply__target__stops_after_it(project: Project) -> None:
    for name in ("001_a", "002_b", "003_c"):
        project.write(f"{name}.sql", f"CREATE TABLE t{name[-1]} (id int);")
    run = project.hmig("apply", "--target", "002_b", "--json")
    assert run.code == 0
    assert [r["name"] for r in run.report()["ran"]] == ["001_a", "002_b"]
    assert [p["name"] for p in run.report()["pending"]] == ["003_c"]
    again = project.hmig("apply", "--target", "001_a", "--json")
    assert (again.code, again.report()["outcome"]) == (0, "nothing-to-do")
    unknown = project.hmig("apply", "--target", "009_zz")
    assert unknown.code == 2
    assert "--target '009_zz' is not a migration" in unknown.text
    assert project.database is not None
    assert project.database.history() == ["001_a", "002_b"]


def test_apply__out_of_order__warns_and_runs_after_applied(project: Project) -> None:
    project.write("1700000000000_b.sql", "CREATE TABLE b (id int);")
    assert project.hmig("apply").code == 0
    project.write("1600000000000_a.sql", "CREATE TABLE a (id int);")
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    codes = [(w["code"], w["migration"]) for w in run.report()["warnings"]]
    assert ("out-of-order", "1600000000000_a") in codes
    assert project.database is not None
    assert project.database.history() == ["1700000000000_b", "1600000000000_a"]


def test_apply__missing_extension__advice_says_it_is_the_server_and_what_to_use(
    project: Project,
) -> None:
    # The embedded server has no uuid-ossp; no server has this one. Either way the report
    # must say the extension is missing on the server, not that the SQL is wrong.
    project.write("001_t.sql", "CREATE TABLE t (id int);")
    project.write("002_ext.sql", 'CREATE EXTENSION IF NOT EXISTS "hmig-not-installed";')
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    failure = run.report()["failure"]
    assert failure["migration"] == "002_ext"
    assert "no 'hmig-not-installed' extension to create" in failure["advice"]
    assert "gen_random_uuid() is built in since PostgreSQL 13" in failure["advice"]
    assert "The 1 migration(s) before it in this run stay applied" in failure["advice"]
    assert project.database is not None
    assert project.database.history() == ["001_t"]


def test_apply__hmig_tables_from_a_newer_release__refused_before_any_write(
    project: Project,
) -> None:
    project.write("001_t.sql", "CREATE TABLE t (id int);")
    assert project.hmig("apply").code == 0
    db = project.database
    assert db is not None
    db.execute("UPDATE hmig_meta SET value = '2' WHERE key = 'schema_version'")
    project.write("002_u.sql", "CREATE TABLE u (id int);")
    for command in ("status", "apply"):
        run = project.hmig(command, "--json")
        assert run.code == 2, run.text
        report = run.report()
        assert report["outcome"] == "refused"
        assert "are at version 2, written by a newer hmig" in report["error"]["message"]
    db.execute("UPDATE hmig_meta SET value = '2.0' WHERE key = 'schema_version'")
    run = project.hmig("apply", "--json")
    assert run.code == 2, run.text
    assert "gives schema_version '2.0', which this hmig" in run.report()["error"]["message"]
    assert db.history() == ["001_t"]
    assert "u" not in db.tables()


def _in_a_terminal(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """hmig with a pseudo-terminal on stdin, as from a developer's shell."""
    leader, follower = pty.openpty()
    try:
        return subprocess.run(
            [str(HMIG), *args],
            cwd=project.root,
            env=project.process_env(),
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(follower)
        os.close(leader)


def test_apply__protected_from_a_terminal__refused_without_yes(project: Project) -> None:
    # A person at a terminal must confirm a write to a protected environment; CI (no terminal)
    # is not asked.
    project.manifest(protected=True)
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    refused = _in_a_terminal(project, "apply", "--json")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    error = json.loads(refused.stdout)["error"]
    assert "environment 'test' is protected: writing to" in error["message"]
    assert "--yes" in error["hint"]
    assert project.database is not None
    assert project.database.tables() == set()  # not even the history table
    confirmed = _in_a_terminal(project, "apply", "--yes")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert project.database.history() == ["001_a"]


def test_apply__strict_order__out_of_order_is_exit_1_and_nothing_runs(project: Project) -> None:
    project.manifest(strict_order=True)
    project.write("1700000000000_b.sql", "CREATE TABLE b (id int);")
    assert project.hmig("apply").code == 0
    project.write("1600000000000_a.sql", "CREATE TABLE a (id int);")
    run = project.hmig("apply", "--json")
    assert run.code == 1
    report = run.report()
    assert "strict_order" in report["error"]["hint"]
    assert project.database is not None
    assert project.database.history() == ["1700000000000_b"]
    # Stopped by an error, the report still names where it ran and the history it left.
    assert report["environment"] == "test"
    assert report["database"]["name"] == project.database.name
    assert [row["name"] for row in report["applied"]] == ["1700000000000_b"]
    assert "a" not in project.database.tables()


def test_plan__shows_exact_sql_and_writes_nothing(project: Project) -> None:
    project.write(
        "001_a.sql",
        """
        -- Up Migration
        CREATE TABLE a (id int);
        CREATE INDEX CONCURRENTLY a_id ON a (id);
        -- Down Migration
        DROP TABLE a;
        """,
    )
    run = project.hmig("plan", "--json")
    assert run.code == 0, run.text
    report = run.report()
    _schema_valid(report)
    (pending,) = report["pending"]
    assert pending["sql"] == "CREATE TABLE a (id int);\n\nCREATE INDEX CONCURRENTLY a_id ON a (id);"
    assert pending["transactional"] is False
    assert "DROP TABLE" not in run.err
    assert "outside a transaction: CREATE INDEX CONCURRENTLY (line 3)" in run.err
    assert project.database is not None
    assert project.database.tables() == set()  # not even pgmigrations


def test_status__lists_applied_pending_and_unknown(project: Project) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    project.write("002_b.sql", "CREATE TABLE b (id int);")
    assert project.hmig("apply", "--target", "001_a").code == 0
    assert project.database is not None
    project.database.execute("INSERT INTO pgmigrations (name, run_on) VALUES ('000_gone', now())")
    run = project.hmig("status", "--json")
    assert run.code == 0, run.text
    report = run.report()
    _schema_valid(report)
    assert [r["name"] for r in report["applied"]] == ["001_a", "000_gone"]
    assert [p["name"] for p in report["pending"]] == ["002_b"]
    assert [u["name"] for u in report["unknown"]] == ["000_gone"]
    # status shows history drift, and never fails on it.
    assert report["drift"]["fail"] is False
    assert [(f["code"], f["object"]) for f in report["drift"]["findings"]] == [
        ("unknown-row", "migration 000_gone")
    ]
    human = project.hmig("status").out
    assert "pending" in human and "002_b" in human and "(no file)" in human


def test_apply__options_after_or_before_command__are_equivalent(project: Project) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    before = project.hmig("--manifest", "hmig.yml", "--env", "test", "--json", "plan")
    after = project.hmig("plan", "--manifest", "hmig.yml", "--env", "test", "--json")
    assert before.code == after.code == 0
    assert before.report()["pending"] == after.report()["pending"]


def test_apply__explicit_order__is_followed(project: Project) -> None:
    project.write("b.sql", "CREATE TABLE b (id int);")
    project.write("a.sql", "CREATE TABLE a2 (id int REFERENCES b_ref (id));")
    project.write("c.sql", "CREATE TABLE b_ref (id int PRIMARY KEY);")
    project.manifest(
        """
        version: 1
        migrations:
          dir: migrations
          order: [b, c, a]
        environments:
          test:
            database: {url_env: HMIG_TEST_URL}
        """
    )
    run = project.hmig("apply")
    assert run.code == 0, run.text
    assert project.database is not None
    assert project.database.history() == ["b", "c", "a"]
