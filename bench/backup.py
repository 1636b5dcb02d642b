"""Backup speed: `hmig backup` and `hmig apply`'s backup against raw pg_dump (issue 4).

Generates a database of about `--size-mb` MB (default 1000) spread over `--tables` tables
(default 40) on a local PostgreSQL server, then times, like with like on the same server:

1. raw `pg_dump -Fc` against `hmig backup` (mode: full, format: custom, verify: list), with
   what hmig's verification costs (`pg_restore --list`, `pg_restore -f /dev/null` and sha256
   of the raw file, timed on their own) and `hmig backup` with `verify: restore`;
2. `format: directory` with `jobs: 2` against `jobs: 1`, for `hmig backup` and raw
   `pg_dump -Fd -j N`;
3. `hmig apply` of one migration touching one table (`ALTER TABLE t_07 ADD COLUMN note text`)
   with `backup: {mode: tables}` against `mode: full` (rolled back between runs), with the size
   of each backup artifact.

Each contender runs `--repeat` times, round-robin; median and minimum are reported, with the
ratios and a PASS/MISS beside the target (hmig backup / pg_dump -Fc <= 1.05). A benchmark
reports, it does not assert. Later rounds are skipped when they would overrun `--budget`.
Backups are deleted after each run; the database is dropped at the end, also after an error,
Ctrl-C or SIGTERM. See bench/README.md.

    /work/main/.venv/bin/python bench/backup.py [--size-mb 1000] [--repeat 3] [--budget 570]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from _common import (
    DEFAULT_DSN,
    NOISY,
    URL_ENV,
    BenchError,
    Ran,
    check_loopback,
    child_env,
    database_url,
    first_line,
    freeze_hmig,
    hmig_command,
    load_average,
    positive,
    run,
    terminate,
)
from psycopg import sql

DB_PREFIX = "hmig_backupbench_"
TARGET_RATIO = 1.05  # hmig backup / raw pg_dump -Fc
DISK_FACTOR = 4  # refuse to start with less free space than this many times the planned size
CALIBRATION_ROWS = 20_000
TOUCHED = "t_07"
MIGRATION_NAME = "1700000000000_add_note_to_t_07"
MIGRATION_SQL = (
    "-- Up Migration\n"
    f"ALTER TABLE {TOUCHED} ADD COLUMN note text;\n"
    "-- Down Migration\n"
    f"ALTER TABLE {TOUCHED} DROP COLUMN note;\n"
)
COLUMNS = (
    "id bigint NOT NULL, account integer NOT NULL, amount numeric(12,2) NOT NULL, "
    "created_at timestamptz NOT NULL, active boolean NOT NULL, code text NOT NULL, "
    "note_text text NOT NULL, attrs jsonb"
)
FILL = """
INSERT INTO {table} (id, account, amount, created_at, active, code, note_text, attrs)
SELECT g,
       (g * 7919 + %(salt)s) %% 100000,
       ((g * 31 + %(salt)s) %% 1000000) / 100.0,
       timestamptz '2020-01-01' + g * interval '37 seconds',
       g %% 3 = 0,
       'C-' || lpad((g %% 50000)::text, 6, '0'),
       md5((g + %(salt)s * 1000003)::text) || ' ' || md5((g + 1)::text),
       CASE WHEN g %% 4 = 0 THEN jsonb_build_object('k', g %% 97, 'tag', 'x' || (g %% 13)) END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""


# --- helpers ----------------------------------------------------------------------------------


def mib(n: float) -> str:
    """Bytes as MiB with one decimal."""
    return f"{n / 2**20:.1f} MiB"


def path_bytes(path: Path) -> int:
    """Size of a file, or of the files in a folder (pg_dump -Fd)."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return path.stat().st_size


def remove(path: Path) -> None:
    """Delete a backup: a file or a folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def empty_folder(folder: Path) -> None:
    """Delete everything in `folder` (the backups of the run just done)."""
    if folder.is_dir():
        for entry in folder.iterdir():
            remove(entry)


def sha256_of(path: Path) -> str:
    """sha256 as hmig computes it: of the file, or of `sha256sum *` over a folder's files."""
    if path.is_dir():
        listing = "".join(
            f"{sha256_of(f)}  {f.name}\n" for f in sorted(path.iterdir()) if f.is_file()
        )
        return hashlib.sha256(listing.encode()).hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def other_benchmarks() -> list[str]:
    """Command lines of other running `bench/` scripts (they would disturb the figures)."""
    found = []
    for entry in Path("/proc").iterdir():
        # Not this process, nor what started it (`timeout 600 …/python bench/…`).
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), os.getppid()):
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode("utf-8", "replace") for a in argv if a)
        if "bench/" in text and "python" in text and "grep" not in text:
            found.append(f"pid {entry.name}: {text[:120]}")
    return found


# --- tools ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tools:
    """The programs timed, and how hmig is started."""

    pg_dump: str  # the raw contender (hmig picks the same for a server of its major)
    pg_restore: str  # the one hmig's `verify: list` runs (the newest found)
    hmig: list[str]  # argv prefix
    hmig_env: dict[str, str]  # extra environment (PYTHONPATH with --freeze)


def find_pg_tools(server_major: int, pg_dump: str | None) -> tuple[str, str]:
    """pg_dump of the server's major (as hmig picks it) and the newest pg_restore (hmig's).

    hmig's own lookup (`hmig.binaries`) is asked when this Python can import it, so the raw
    contender runs the very binaries hmig runs; otherwise Debian's folder for the major.
    """
    env = child_env()
    try:
        from hmig import binaries

        dump = str(binaries.find_pg_tool("pg_dump", server_major=server_major, env=env).path)
        restore = str(binaries.newest_pg_tool("pg_restore", env=env).path)
    except Exception:  # hmig not importable, or it found nothing: fall back to Debian's layout
        dump = f"/usr/lib/postgresql/{server_major}/bin/pg_dump"
        restore = f"/usr/lib/postgresql/{server_major}/bin/pg_restore"
    dump = pg_dump or dump
    for tool in (dump, restore):
        if not Path(tool).is_file():
            raise SystemExit(f"{tool} not found: install postgresql-client-{server_major}")
    return dump, restore


# --- server and data --------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    """The admin connection: creates, measures and drops this run's database."""

    dsn: str
    created: set[str] = field(default_factory=set)

    def _admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)

    def scalar(self, query: str) -> Any:
        """One value from the admin database."""
        with self._admin() as conn:
            row = conn.execute(query).fetchone()
        return row[0] if row else None

    def data_directory(self) -> Path | None:
        """The server's data directory when it is readable from here (needs superuser)."""
        try:
            value = self.scalar("SHOW data_directory")
        except psycopg.Error:
            return None
        path = Path(str(value)) if value else None
        return path if path is not None and path.is_dir() else None

    def create(self) -> str:
        """A new, empty database with a unique name."""
        name = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        # Recorded first: an interruption while CREATE DATABASE runs may still leave it behind,
        # and drop_all's DROP DATABASE IF EXISTS is harmless when it did not.
        self.created.add(name)
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def database_size(self, name: str) -> int:
        """`pg_database_size` of `name`."""
        with self._admin() as conn:
            row = conn.execute("SELECT pg_catalog.pg_database_size(%s)", (name,)).fetchone()
        return int(row[0]) if row else 0

    def checkpoint(self) -> None:
        """Write dirty buffers now, so no checkpoint lands inside a measurement (best effort)."""
        try:
            with self._admin() as conn:
                conn.execute("CHECKPOINT")
        except psycopg.Error:
            pass

    def others_active(self) -> int:
        """Active sessions of other clients on the server: a sign of concurrent load."""
        try:
            return int(
                self.scalar(
                    "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE state = 'active' "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            )
        except psycopg.Error:
            return -1

    def drop(self, name: str) -> None:
        """Drop database `name`, disconnecting whatever is left in it."""
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self.created.discard(name)

    def drop_all(self) -> None:
        """Best effort, on the way out (also after an error, Ctrl-C or SIGTERM)."""
        for name in sorted(self.created):
            try:
                self.drop(name)
            except psycopg.Error as exc:
                print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)


def _one(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    if row is None:
        raise BenchError(f"no row from {query}")
    return int(row[0])


def _create(conn: psycopg.Connection[Any], table: str) -> None:
    conn.execute(sql.SQL(f"CREATE TABLE {{}} ({COLUMNS})").format(sql.Identifier(table)))


def _fill(conn: psycopg.Connection[Any], table: str, salt: int, first: int, last: int) -> None:
    query = sql.SQL(FILL).format(table=sql.Identifier(table))
    conn.execute(query, {"salt": salt, "first": first, "last": last})


def _index(conn: psycopg.Connection[Any], table: str) -> None:
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(sql.Identifier(table)))
    conn.execute(
        sql.SQL("CREATE INDEX {} ON {} (account)").format(
            sql.Identifier(f"{table}_account_idx"), sql.Identifier(table)
        )
    )


def generate(url: str, *, size_bytes: int, tables: int, workers: int, say: Say) -> int:
    """Fill the database with `tables` tables of about `size_bytes` in all; rows per table.

    A sample table (dropped again) tells the bytes per row (heap, primary key and one secondary
    index); the tables are then filled in `workers` parallel sessions, each by one
    `INSERT … SELECT … generate_series`, indexed afterwards, then `VACUUM (FREEZE, ANALYZE)`
    so no dump sets hint bits.
    """
    names = [f"t_{i:02d}" for i in range(tables)]
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET synchronous_commit = off")
        base = _one(conn, "SELECT pg_database_size(current_database())")
        _create(conn, "calibration")
        _fill(conn, "calibration", 0, 1, CALIBRATION_ROWS)
        _index(conn, "calibration")
        sample = _one(conn, "SELECT pg_total_relation_size('calibration')")
        conn.execute("DROP TABLE calibration")
        for name in names:
            _create(conn, name)
    per_row = sample / CALIBRATION_ROWS
    rows = max(1000, int((size_bytes - base) / tables / per_row))
    say(f"  {tables} tables x {rows:,} rows (about {per_row:.0f} bytes a row with its indexes)")
    todo: queue.Queue[int] = queue.Queue()
    for i in range(tables):
        todo.put(i)
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def worker() -> None:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                conn.execute("SET synchronous_commit = off")
                conn.execute("SET maintenance_work_mem = '128MB'")
                while not stop.is_set():
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    _fill(conn, names[i], i, 1, rows)
                    _index(conn, names[i])
                    conn.execute(
                        sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(sql.Identifier(names[i]))
                    )
                    with lock:
                        done[0] += 1
                        if done[0] % 10 == 0 or done[0] == tables:
                            say(f"  {done[0]}/{tables} tables filled")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except BaseException:
        stop.set()
        raise
    if errors:
        raise BenchError(f"generating the data failed: {errors[0]}")
    return rows


# --- the workload's files ---------------------------------------------------------------------


ENVIRONMENTS: dict[str, str] = {
    # environment name -> its backup: mapping (flow style)
    "list": "{mode: full, format: custom, verify: list}",
    "restore": "{mode: full, format: custom, verify: restore}",
    "dir1": "{mode: full, format: directory, jobs: 1, verify: list}",
    "dirN": "{mode: full, format: directory, jobs: JOBS, verify: list}",
    "tables": "{mode: tables, required: true, format: custom, verify: list}",
    "full": "{mode: full, required: true, format: custom, verify: list}",
    "nobackup": "{mode: none}",
}


def write_files(root: Path, jobs: int) -> Path:
    """The migration folder (one pending migration) and the manifest; returns the manifest."""
    migrations = root / "migrations"
    migrations.mkdir(parents=True)
    (migrations / f"{MIGRATION_NAME}.sql").write_text(MIGRATION_SQL, encoding="utf-8")
    lines = ["version: 1", "migrations:", "  dir: migrations", "environments:"]
    for name, backup in ENVIRONMENTS.items():
        policy = backup.replace("JOBS", str(jobs))
        if "none" not in policy:
            policy = policy[:-1] + ", dir: backups, retention: {days: 30, keep: 100}}"
        lines += [
            f"  {name}:",
            f"    database: {{url_env: {URL_ENV}}}",
            f"    backup: {policy}",
        ]
    manifest = root / "hmig.yml"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


# --- contenders -------------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    """One timed run of a contender, and what it reported."""

    wall_s: float
    cpu_s: float
    bytes: int = 0
    duration_s: float | None = None  # hmig's backup.duration_ms
    backup_s: float | None = None  # the backup step inside `hmig apply` (same field)
    steps: dict[str, float] = field(default_factory=dict)  # raw: verification steps
    tables: tuple[str, ...] = ()
    pg_dump_version: str = ""
    note: str = ""


@dataclass(slots=True)
class Contender:
    """Something timed: a key, a label, the part it belongs to and how to run it once."""

    key: str
    part: int
    label: str
    once: Callable[[], Sample]
    max_runs: int | None = None  # None: every round
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def values(self, attr: str = "wall_s") -> list[float]:
        """One attribute of every sample, where it is known."""
        found = [getattr(s, attr) for s in self.samples]
        return [float(v) for v in found if v is not None]

    def median(self, attr: str = "wall_s") -> float | None:
        """Median of an attribute over the samples."""
        values = self.values(attr)
        return statistics.median(values) if values else None

    def minimum(self, attr: str = "wall_s") -> float | None:
        """Minimum of an attribute over the samples."""
        values = self.values(attr)
        return min(values) if values else None

    def step_median(self, step: str) -> float | None:
        """Median of one raw verification step."""
        values = [s.steps[step] for s in self.samples if step in s.steps]
        return statistics.median(values) if values else None

    def step_minimum(self, step: str) -> float | None:
        """Minimum of one raw verification step."""
        values = [s.steps[step] for s in self.samples if step in s.steps]
        return min(values) if values else None


@dataclass(slots=True)
class Bench:
    """Everything a run needs: where, with what, against which database."""

    root: Path
    manifest: Path
    url: str
    tools: Tools
    server: Server
    jobs: int
    timeout_s: float

    @property
    def backups(self) -> Path:
        """hmig's backup folder (the manifest's `dir: backups`)."""
        return self.root / "backups"

    @property
    def raw_dir(self) -> Path:
        """Where the raw pg_dump contenders write."""
        return self.root / "raw"

    def _env(self) -> dict[str, str]:
        return child_env({URL_ENV: self.url, **self.tools.hmig_env})

    def hmig(self, env_name: str, *command: str) -> tuple[Ran, dict[str, Any]]:
        """`hmig --manifest M --env E --json COMMAND…`, timed, with its JSON report."""
        argv = [
            *self.tools.hmig,
            "--manifest",
            str(self.manifest),
            "--env",
            env_name,
            "--json",
            *command,
        ]
        ran = run(argv, env=self._env(), cwd=self.root, timeout_s=self.timeout_s)
        try:
            report = json.loads(ran.stdout)
        except ValueError as exc:
            raise BenchError(f"hmig printed no JSON report: {ran.stderr.strip()[-300:]}") from exc
        return ran, report

    def hmig_backup(self, env_name: str) -> Sample:
        """`hmig backup` in `env_name`; the artifact is deleted afterwards."""
        try:
            ran, report = self.hmig(env_name, "backup")
            artifact = report.get("backup") or {}
            if report.get("exit_code") != 0 or not artifact:
                raise BenchError(f"hmig backup: outcome {report.get('outcome')}, no backup")
            return Sample(
                wall_s=ran.wall_s,
                cpu_s=ran.cpu_s,
                bytes=int(artifact.get("bytes", 0)),
                duration_s=float(artifact.get("duration_ms", 0)) / 1000,
                pg_dump_version=str(artifact.get("pg_dump_version", "")),
            )
        finally:
            empty_folder(self.backups)

    def raw_dump(self, fmt: str, jobs: int, *, verify: bool) -> Sample:
        """Raw pg_dump with hmig's flags; with `verify`, hmig's checks timed one by one."""
        target = self.raw_dir / f"raw.{fmt}"
        argv = [
            self.tools.pg_dump,
            f"--format={fmt}",
            f"--file={target}",
            "--no-password",
            f"--dbname={self.url}",
        ]
        if jobs > 1:
            argv.append(f"--jobs={jobs}")
        env = child_env()
        try:
            ran = run(argv, env=env, cwd=self.root, timeout_s=self.timeout_s)
            sample = Sample(wall_s=ran.wall_s, cpu_s=ran.cpu_s, bytes=path_bytes(target))
            if verify:
                for step, extra in (("list", ["--list"]), ("read", ["--file=/dev/null"])):
                    checked = run(
                        [self.tools.pg_restore, *extra, str(target)],
                        env=env,
                        cwd=self.root,
                        timeout_s=self.timeout_s,
                    )
                    sample.steps[step] = checked.wall_s
                started = time.perf_counter()
                sha256_of(target)
                sample.steps["sha256"] = time.perf_counter() - started
            return sample
        finally:
            remove(target)

    def apply_with(self, env_name: str) -> Sample:
        """`hmig apply` in `env_name` (timed), then `hmig rollback --yes` without a backup."""
        try:
            ran, report = self.hmig(env_name, "apply")
            artifact = report.get("backup") or {}
            ran_names = [r.get("name") for r in report.get("ran", [])]
            if report.get("exit_code") != 0 or MIGRATION_NAME not in ran_names or not artifact:
                raise BenchError(
                    f"hmig apply --env {env_name}: outcome {report.get('outcome')}, ran "
                    f"{ran_names}, backup {'yes' if artifact else 'none'}"
                )
            fallback = [
                str(w.get("message", ""))
                for w in report.get("warnings", [])
                if w.get("code") == "backup-full"
            ]
            return Sample(
                wall_s=ran.wall_s,
                cpu_s=ran.cpu_s,
                bytes=int(artifact.get("bytes", 0)),
                backup_s=float(artifact.get("duration_ms", 0)) / 1000,
                tables=tuple(artifact.get("tables") or ()),
                pg_dump_version=str(artifact.get("pg_dump_version", "")),
                note=f"mode {artifact.get('mode')}" + (f"; {fallback[0]}" if fallback else ""),
            )
        finally:
            empty_folder(self.backups)
            self.rollback()

    def rollback(self) -> None:
        """Undo the migration when it is applied (environment without a backup policy)."""
        _, status = self.hmig("nobackup", "status")
        if any(a.get("name") == MIGRATION_NAME for a in status.get("applied", [])):
            _, report = self.hmig("nobackup", "--yes", "rollback")
            if report.get("exit_code") != 0:
                raise BenchError(f"hmig rollback: outcome {report.get('outcome')}")


def contenders(bench: Bench, restore_runs: int | None) -> list[Contender]:
    """Every contender of the three parts, in the order they run within a round."""
    jobs = bench.jobs
    return [
        Contender(
            "raw_fc",
            1,
            "pg_dump -Fc",
            lambda: bench.raw_dump("custom", 1, verify=True),
        ),
        Contender("hmig_list", 1, "hmig backup, verify: list", lambda: bench.hmig_backup("list")),
        Contender(
            "hmig_restore",
            1,
            "hmig backup, verify: restore",
            lambda: bench.hmig_backup("restore"),
            max_runs=restore_runs,
        ),
        Contender(
            "raw_fd1",
            2,
            "pg_dump -Fd -j 1",
            lambda: bench.raw_dump("directory", 1, verify=False),
        ),
        Contender(
            "raw_fdN",
            2,
            f"pg_dump -Fd -j {jobs}",
            lambda: bench.raw_dump("directory", jobs, verify=False),
        ),
        Contender(
            "hmig_fd1", 2, "hmig backup, directory, jobs: 1", lambda: bench.hmig_backup("dir1")
        ),
        Contender(
            "hmig_fdN",
            2,
            f"hmig backup, directory, jobs: {jobs}",
            lambda: bench.hmig_backup("dirN"),
        ),
        Contender(
            "apply_tables", 3, "hmig apply, backup mode: tables", lambda: bench.apply_with("tables")
        ),
        Contender(
            "apply_full", 3, "hmig apply, backup mode: full", lambda: bench.apply_with("full")
        ),
    ]


# --- running ----------------------------------------------------------------------------------


class Say:
    """Progress lines, stamped with the seconds since the start."""

    def __init__(self, started: float) -> None:
        self.started = started

    def __call__(self, text: str) -> None:
        """Print one progress line now."""
        print(f"[{time.monotonic() - self.started:6.1f} s] {text}", flush=True)


def run_rounds(
    bench: Bench, chosen: list[Contender], *, repeat: int, budget_s: float, say: Say
) -> list[str]:
    """Round-robin: each round runs every contender once, order rotated within each part.

    A round after the first is skipped when the time so far plus the last round's would
    overrun the budget. Returns notes on what was skipped.
    """
    notes: list[str] = []
    parts = sorted({c.part for c in chosen})
    for number in range(1, repeat + 1):
        round_started = time.monotonic()
        for part in parts:
            members = [c for c in chosen if c.part == part]
            shift = (number - 1) % len(members)
            for contender in members[shift:] + members[:shift]:
                if contender.max_runs is not None and number > contender.max_runs:
                    continue
                bench.server.checkpoint()
                try:
                    sample = contender.once()
                except (BenchError, psycopg.Error, OSError) as exc:
                    message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                    contender.errors.append(message)
                    say(f"round {number}: {contender.label}: ERROR {message}")
                    continue
                contender.samples.append(sample)
                size = f", {mib(sample.bytes)}" if sample.bytes else ""
                say(f"round {number}: {contender.label}: {sample.wall_s:.2f} s{size}")
        round_s = time.monotonic() - round_started
        elapsed = time.monotonic() - say.started
        if number < repeat and budget_s > 0 and elapsed + round_s > budget_s:
            notes.append(
                f"rounds {number + 1}-{repeat} skipped: {elapsed:.0f} s so far and a round takes "
                f"about {round_s:.0f} s, over --budget {budget_s:.0f} s (raise --budget, or "
                "--budget 0 for no limit, or lower --size-mb)"
            )
            say(notes[-1])
            break
    return notes


# --- report -----------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _r(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table(rows: Sequence[Contender]) -> list[str]:
    """The per-contender lines: runs, median, minimum, spread, client CPU, artifact size."""
    head = (
        f"  {'contender':<44} {'runs':>4} {'median s':>9} {'min s':>8} {'max/min':>7} "
        f"{'cpu s':>7} {'size':>12}"
    )
    lines = [head, "  " + "-" * (len(head) - 2)]
    for c in rows:
        if not c.samples:
            lines.append(f"  {c.label:<44} ERROR: {c.errors[0] if c.errors else 'not run'}")
            continue
        values = c.values()
        spread = max(values) / min(values) if min(values) > 0 else 0.0
        size = statistics.median([s.bytes for s in c.samples])
        lines.append(
            f"  {c.label:<44} {len(values):>4} {_s(c.median()):>9} {_s(c.minimum()):>8} "
            f"{spread:>7.2f} {_s(c.median('cpu_s')):>7} {mib(size) if size else '':>12}"
        )
        if c.errors:
            lines.append(f"  {'':<44} ({len(c.errors)} failed: {c.errors[0]})")
    return lines


def verdict(value: float | None, target: float) -> str:
    """PASS/MISS against a ratio target."""
    if value is None:
        return "n/a"
    return "PASS" if value <= target else "MISS"


def report_part1(by: dict[str, Contender]) -> list[str]:
    """Custom format: the headline ratio, like with like, and where hmig's time goes."""
    raw, hmig, restore = by.get("raw_fc"), by.get("hmig_list"), by.get("hmig_restore")
    lines = ["1. Custom format: raw pg_dump -Fc against hmig backup (mode: full, format: custom)"]
    lines += table([c for c in (raw, hmig, restore) if c is not None])
    if raw is None or hmig is None or not raw.samples or not hmig.samples:
        return [*lines, "  (not enough runs for ratios)"]
    dump_med, dump_min = raw.median(), raw.minimum()
    steps = ("list", "read", "sha256")
    step_med = {s: raw.step_median(s) for s in steps}
    step_min = {s: raw.step_minimum(s) for s in steps}
    lines.append(
        "  hmig's checks of the archive, run by hand on each raw file after its pg_dump "
        "(same pg_restore as hmig's):"
    )
    for step, label in (
        ("list", "pg_restore --list"),
        ("read", "pg_restore -f /dev/null (reads every data block)"),
        ("sha256", "sha256 of the file (hmig runs it beside pg_restore)"),
    ):
        lines.append(
            f"    {label:<52} median {_s(step_med[step]):>6} s   min {_s(step_min[step]):>6} s"
        )
    hmig_med, hmig_min = hmig.median(), hmig.minimum()
    ratio_med, ratio_min = _ratio(hmig_med, dump_med), _ratio(hmig_min, dump_min)
    lines.append(
        f"  hmig backup / pg_dump -Fc:  {_r(ratio_med)} (medians), {_r(ratio_min)} (minimums)   "
        f"target <= {TARGET_RATIO}   {verdict(ratio_med, TARGET_RATIO)}"
    )
    verify_med = (step_med["list"] or 0.0) + (step_med["read"] or 0.0)
    verify_min = (step_min["list"] or 0.0) + (step_min["read"] or 0.0)
    same_med = _ratio(hmig_med, (dump_med or 0.0) + verify_med)
    same_min = _ratio(hmig_min, (dump_min or 0.0) + verify_min)
    lines.append(
        "  like with like, hmig backup / (pg_dump -Fc + pg_restore --list + pg_restore -f "
        f"/dev/null): {_r(same_med)} (medians), {_r(same_min)} (minimums)   "
        f"target <= {TARGET_RATIO}   {verdict(same_med, TARGET_RATIO)}"
    )
    if hmig_med and dump_med:
        rest = hmig_med - dump_med - verify_med
        lines.append(
            f"  of hmig's {hmig_med:.2f} s (median): pg_dump {dump_med:.2f} s "
            f"({dump_med / hmig_med:.0%}), verification {verify_med:.2f} s "
            f"({verify_med / hmig_med:.0%}), the rest {rest:+.2f} s ({rest / hmig_med:+.0%}: "
            "Python start-up, connecting, the size query, sha256 beyond pg_restore, pruning; "
            "a difference of medians, so the runs' noise is in it)"
        )
    duration = hmig.median("duration_s")
    if duration is not None and hmig_med:
        lines.append(
            f"  hmig's JSON backup.duration_ms, median {duration:.2f} s: it spans pg_dump AND "
            "the verification (take() from the pg_dump lookup to pruning); wall - duration = "
            f"{hmig_med - duration:.2f} s is start-up, manifest, connection and the size query"
        )
    if restore is not None and 0 < len(restore.samples) < len(hmig.samples):
        lines.append(
            f"  (verify: restore, the slowest contender, ran {len(restore.samples)} time(s): "
            "--restore-runs)"
        )
    if restore is not None and restore.samples and dump_med:
        r_med = restore.median() or 0.0
        verification = r_med - dump_med
        lines.append(
            f"  verify: restore, median {r_med:.2f} s: {verification:.2f} s "
            f"({verification / r_med:.0%}) beyond the raw pg_dump (restore into a scratch "
            "database, count every table's rows, drop it), "
            f"{_r(_ratio(r_med, hmig_med))}x verify: list"
        )
    versions = {s.pg_dump_version for s in hmig.samples if s.pg_dump_version}
    if versions:
        lines.append(f"  pg_dump hmig ran (its report): {', '.join(sorted(versions))}")
    return lines


def report_part2(by: dict[str, Contender], jobs: int, cores: int) -> list[str]:
    """Directory format: jobs N against jobs 1, raw and hmig."""
    keys = ("raw_fd1", "raw_fdN", "hmig_fd1", "hmig_fdN")
    rows = [by[k] for k in keys if k in by]
    lines = [f"2. Directory format: jobs: {jobs} against jobs: 1"]
    lines += table(rows)
    if len(rows) < 4:
        return lines
    raw1, rawN, hmig1, hmigN = rows
    lines.append(
        f"  jobs {jobs} / jobs 1:  pg_dump {_r(_ratio(rawN.median(), raw1.median()))} "
        f"(min {_r(_ratio(rawN.minimum(), raw1.minimum()))}),  hmig "
        f"{_r(_ratio(hmigN.median(), hmig1.median()))} "
        f"(min {_r(_ratio(hmigN.minimum(), hmig1.minimum()))})"
    )
    lines.append(
        f"  hmig / pg_dump:  jobs 1 {_r(_ratio(hmig1.median(), raw1.median()))},  jobs {jobs} "
        f"{_r(_ratio(hmigN.median(), rawN.median()))}  (hmig adds its verification: "
        "pg_restore -f /dev/null over the folder, and sha256 of every file)"
    )
    lines.append(
        f"  note: this machine has {cores} cores. With -j {jobs} pg_dump runs {jobs} worker "
        f"processes, each compressing a table while its own server backend reads and sends it: "
        f"{2 * jobs} busy processes (plus hmig's sha256 and pg_restore) share {cores} cores, so "
        f"the speed-up stays well short of {jobs}x; the cpu s column is the client side only."
    )
    return lines


def report_part3(by: dict[str, Contender]) -> list[str]:
    """`hmig apply` with mode tables against mode full."""
    tables, full = by.get("apply_tables"), by.get("apply_full")
    lines = [
        f"3. hmig apply of one migration on one table ({MIGRATION_SQL.splitlines()[1]}), "
        "backup mode: tables against full"
    ]
    lines += table([c for c in (tables, full) if c is not None])
    if tables is None or full is None or not tables.samples or not full.samples:
        return lines
    lines.append(
        f"  tables / full:  {_r(_ratio(tables.median(), full.median()))} "
        f"(min {_r(_ratio(tables.minimum(), full.minimum()))});  backup step inside apply: "
        f"tables {_s(tables.median('backup_s'))} s, full {_s(full.median('backup_s'))} s"
    )
    for c in (tables, full):
        sample = c.samples[-1]
        held = ", ".join(sample.tables) if sample.tables else "every table"
        lines.append(
            f"  artifact of {c.label}: {sample.bytes:,} bytes ({mib(sample.bytes)}); "
            f"{sample.note}; data of: {held}"
        )
    return lines


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dsn", default=DEFAULT_DSN, help=f"admin URL (default {DEFAULT_DSN})")
    parser.add_argument(
        "--size-mb", type=positive, default=1000, help="database size to generate (default 1000)"
    )
    parser.add_argument("--tables", type=positive, default=40, help="tables (default 40)")
    parser.add_argument(
        "--repeat", type=positive, default=3, help="timed runs of each contender (default 3)"
    )
    parser.add_argument(
        "--restore-runs",
        type=int,
        default=1,
        help="runs of hmig backup with verify: restore, the slowest contender (default 1; "
        "0 = as many as --repeat)",
    )
    parser.add_argument(
        "--jobs", type=positive, default=2, help="parallel jobs for part 2 (default 2)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=570.0,
        help="seconds; later rounds are skipped when they would overrun it (default 570; 0: none)",
    )
    parser.add_argument(
        "--only",
        default="1,2,3",
        help="parts to run, comma-separated: 1 custom, 2 directory, 3 apply (default 1,2,3)",
    )
    parser.add_argument("--hmig", default=None, metavar="PATH", help="hmig executable to time")
    parser.add_argument(
        "--pg-dump", default=None, metavar="PATH", help="raw pg_dump (default: the one hmig picks)"
    )
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="copy the hmig package at start and time that copy (python -m hmig), so edits to "
        "src/ during the run cannot change what is measured",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per command (default 300)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    if args.freeze and args.hmig:
        parser.error("--freeze and --hmig exclude each other")
    try:
        parts = {int(p) for p in args.only.split(",") if p.strip()}
    except ValueError:
        parser.error("--only takes part numbers, e.g. 1,3")
    if not parts or parts - {1, 2, 3}:
        parser.error("--only takes a subset of 1,2,3")
    args.parts = parts
    return args


def check_disk(paths: Sequence[Path], needed: int) -> list[str]:
    """`df` of each distinct file system; refuse when one has less than `needed` free."""
    lines: list[str] = []
    seen: set[int] = set()
    for path in paths:
        device = path.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        usage = shutil.disk_usage(path)
        lines.append(
            f"  disk:     {usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB at {path} "
            f"(needs {DISK_FACTOR}x the planned size: {needed / 1e9:.1f} GB)"
        )
        if usage.free < needed:
            print("\n".join(lines))
            raise SystemExit(
                f"refusing to start: {usage.free / 1e9:.1f} GB free at {path}, under "
                f"{DISK_FACTOR}x the planned {needed / DISK_FACTOR / 1e9:.1f} GB; lower --size-mb"
            )
    return lines


def make_tools(
    server: Server, *, pg_dump: str | None, hmig_argv: list[str], hmig_env: dict[str, str]
) -> tuple[Tools, str]:
    """The programs to time for this server, and its version (`SHOW server_version`)."""
    server_version = str(server.scalar("SHOW server_version"))
    server_major = int(server_version.split(".")[0].split()[0])
    dump, restore = find_pg_tools(server_major, pg_dump)
    return Tools(dump, restore, hmig_argv, hmig_env), server_version


def build(
    server: Server,
    root: Path,
    tools: Tools,
    *,
    size_mb: int,
    tables: int,
    jobs: int,
    timeout_s: float,
    say: Say,
) -> tuple[Bench, str, int]:
    """Check the disk, generate the database and write the files: the bench, its name, size.

    Refuses (SystemExit) when a file system has less than `DISK_FACTOR` times the planned size
    free. The database is in `server.created`, so `server.drop_all()` removes it.
    """
    size_bytes = size_mb * 1_000_000
    dirs = [root]
    data_dir = server.data_directory()
    if data_dir is not None:
        dirs.append(data_dir)
    for line in check_disk(dirs, DISK_FACTOR * size_bytes):
        say(line.strip())
    name = server.create()
    url = database_url(server.dsn, name)
    say(f"generating database {name} …")
    workers = min(2, os.cpu_count() or 1)
    generate(url, size_bytes=size_bytes, tables=tables, workers=workers, say=say)
    server.checkpoint()
    real = server.database_size(name)
    say(f"database ready: pg_database_size {real:,} bytes ({real / 1e6:.0f} MB)")
    manifest = write_files(root, jobs)
    bench = Bench(root, manifest, url, tools, server, jobs, timeout_s)
    bench.raw_dir.mkdir()
    bench.backups.mkdir(mode=0o700)
    return bench, name, real


def main(argv: Sequence[str] | None = None) -> int:
    """Generate, time, report; exit 1 when a contender failed (a MISS is not an error)."""
    args = parse_args(argv)
    check_loopback(args.dsn)
    # Both end the run through KeyboardInterrupt (cleanup in `finally`), also when SIGINT was
    # ignored by whoever started us (a `&` job of a non-interactive shell).
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    started = time.monotonic()
    say = Say(started)
    server = Server(args.dsn)
    root = Path(tempfile.mkdtemp(prefix="hmig-backup-bench-"))
    cores = os.cpu_count() or 1
    try:
        others = other_benchmarks()
        frozen = freeze_hmig(root / "hmig-src") if args.freeze else None
        hmig_argv, hmig_env = hmig_command(args.hmig, frozen)
        tools, server_version = make_tools(
            server, pg_dump=args.pg_dump, hmig_argv=hmig_argv, hmig_env=hmig_env
        )
        print(f"hmig backup benchmark (issue 4): {args.size_mb} MB in {args.tables} tables")
        print(f"  server:   PostgreSQL {server_version} at {args.dsn}")
        print(
            f"  pg_dump:  {first_line([tools.pg_dump, '--version'])} ({tools.pg_dump}; "
            "/usr/bin/pg_dump is Debian's wrapper around it)"
        )
        print(
            f"  pg_restore for the checks: {first_line([tools.pg_restore, '--version'])} "
            f"({tools.pg_restore})"
        )
        hmig_version = first_line([*hmig_argv, "--version"], child_env(hmig_env))
        frozen_note = ", frozen copy" if args.freeze else ""
        print(f"  hmig:     {hmig_version} ({' '.join(hmig_argv)}{frozen_note})")
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        print(f"  machine:  {cores} cores, {ram:.1f} GiB RAM")
        print(
            f"  load avg: {load_average()} (1/5/15 min) before; "
            f"{server.others_active()} other active sessions on the server"
        )
        for line in others:
            print(f"  warning: another benchmark is running ({line}): figures will be disturbed")
        print(f"  files in {root}{' (kept)' if args.keep else ''}")
        print()
        bench, name, real = build(
            server,
            root,
            tools,
            size_mb=args.size_mb,
            tables=args.tables,
            jobs=args.jobs,
            timeout_s=args.timeout,
            say=say,
        )
        chosen = [c for c in contenders(bench, args.restore_runs or None) if c.part in args.parts]
        if 3 in args.parts:
            say("part 3 warm-up: apply and roll back once without a backup (hmig's tables)")
            bench.hmig("nobackup", "apply")
            bench.rollback()
        notes = run_rounds(bench, chosen, repeat=args.repeat, budget_s=args.budget, say=say)

        by = {c.key: c for c in chosen}
        print()
        print(
            f"Database {name}: pg_database_size {real:,} bytes ({real / 1e6:.0f} MB), "
            f"{args.tables} tables; every figure is wall-clock seconds of the whole command "
            "(process start included); cpu s is the client's user+sys (not the server's)."
        )
        sections = []
        if 1 in args.parts:
            sections.append(report_part1(by))
        if 2 in args.parts:
            sections.append(report_part2(by, args.jobs, cores))
        if 3 in args.parts:
            sections.append(report_part3(by))
        for section in sections:
            print()
            print("\n".join(section))
        noisy = [
            c.label
            for c in chosen
            if len(c.values()) > 1 and max(c.values()) / min(c.values()) > NOISY
        ]
        print()
        for note in notes:
            print(f"note: {note}")
        if noisy:
            print(
                f"warning: runs spread over {NOISY}x for {', '.join(noisy)}: the machine was busy"
            )
        print(
            f"load avg: {load_average()} (1/5/15 min) after; {server.others_active()} other "
            f"active sessions on the server; {time.monotonic() - started:.0f} s in all"
        )
        return 1 if any(c.errors for c in chosen) else 0
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    except (BenchError, psycopg.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        server.drop_all()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
