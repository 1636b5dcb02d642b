"""History drift against real servers: every kind, the policy, `hmig drift`, and `hmig repair`."""

from __future__ import annotations

from typing import Any

import jsonschema

from hmig.reporting import report_schema
from tests.conftest import Database, Project, Run

MANIFEST = """\
version: 1
migrations:
  dir: migrations
{renamed}environments:
  test:
    database:
      url_env: HMIG_TEST_URL
{drift}"""


def manifest(project: Project, *, renamed: str = "", drift: str = "") -> None:
    project.manifest(MANIFEST.format(renamed=renamed, drift=drift))


def valid(run: Run) -> dict[str, Any]:
    report = run.report()
    jsonschema.Draft202012Validator(report_schema()).validate(report)
    return report


def findings(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["code"], f["object"]) for f in report["drift"]["findings"]]


def state(db: Database) -> tuple[Any, ...]:
    """Everything a run could write: tables, every history table, the audit log."""
    return (
        sorted(db.tables()),
        db.rows("SELECT id, name, run_on FROM pgmigrations ORDER BY id"),
        db.rows("SELECT name, checksum, adopted, recorded_at FROM hmig_history ORDER BY name"),
        db.rows("SELECT id, action, name FROM hmig_audit ORDER BY id"),
    )


def applied(project: Project, *files: tuple[str, str]) -> Database:
    for name, text in files:
        project.write(name, text)
    run = project.hmig("apply")
    assert run.code == 0, run.text
    assert project.database is not None
    return project.database


# --- each kind --------------------------------------------------------------------------------


def test_apply__applied_file_edited__exit_1_before_anything_runs(project: Project) -> None:
    db = applied(project, ("001_a.sql", "CREATE TABLE a (id int);\n"))
    project.write("001_a.sql", "CREATE TABLE a (id bigint);\n")
    project.write("002_b.sql", "CREATE TABLE b (id int);\n")
    before = state(db)

    run = project.hmig("apply", "--json")

    assert run.code == 1, run.text
    report = valid(run)
    assert report["outcome"] == "drift"
    assert report["drift"]["checked"] == ["history"]
    assert report["drift"]["fail"] is True
    (finding,) = report["drift"]["findings"]
    assert (finding["check"], finding["code"], finding["object"]) == (
        "history",
        "file-changed",
        "migration 001_a",
    )
    assert finding["message"].startswith("migrations/001_a.sql changed since hmig recorded it on")
    assert "hmig repair --yes" in finding["hint"]
    assert finding["since"] is not None
    assert report["ran"] == []
    assert [p["name"] for p in report["pending"]] == ["002_b"]
    assert "✗ drift.fail is true: nothing was applied, and nothing was written." in run.err
    # The database is untouched: 002_b did not run, no row, no audit entry, no backup.
    assert state(db) == before
    assert "b" not in db.tables()


def test_plan__applied_file_edited__exit_1_with_the_plan_shown(project: Project) -> None:
    applied(project, ("001_a.sql", "CREATE TABLE a (id int);\n"))
    project.write("001_a.sql", "CREATE TABLE a (id int); -- a comment added\n")
    project.write("002_b.sql", "CREATE TABLE b (id int);\n")

    run = project.hmig("plan", "--json")

    assert run.code == 1, run.text
    report = valid(run)
    assert report["outcome"] == "drift"
    assert findings(report) == [("file-changed", "migration 001_a")]
    assert report["pending"][0]["sql"] == "CREATE TABLE b (id int);"


def test_apply__applied_file_deleted__file_missing(project: Project) -> None:
    applied(project, ("001_a.sql", "CREATE TABLE a (id int);"), ("002_b.sql", "SELECT 1;"))
    (project.migrations / "002_b.sql").unlink()

    run = project.hmig("apply", "--json")

    assert run.code == 1, run.text
    report = valid(run)
    assert findings(report) == [("file-missing", "migration 002_b")]
    (finding,) = report["drift"]["findings"]
    assert "but its file is gone from the migrations folder" in finding["message"]
    assert [u["name"] for u in report["unknown"]] == ["002_b"]


def test_drift__history_row_no_file_explains__unknown_row(project: Project) -> None:
    db = applied(project, ("001_a.sql", "CREATE TABLE a (id int);"))
    db.execute("INSERT INTO pgmigrations (name, run_on) VALUES ('000_foreign', now())")

    run = project.hmig("drift", "--check", "history", "--json")

    assert run.code == 1, run.text
    report = valid(run)
    assert report["command"] == "drift"
    assert report["outcome"] == "drift"
    assert findings(report) == [("unknown-row", "migration 000_foreign")]
    assert "unknown-row: the history row '000_foreign'" in run.err


def test_drift__duplicate_names__found_and_repaired(project: Project) -> None:
    db = applied(project, ("001_a.sql", "CREATE TABLE a (id int);"))
    db.execute("INSERT INTO pgmigrations (name, run_on) VALUES ('001_a', now())")

    run = project.hmig("drift", "--json")

    assert run.code == 1, run.text
    assert findings(valid(run)) == [("duplicate-row", "migration 001_a")]
    first = db.scalar("SELECT min(id) FROM pgmigrations")
    repaired = project.hmig("repair", "--yes")
    assert repaired.code == 0, repaired.text
    assert "remove 001_a: recorded again" in repaired.out
    assert db.rows("SELECT id, name FROM pgmigrations") == [(first, "001_a")]
    assert db.scalar("SELECT count(*) FROM hmig_history WHERE name = '001_a'") == 1
    assert project.hmig("drift").code == 0


def test_drift__crlf_checkout_of_unchanged_files__is_not_drift(project: Project) -> None:
    applied(
        project,
        ("001_a.sql", "CREATE TABLE a (id int);\n-- note\n"),
        ("002_b.sql", "CREATE TABLE b (id int);"),
    )
    (project.migrations / "001_a.sql").write_bytes(b"CREATE TABLE a (id int);\r\n-- note\r\n")
    (project.migrations / "002_b.sql").write_bytes(b"CREATE TABLE b (id int);\r\n\r\n")

    drift = project.hmig("drift", "--check", "history", "--json")
    apply = project.hmig("apply", "--json")

    assert drift.code == 0, drift.text
    assert valid(drift)["drift"] == {"checked": ["history"], "fail": True, "findings": []}
    assert "✓ No drift (history checked)." in drift.err
    assert apply.code == 0, apply.text
    assert valid(apply)["outcome"] == "nothing-to-do"


# --- renames ----------------------------------------------------------------------------------


def test_rename__recorded_in_manifest__is_applied_not_drift_and_rolls_back(
    project: Project,
) -> None:
    text = "-- Up Migration\nCREATE TABLE a (id int);\n-- Down Migration\nDROP TABLE a;\n"
    db = applied(project, ("001_add-a.sql", text))
    (project.migrations / "001_add-a.sql").rename(project.migrations / "001_create-a.sql")
    manifest(project, renamed="  renamed:\n    001_add-a: 001_create-a\n")

    run = project.hmig("apply", "--json")

    assert run.code == 0, run.text
    report = valid(run)
    assert report["outcome"] == "nothing-to-do"
    assert report["drift"]["findings"] == []
    assert report["unknown"] == []
    assert db.history() == ["001_add-a"]
    # Rolling the migration back removes the row recorded under its old name.
    back = project.hmig("rollback", "--json")
    assert back.code == 0, back.text
    assert db.history() == []
    assert db.scalar("SELECT count(*) FROM hmig_history") == 0
    assert "a" not in db.tables()


def test_rename__not_recorded__file_renamed_then_repair_remaps(project: Project) -> None:
    db = applied(project, ("001_add-a.sql", "CREATE TABLE a (id int);\n"))
    (project.migrations / "001_add-a.sql").rename(project.migrations / "001_create-a.sql")

    plan = project.hmig("plan", "--json")

    assert plan.code == 1, plan.text
    (finding,) = valid(plan)["drift"]["findings"]
    assert finding["code"] == "file-renamed"
    assert "migrations.renamed: {001_add-a: 001_create-a}" in finding["hint"]
    preview = project.hmig("repair")
    assert "re-map 001_add-a → 001_create-a: renamed" in preview.out
    assert db.history() == ["001_add-a"]
    done = project.hmig("repair", "--yes")
    assert done.code == 0, done.text
    assert db.history() == ["001_create-a"]
    assert db.rows("SELECT name FROM hmig_history") == [("001_create-a",)]
    assert db.scalar("SELECT count(*) FROM hmig_audit WHERE action = 'repair'") == 1
    again = project.hmig("apply", "--json")
    assert again.code == 0, again.text
    assert valid(again)["outcome"] == "nothing-to-do"


def test_rename__manifest_names_a_missing_file__exit_2(project: Project) -> None:
    manifest(project, renamed="  renamed:\n    001_old: 001_typo\n")
    project.write("001_new.sql", "SELECT 1;")

    run = project.hmig("plan")

    assert run.code == 2, run.text
    assert (
        "hmig.yml:5: migrations.renamed.001_old: '001_old' is renamed to '001_typo', but no "
        "migration file is named '001_typo'" in run.text
    )


# --- repair -----------------------------------------------------------------------------------


def test_repair__accepts_edit_and_removes_orphan_then_no_drift(project: Project) -> None:
    db = applied(project, ("001_a.sql", "CREATE TABLE a (id int);"), ("002_b.sql", "SELECT 1;"))
    project.write("001_a.sql", "CREATE TABLE a (id int); -- why a is here\n")
    (project.migrations / "002_b.sql").unlink()
    assert project.hmig("apply").code == 1

    preview = project.hmig("repair")
    done = project.hmig("repair", "--yes", "--json")

    assert "Would repair 2 history entries:" in preview.out
    assert "Nothing was written." in preview.out
    assert done.code == 0, done.text
    assert "accept 001_a: file changed since it was recorded" in done.err
    assert "remove 002_b: no migration file explains it" in done.err
    assert db.history() == ["001_a"]
    assert db.scalar("SELECT count(*) FROM hmig_history WHERE name = '002_b'") == 0
    audit = db.rows("SELECT name, detail FROM hmig_audit WHERE action = 'repair' ORDER BY id")
    assert [name for name, _ in audit] == ["001_a", "002_b"]
    assert audit[1][1].startswith("removed the history row: no migration file explains it")
    assert project.hmig("drift", "--check", "history").code == 0
    assert project.hmig("apply").code == 0


# --- adopted rows -----------------------------------------------------------------------------


def test_adopted_rows__unverified_warning_until_repair_accepts_them(project: Project) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    project.write("002_b.sql", "CREATE TABLE b (id int);")
    db = project.database
    assert db is not None
    # What node-pg-migrate leaves: its table, its rows, the schema; no hmig_history.
    db.execute(
        "CREATE TABLE pgmigrations (id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, "
        "run_on timestamp NOT NULL)"
    )
    db.execute("CREATE TABLE a (id int)")
    db.execute("INSERT INTO pgmigrations (name, run_on) VALUES ('001_a', now())")

    plan = project.hmig("plan", "--json")
    apply = project.hmig("apply", "--json")
    after = project.hmig("plan", "--json")

    assert plan.code == 0, plan.text
    report = valid(plan)
    assert report["drift"]["findings"] == []
    (warning,) = [w for w in report["warnings"] if w["code"] == "unverified"]
    assert "1 applied migration(s) were applied by another tool" in warning["message"]
    assert warning["migration"] == "001_a"
    assert apply.code == 0, apply.text
    # apply adopts the row: the `adopted` warning says it, not a second `unverified` one.
    assert [w["code"] for w in valid(apply)["warnings"]] == ["adopted"]
    assert db.rows("SELECT name, adopted FROM hmig_history ORDER BY name") == [
        ("001_a", True),
        ("002_b", False),
    ]
    assert "unverified" in {w["code"] for w in valid(after)["warnings"]}
    assert project.hmig("repair", "--yes").code == 0
    assert db.rows("SELECT name, adopted FROM hmig_history ORDER BY name") == [
        ("001_a", False),
        ("002_b", False),
    ]
    cleared = valid(project.hmig("plan", "--json"))
    assert "unverified" not in {w["code"] for w in cleared["warnings"]}


# --- policy -----------------------------------------------------------------------------------


def test_apply__fail_false__drift_is_a_warning_and_the_run_goes_on(project: Project) -> None:
    manifest(project, drift="    drift: {check: history, fail: false}\n")
    db = applied(project, ("001_a.sql", "CREATE TABLE a (id int);"))
    project.write("001_a.sql", "CREATE TABLE a (id smallint);")
    project.write("002_b.sql", "CREATE TABLE b (id int);")

    run = project.hmig("apply", "--json")

    assert run.code == 0, run.text
    report = valid(run)
    assert report["outcome"] == "ok"
    assert report["drift"]["fail"] is False
    assert findings(report) == [("file-changed", "migration 001_a")]
    assert [r["name"] for r in report["ran"]] == ["002_b"]
    assert "(drift.fail: false, so the run goes on)" in run.err
    assert db.history() == ["001_a", "002_b"]


def test_apply__check_none__no_drift_check_and_drift_null(project: Project) -> None:
    manifest(project, drift="    drift: {check: none}\n")
    applied(project, ("001_a.sql", "CREATE TABLE a (id int);"))
    project.write("001_a.sql", "CREATE TABLE a (id smallint);")

    run = project.hmig("apply", "--json")
    asked = project.hmig("drift", "--check", "history", "--json")

    assert run.code == 0, run.text
    assert valid(run)["drift"] is None
    # Asking by name still checks.
    assert asked.code == 1, asked.text
    assert findings(valid(asked)) == [("file-changed", "migration 001_a")]


def test_drift__waits_for_the_migration_lock(project: Project) -> None:
    applied(project, ("001_a.sql", "CREATE TABLE a (id int);"))
    assert project.database is not None
    with project.database.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(7241865325823964)")
        run = project.hmig("drift", "--check", "history", "--lock-wait", "1")

    assert run.code == 2, run.text
    assert "another migration run holds the lock" in run.text


# --- the schema check, wired in (the shadow on the test's own server) -------------------------


def with_shadow(project: Project, *, drift: str) -> Database:
    assert project.database is not None
    project.env["HMIG_SHADOW_URL"] = project.database.server.admin_url
    manifest(project, drift=drift)
    return project.database


def test_drift__passing_schema_check__verifies_adopted_rows(project: Project) -> None:
    db = with_shadow(project, drift="    drift: {shadow_url_env: HMIG_SHADOW_URL}\n")
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    db.execute(
        "CREATE TABLE pgmigrations (id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, "
        "run_on timestamp NOT NULL)"
    )
    db.execute("CREATE TABLE a (id int)")
    db.execute("INSERT INTO pgmigrations (name, run_on) VALUES ('001_a', now())")

    run = project.hmig("drift", "--check", "schema", "--json")

    assert run.code == 0, run.text
    report = valid(run)
    assert report["drift"] == {"checked": ["schema"], "fail": True, "findings": []}
    assert "unverified" not in {w["code"] for w in report["warnings"]}
    assert "✓ Verified 1 adopted migration(s): 001_a." in run.err
    assert db.rows("SELECT name, adopted FROM hmig_history") == [("001_a", False)]
    assert db.rows("SELECT action, name, detail FROM hmig_audit ORDER BY id") == [
        ("adopt", "001_a", "written by another tool"),
        (
            "adopt",
            "001_a",
            "verified: a schema drift check found the live schema as the files build it",
        ),
    ]


def test_apply__schema_drift__exit_1_before_anything_runs(project: Project) -> None:
    db = with_shadow(project, drift="    drift: {check: both, shadow_url_env: HMIG_SHADOW_URL}\n")
    applied(project, ("001_a.sql", "CREATE TABLE a (id int);"))
    db.execute("ALTER TABLE a ADD COLUMN phone text")  # by hand, outside any migration
    project.write("002_b.sql", "CREATE TABLE b (id int);")
    before = state(db)

    run = project.hmig("apply", "--json")

    assert run.code == 1, run.text
    report = valid(run)
    assert report["outcome"] == "drift"
    assert report["drift"]["checked"] == ["history", "schema"]
    assert [(f["check"], f["object"]) for f in report["drift"]["findings"]] == [
        ("schema", "column public.a.phone")
    ]
    assert state(db) == before


def test_plan__protected_environment__checks_the_schema_by_default(project: Project) -> None:
    db = with_shadow(
        project, drift="    protected: true\n    drift: {shadow_url_env: HMIG_SHADOW_URL}\n"
    )
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    assert project.hmig("apply", "--yes").code == 0
    db.execute("CREATE INDEX a_id ON a (id)")

    run = project.hmig("plan", "--json")

    assert run.code == 1, run.text
    report = valid(run)
    assert report["drift"]["checked"] == ["history", "schema"]
    assert [f["object"] for f in report["drift"]["findings"]] == ["index public.a_id"]
