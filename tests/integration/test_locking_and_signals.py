"""The advisory lock, concurrent runs and cancellation, against real servers and processes."""

from __future__ import annotations

import json
import signal
import time

import psycopg

from tests.conftest import Project

LOCK_KEY = 7241865325823964  # node-pg-migrate's PG_MIGRATE_LOCK_ID
# pg_locks is cluster-wide; other databases on a shared server may hold the same key.
_ADVISORY_LOCKS_HERE = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def test_apply__concurrent_runs__each_migration_exactly_once(project: Project) -> None:
    for i in range(12):
        project.write(f"{i:03d}_m.sql", f"CREATE TABLE t{i} (id int); SELECT pg_sleep(0.02);")
    processes = [project.popen("apply", "--json") for _ in range(4)]
    results = [(p.wait(timeout=120), p.stdout.read() if p.stdout else "") for p in processes]
    for process in processes:
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()
    assert all(code == 0 for code, _ in results), results
    ran = [name for _, out in results for name in (r["name"] for r in json.loads(out)["ran"])]
    assert sorted(ran) == [f"{i:03d}_m" for i in range(12)]  # every migration exactly once
    db = project.database
    assert db is not None
    assert db.history() == [f"{i:03d}_m" for i in range(12)]
    assert db.scalar(_ADVISORY_LOCKS_HERE) == 0


def test_apply__lock_held__times_out_with_holder_and_exit_2(project: Project) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    assert project.database is not None
    with psycopg.connect(
        project.database.url, autocommit=True, application_name="npm run migrate"
    ) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        holder_pid = holder.info.backend_pid
        started = time.monotonic()
        run = project.hmig("apply", "--lock-wait", "1", "--json")
        waited = time.monotonic() - started
    assert run.code == 2, run.text
    error = run.report()["error"]
    assert error["type"] == "LockNotAcquired"
    assert "application_name 'npm run migrate'" in error["message"]
    assert f"pid {holder_pid}" in error["message"]
    assert waited < 30  # it gave up after --lock-wait, not after the default 60 s
    assert project.database.tables() == set()
    assert run.report()["database"]["name"] == project.database.name
    assert run.report()["applied"] == []


def test_apply__lock_released_by_other_run__proceeds(project: Project) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    assert project.database is not None
    with psycopg.connect(project.database.url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        process = project.popen("apply", "--lock-wait", "30")
        time.sleep(1.0)
        assert process.poll() is None  # waiting for the lock
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        assert process.wait(timeout=60) == 0
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()
    assert project.database.history() == ["001_a"]


def test_apply__sigterm_mid_migration__rolls_back_releases_lock_exit_130(
    project: Project,
) -> None:
    project.write("001_fast.sql", "CREATE TABLE fast (id int);")
    project.write("002_slow.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n")
    db = project.database
    assert db is not None
    process = project.popen("apply", "--json")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hmig' "
            "AND datname = current_database() "
            "AND query LIKE 'SELECT pg_sleep%%'"
        ):
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=30)
    out = process.stdout.read() if process.stdout else ""
    err = process.stderr.read() if process.stderr else ""
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()
    assert code == 130, out + err
    report = json.loads(out)
    assert report["outcome"] == "cancelled"
    assert [r["name"] for r in report["ran"]] == ["001_fast"]
    assert db.history() == ["001_fast"]
    assert "slow" not in db.tables()
    assert db.scalar(_ADVISORY_LOCKS_HERE) == 0
    assert "Interrupted" in err
