"""Lint through the CLI: findings sized by the live database, and lint.fail_on."""

from __future__ import annotations

from tests.conftest import Project


def _big_table(project: Project) -> None:
    assert project.database is not None
    project.database.execute("CREATE TABLE patients (id int PRIMARY KEY, email text)")
    project.database.execute(
        "INSERT INTO patients SELECT g, 'p' || g || '@example.org' FROM generate_series(1, 60000) g"
    )
    project.database.execute("ANALYZE patients")


def test_plan__blocking_index_on_large_table__named_with_its_size(project: Project) -> None:
    _big_table(project)
    project.write("001_idx.sql", "CREATE INDEX patients_email ON patients (email);\n")
    run = project.hmig("plan", "--json")
    assert run.code == 0, run.text
    findings = run.report()["findings"]
    ours = [f for f in findings if f["source"] == "hmig"]
    assert ours, findings
    finding = ours[0]
    assert finding["rule"] == "blocking-lock-on-large-table"
    assert finding["file"] == "migrations/001_idx.sql" and finding["line"] == 1
    assert "patients" in finding["message"] and "rows" in finding["message"]
    assert "blocking-lock-on-large-table at migrations/001_idx.sql:1" in run.err
    assert "Lint: " in run.err


def test_apply__findings_over_fail_on__exit_1_nothing_applied(project: Project) -> None:
    _big_table(project)
    project.manifest(lint={"fail_on": "error"})
    project.write("001_ok.sql", "CREATE TABLE harmless (id int);")
    project.write("002_idx.sql", "CREATE INDEX patients_email ON patients (email);\n")
    run = project.hmig("apply", "--json")
    assert run.code == 1, run.text
    report = run.report()
    assert report["outcome"] == "failed"
    assert report["ran"] == []
    assert "at or above lint.fail_on: error. Nothing was applied." in run.err
    assert project.database is not None
    assert "harmless" not in project.database.tables()
    assert "pgmigrations" not in project.database.tables()


def test_apply__ignore_directive__lets_it_through(project: Project) -> None:
    _big_table(project)
    project.manifest(lint={"fail_on": "error"})
    project.write(
        "001_idx.sql",
        "-- hmig:ignore blocking-lock-on-large-table, require-concurrent-index-creation\n"
        "CREATE INDEX patients_email ON patients (email);\n",
    )
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    assert [r["name"] for r in run.report()["ran"]] == ["001_idx"]
