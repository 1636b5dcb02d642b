"""rollback, baseline and repair against real servers."""

from __future__ import annotations

import pytest

from tests.conftest import Project


@pytest.fixture
def three(project: Project) -> Project:
    project.write(
        "001_a.sql",
        "-- Up Migration\nCREATE TABLE a (id int);\n-- Down Migration\nDROP TABLE a;\n",
    )
    project.write("002_b.up.sql", "CREATE TABLE b (id int);\n")
    project.write("002_b.down.sql", "DROP TABLE b;\n")
    project.write(
        "003_c.sql",
        """
        -- Up Migration
        CREATE TABLE c (id int);
        CREATE INDEX CONCURRENTLY c_id ON c (id);
        -- Down Migration
        DROP INDEX CONCURRENTLY c_id;
        DROP TABLE c;
        """,
    )
    assert project.hmig("apply").code == 0
    return project


def test_rollback__default__undoes_the_last_one(three: Project) -> None:
    run = three.hmig("rollback", "--json")
    assert run.code == 0, run.text
    report = run.report()
    assert [r["name"] for r in report["ran"]] == ["003_c"]
    assert report["ran"][0]["transactional"] is False  # DROP INDEX CONCURRENTLY
    db = three.database
    assert db is not None
    assert db.history() == ["001_a", "002_b"]
    assert "c" not in db.tables()
    assert db.rows("SELECT action, name FROM hmig_audit WHERE action = 'rollback'") == [
        ("rollback", "003_c")
    ]
    assert "003_c" not in {r[0] for r in db.rows("SELECT name FROM hmig_history")}


def test_rollback__count_and_to__in_reverse_recorded_order(three: Project) -> None:
    run = three.hmig("rollback", "--count", "2", "--json")
    assert run.code == 0, run.text
    assert [r["name"] for r in run.report()["ran"]] == ["003_c", "002_b"]
    assert three.hmig("apply").code == 0
    run = three.hmig("rollback", "--to", "001_a", "--json")
    assert [r["name"] for r in run.report()["ran"]] == ["003_c", "002_b"]
    assert three.database is not None
    assert three.database.history() == ["001_a"]


@pytest.mark.parametrize("count", ["0", "4"])
def test_rollback__count_out_of_range__exit_2_nothing_changes(three: Project, count: str) -> None:
    run = three.hmig("rollback", "--count", count)
    assert run.code == 2
    assert f"--count {count} is out of range: 3 migration(s) are applied" in run.text
    assert three.database is not None
    assert three.database.history() == ["001_a", "002_b", "003_c"]


def test_rollback__dry_run__shows_sql_changes_nothing(three: Project) -> None:
    run = three.hmig("rollback", "--count", "2", "--dry-run", "--json")
    assert run.code == 0, run.text
    pending = run.report()["pending"]
    assert [p["name"] for p in pending] == ["003_c", "002_b"]
    assert "DROP INDEX CONCURRENTLY c_id;" in pending[0]["sql"]
    assert pending[1]["sql"] == "DROP TABLE b;"
    assert three.database is not None
    assert three.database.history() == ["001_a", "002_b", "003_c"]


def test_rollback__any_without_down__lists_all_and_runs_nothing(project: Project) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);")  # no down section
    project.write("002_b.js", "exports.up = (pgm) => pgm.sql('CREATE TABLE b (id int)');\n")
    project.write(
        "003_c.js",
        "exports.up = (pgm) => pgm.createTable('c', { id: 'id' });\n",  # down inferred
    )
    assert project.hmig("apply").code == 0
    run = project.hmig("rollback", "--count", "3", "--json")
    assert run.code == 2, run.text
    message = run.report()["error"]["message"]
    assert "2 migration(s) in the range have no down" in message
    assert "migrations/001_a.sql: no -- Down Migration section" in message
    assert 'Impossible to automatically infer down migration for "pgm.()"' in message
    assert project.database is not None
    assert project.database.history() == ["001_a", "002_b", "003_c"]
    assert "c" in project.database.tables()  # 003 was not rolled back either
    inferred = project.hmig("rollback", "--json")
    assert inferred.code == 0, inferred.text  # the inferred down of createTable works
    assert "c" not in project.database.tables()


def test_rollback__protected__refused_without_yes(three: Project) -> None:
    three.manifest(protected=True)
    run = three.hmig("rollback")
    assert run.code == 2
    assert "is protected: rollback changes the schema" in run.text
    ok = three.hmig("rollback", "--yes")
    assert ok.code == 0, ok.text


def test_rollback__failing_down__rolled_back_exit_1(three: Project) -> None:
    three.write(
        "001_a.sql",
        "-- Up Migration\nCREATE TABLE a (id int);\n-- Down Migration\nDROP TABLE nope;\n",
    )
    run = three.hmig("rollback", "--to", "001_a")  # 003, 002 fine; then nothing more
    assert run.code == 0, run.text
    run = three.hmig("rollback", "--json")
    assert run.code == 1
    assert run.report()["failure"]["migration"] == "001_a"
    assert run.report()["failure"]["line"] == 4
    assert three.database is not None
    assert three.database.history() == ["001_a"]


def test_rollback__down_statement_left_started__refused_until_settled(three: Project) -> None:
    # What a rollback killed during `DROP INDEX CONCURRENTLY c_id` leaves behind. The next
    # rollback must not send it again blindly: it stops (exit 2) and gives the SQL to settle it.
    db = three.database
    assert db is not None
    db.execute(
        "INSERT INTO hmig_progress (name, statement_index, statement_checksum, state) "
        "VALUES ('003_c#down', 0, 'x', 'started')"
    )
    run = three.hmig("rollback", "--json")
    assert run.code == 2, run.text
    error = run.report()["error"]
    assert error["message"].startswith(
        "003_c: an earlier run started statement 1 (line 5: DROP INDEX CONCURRENTLY c_id)"
    )
    assert "then run hmig rollback again." in error["hint"]
    assert db.history() == ["001_a", "002_b", "003_c"]
    assert "c_id" in {r[0] for r in db.rows("SELECT indexname FROM pg_indexes")}
    # The index is still there, so the drop did not take effect: clear the row, as told.
    clear = next(
        line.strip()
        for line in error["hint"].splitlines()
        if line.strip().startswith("DELETE FROM")
    )
    assert clear == (
        "DELETE FROM \"public\".hmig_progress WHERE name = '003_c#down' AND statement_index = 0;"
    )
    db.execute(clear)
    again = three.hmig("rollback")
    assert again.code == 0, again.text
    assert db.history() == ["001_a", "002_b"]


def test_rollback__server_ends_the_session__report_kept_with_what_was_reverted(
    project: Project,
) -> None:
    # The history cannot be read again after the server ended the session: the report must
    # still come, built from what the run itself reverted.
    project.write(
        "001_a.sql",
        "-- Up Migration\nCREATE TABLE a ();\n-- Down Migration\n"
        "SELECT pg_sleep(60);\nDROP TABLE a;\n",
    )
    project.write(
        "002_b.sql", "-- Up Migration\nCREATE TABLE b ();\n-- Down Migration\nDROP TABLE b;\n"
    )
    assert project.hmig("apply").code == 0
    db = project.database
    assert db is not None
    run = project.run_terminated(
        "rollback", "--count", "2", "--json", when="query LIKE %s", params=("%pg_sleep(60)%",)
    )
    assert run.code == 1, run.text
    assert "Traceback" not in run.err
    report = run.report()
    assert [r["name"] for r in report["ran"]] == ["002_b"]
    assert report["failure"]["migration"] == "001_a"
    assert "The server ended hmig's session" in report["failure"]["advice"]
    assert [r["name"] for r in report["applied"]] == ["001_a"]
    assert db.history() == ["001_a"]


def test_baseline__records_without_running_never_overwrites(project: Project) -> None:
    for name in ("001_a", "002_b", "003_c"):
        project.write(f"{name}.sql", f"CREATE TABLE t{name[-1]} (id int);")
    db = project.database
    assert db is not None
    db.execute("CREATE TABLE ta (id int)")
    db.execute("CREATE TABLE tb (id int)")
    run = project.hmig("baseline", "--to", "002_b", "--json")
    assert run.code == 0, run.text
    assert db.history() == ["001_a", "002_b"]
    assert db.rows("SELECT action, name FROM hmig_audit ORDER BY id") == [
        ("baseline", "001_a"),
        ("baseline", "002_b"),
    ]
    again = project.hmig("baseline", "--to", "002_b", "--json")
    assert again.code == 0 and again.report()["outcome"] == "nothing-to-do"
    assert db.scalar("SELECT count(*) FROM pgmigrations") == 2
    applied = project.hmig("apply", "--json")
    assert [r["name"] for r in applied.report()["ran"]] == ["003_c"]
    unknown = project.hmig("baseline", "--to", "009_x")
    assert unknown.code == 2


def test_repair__shows_then_accepts_changed_checksum(project: Project) -> None:
    path = project.write("001_a.sql", "CREATE TABLE a (id int); -- typo in a comment\n")
    assert project.hmig("apply").code == 0
    path.write_text("CREATE TABLE a (id int); -- comment fixed\n")
    db = project.database
    assert db is not None
    before = db.scalar("SELECT checksum FROM hmig_history WHERE name = '001_a'")
    preview = project.hmig("repair")
    assert preview.code == 0
    assert "Would repair 1 history entry:" in preview.out
    assert "accept 001_a: file changed since it was recorded" in preview.out
    assert db.scalar("SELECT checksum FROM hmig_history WHERE name = '001_a'") == before
    done = project.hmig("repair", "--yes")
    assert done.code == 0, done.text
    assert "Repaired 1 history entry:" in done.out
    after = db.scalar("SELECT checksum FROM hmig_history WHERE name = '001_a'")
    assert after != before
    assert db.scalar("SELECT count(*) FROM hmig_audit WHERE action = 'repair'") == 1
    # CRLF and a trailing newline are not a change.
    path.write_bytes(b"CREATE TABLE a (id int); -- comment fixed\r\n\r\n")
    assert "Nothing to repair" in project.hmig("repair").out


def test_new__creates_timestamped_file_and_prints_only_its_path(offline_project: Project) -> None:
    offline_project.write("add-subdomain-to-tenants.sql", "SELECT 1;")  # unprefixed: no effect
    run = offline_project.hmig("new", "Add phone_to Patients!", "--js")
    assert run.code == 0, run.text
    path = run.out.strip()
    assert run.out.count("\n") == 1
    created = offline_project.migrations / path.rsplit("/", 1)[1]
    assert created.name.endswith("_add-phone-to-patients.js")
    assert created.name.split("_", 1)[0].isdigit()
    text = created.read_text()
    assert "exports.up = (pgm) => {};" in text and "exports.down" in text
    sql = offline_project.hmig("new", "index lab orders")
    assert sql.code == 0
    assert (
        "-- Up Migration"
        in (offline_project.migrations / sql.out.strip().rsplit("/", 1)[1]).read_text()
    )
    assert offline_project.hmig("validate").code == 0


def test_new__refuses_a_name_sorting_before_an_existing_one(offline_project: Project) -> None:
    offline_project.write("99999999999999_future.sql", "SELECT 1;")
    run = offline_project.hmig("new", "late")
    assert run.code == 2
    assert "99999999999999_future" in run.text
    assert sorted(p.name for p in offline_project.migrations.iterdir()) == [
        "99999999999999_future.sql"
    ]
