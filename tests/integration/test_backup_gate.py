"""The backup gate of apply and rollback: no migration runs without the backup a policy requires."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Project


def _patients(project: Project) -> None:
    assert project.database is not None
    project.database.execute("CREATE TABLE patients (id int PRIMARY KEY, name text)")
    project.database.execute(
        "INSERT INTO patients SELECT g, 'p' || g FROM generate_series(1, 50) g"
    )
    project.database.execute("CREATE TABLE visits (id int PRIMARY KEY)")


def test_apply__required_backup__taken_verified_and_reported(project: Project) -> None:
    _patients(project)
    project.manifest(backup={"mode": "full", "required": True, "dir": "backups"})
    project.write("001_a.sql", "ALTER TABLE patients ADD COLUMN phone text;")
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    backup = run.report()["backup"]
    assert backup["mode"] == "full" and backup["verified"] == "list"
    path = Path(backup["path"])
    assert path.is_file() and path.stat().st_size == backup["bytes"]
    assert path.name.startswith("backup_test_") and path.name.endswith(".dump")
    assert path.parent == project.root / "backups"
    assert "Taking a backup before the first migration" in run.err
    assert run.err.index("✓ Backup") < run.err.index("→ Running 001_a")
    assert project.database is not None
    assert project.database.rows(
        "SELECT action, name, checksum FROM hmig_audit WHERE action = 'backup'"
    ) == [("backup", path.name, backup["sha256"])]


def test_apply__required_backup_fails__exit_2_nothing_applied(project: Project) -> None:
    _patients(project)
    project.manifest(backup={"mode": "full", "required": True})
    project.write("001_a.sql", "ALTER TABLE patients ADD COLUMN phone text;")
    empty = project.root / "no-tools"
    empty.mkdir()
    run = project.hmig("apply", "--json", env={"HMIG_PG_BIN": str(empty)})
    assert run.code == 2, run.text
    report = run.report()
    assert report["error"]["type"] == "BackupFailed"
    assert "the required backup failed, so no migration was applied" in report["error"]["message"]
    assert project.database is not None
    assert "pgmigrations" not in project.database.tables()
    assert (
        project.database.scalar(
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'phone'"
        )
        == 0
    )


def test_apply__optional_backup_fails__warns_and_applies(project: Project) -> None:
    project.manifest(backup={"mode": "full", "required": False})
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    empty = project.root / "no-tools"
    empty.mkdir()
    run = project.hmig("apply", "--json", env={"HMIG_PG_BIN": str(empty)})
    assert run.code == 0, run.text
    report = run.report()
    assert report["backup"] is None
    assert "backup-skipped" in {w["code"] for w in report["warnings"]}
    assert project.database is not None
    assert project.database.history() == ["001_a"]


def test_apply__tables_mode__dumps_touched_tables_or_falls_back(project: Project) -> None:
    _patients(project)
    project.manifest(backup={"mode": "tables", "required": True})
    project.write("001_a.sql", "ALTER TABLE patients ADD COLUMN phone text;")
    plan = project.hmig("plan")
    assert "the tables the pending migrations touch: patients" in plan.out
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    backup = run.report()["backup"]
    assert backup["mode"] == "tables"
    assert any(t.endswith("patients") for t in backup["tables"])
    assert not any(t.endswith("visits") for t in backup["tables"])
    project.write("002_do.sql", "DO $$ BEGIN PERFORM 1; END $$;")
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    report = run.report()
    assert report["backup"]["tables"] == []  # a full dump
    (warning,) = [w for w in report["warnings"] if w["code"] == "backup-full"]
    assert "cannot tell every table touched" in warning["message"]


def test_rollback__backs_up_first(project: Project) -> None:
    project.write(
        "001_a.sql",
        "-- Up Migration\nCREATE TABLE a (id int);\n-- Down Migration\nDROP TABLE a;\n",
    )
    assert project.hmig("apply").code == 0
    project.manifest(protected=True)  # protected: full, required, verified
    run = project.hmig("rollback", "--yes", "--json")
    assert run.code == 0, run.text
    assert run.report()["backup"]["mode"] == "full"
    assert Path(run.report()["backup"]["path"]).is_file()
    assert project.database is not None
    assert project.database.history() == []
