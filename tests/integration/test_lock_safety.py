"""Lock-safe execution under load: lock_timeout with retries versus a naive ALTER.

A load generator queries a hot table while a blocking transaction holds a lock on it. A naive
ALTER queues behind the blocker and every query queues behind the ALTER: the table stalls for
about the blocker's duration. hmig's ALTER gives up after lock_timeout, rolls back, and retries,
so queries wait at most about lock_timeout. The assertions are about that structure, with wide
margins, never about absolute speed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg
import pytest

from tests.conftest import Database, Project

BLOCKER_S = 3.0
LOCK_TIMEOUT_MS = 100


@dataclass
class Load:
    """Point queries against `hot` on their own connection, with each query's latency."""

    url: str
    latencies: list[tuple[float, float]] = field(default_factory=list)
    pid: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name="app") as conn:
            self.pid = conn.info.backend_pid
            i = 0
            while not self.stop.is_set():
                started = time.monotonic()
                conn.execute(
                    "SELECT id, v FROM hot WHERE id = %s", (i % 1000 + 1,), prepare=False
                ).fetchall()
                self.latencies.append((started, time.monotonic() - started))
                i += 1
                time.sleep(0.005)


@dataclass
class WaitSampler:
    """Samples pg_locks: how long the load's backend keeps waiting for a lock in one stretch."""

    url: str
    pid_of_load: Load
    longest_wait_s: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        waiting_since: float | None = None
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                now = time.monotonic()
                waiting = conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = %s",
                    (self.pid_of_load.pid,),
                ).fetchone()
                if waiting and waiting[0]:
                    waiting_since = waiting_since or now
                    self.longest_wait_s = max(self.longest_wait_s, now - waiting_since)
                else:
                    waiting_since = None
                time.sleep(0.01)


def _hot_table(db: Database) -> None:
    db.execute("CREATE TABLE hot (id int PRIMARY KEY, v int)")
    db.execute("INSERT INTO hot SELECT g, g FROM generate_series(1, 1000) g")


def _wait_for_migration(db: Database) -> None:
    """Until hmig's backend has sent the migration's statement (it then queues or retries).

    A transaction's first statement goes out behind its `BEGIN; SET LOCAL …; `.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        started = db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hmig' "
            "AND datname = current_database() "
            "AND query ~* '(^|; )(ALTER TABLE hot|CREATE INDEX)'"
        )
        if started:
            return
        time.sleep(0.02)


def _hold_blocker(db: Database, ready: threading.Event, sql: str) -> None:
    """Hold a lock until hmig's migration has been trying for BLOCKER_S seconds."""
    with psycopg.connect(db.url, application_name="blocker") as conn:
        conn.execute(sql)
        ready.set()
        _wait_for_migration(db)
        time.sleep(BLOCKER_S)
        conn.commit()


def _scenario(project: Project, *, blocker_sql: str) -> tuple[Load, WaitSampler, int, str]:
    db = project.database
    assert db is not None
    load = Load(db.url)
    sampler = WaitSampler(db.url, load)
    ready = threading.Event()
    threads = [
        threading.Thread(target=load.run),
        threading.Thread(target=_hold_blocker, args=(db, ready, blocker_sql)),
    ]
    for thread in threads:
        thread.start()
    assert ready.wait(10)
    while not load.pid:
        time.sleep(0.01)
    sampler_thread = threading.Thread(target=sampler.run)
    sampler_thread.start()
    time.sleep(0.3)
    run = project.hmig("apply", "--json", timeout=60)
    time.sleep(0.3)
    load.stop.set()
    sampler.stop.set()
    for thread in [*threads, sampler_thread]:
        thread.join(timeout=30)
    return load, sampler, run.code, run.out + run.err


@pytest.fixture
def hot_project(project: Project) -> Project:
    assert project.database is not None
    _hot_table(project.database)
    project.write("001_alter.sql", "ALTER TABLE hot ADD COLUMN c int;")
    return project


def test_naive_alter__stalls_the_table_for_the_blockers_duration(hot_project: Project) -> None:
    hot_project.manifest(lock_timeout=0)
    load, _, code, text = _scenario(hot_project, blocker_sql="SELECT count(*) FROM hot")
    assert code == 0, text
    worst = max(latency for _, latency in load.latencies)
    assert worst >= BLOCKER_S - 1.0, f"expected a stall, worst latency was {worst:.3f} s"


def test_hmig_alter__retries_without_stalling_the_table(hot_project: Project) -> None:
    hot_project.manifest(
        lock_timeout=f"{LOCK_TIMEOUT_MS}ms",
        lock_retry={"budget": "30s", "initial_delay": "100ms", "max_delay": "400ms"},
    )
    load, sampler, code, text = _scenario(hot_project, blocker_sql="SELECT count(*) FROM hot")
    assert code == 0, text
    assert "hit lock_timeout on attempt 1" in text
    assert "held by pid" in text and "application_name 'blocker'" in text
    worst = max(latency for _, latency in load.latencies)
    assert worst < BLOCKER_S / 4, f"worst latency {worst:.3f} s"
    # Queries queue behind hmig's pending ACCESS EXCLUSIVE request for at most lock_timeout
    # (plus sampling and scheduling slack on a shared 2-core machine).
    assert sampler.longest_wait_s < LOCK_TIMEOUT_MS / 1000 + 0.4, sampler.longest_wait_s
    db = hot_project.database
    assert db is not None
    assert db.history() == ["001_alter"]
    assert (
        db.scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'hot' "
            "AND column_name = 'c'"
        )
        == 1
    )


def test_retry_budget_exhausted__migration_fails_exit_1_with_account(
    hot_project: Project,
) -> None:
    hot_project.manifest(
        lock_timeout="50ms",
        lock_retry={"budget": "600ms", "initial_delay": "100ms", "max_delay": "200ms"},
    )
    _, _, code, text = _scenario(hot_project, blocker_sql="SELECT count(*) FROM hot")
    assert code == 1, text
    assert "Lock retries gave up after" in text
    assert "lock_retry.budget" in text
    assert hot_project.database is not None
    assert hot_project.database.history() == []


def test_concurrent_index__lock_timeout_leaves_no_invalid_index(project: Project) -> None:
    db = project.database
    assert db is not None
    _hot_table(db)
    project.write("001_idx.sql", "CREATE INDEX CONCURRENTLY hot_v_idx ON hot (v);")
    project.manifest(
        lock_timeout="200ms",
        lock_retry={"budget": "30s", "initial_delay": "200ms", "max_delay": "500ms"},
    )
    # An open writer: CREATE INDEX CONCURRENTLY has already created the (invalid) index when it
    # waits for this transaction, and lock_timeout fires there.
    _, _, code, text = _scenario(project, blocker_sql="INSERT INTO hot VALUES (5000, 5000)")
    assert code == 0, text
    assert "hit lock_timeout" in text
    assert db.scalar(
        "SELECT bool_and(indisvalid) FROM pg_index WHERE indexrelid = 'hot_v_idx'::regclass"
    )
    assert db.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
    assert db.history() == ["001_idx"]
