"""Lock safety under load: an ALTER behind an open transaction, naive versus hmig's retry.

Reproduces the scenario of issue 8 on a local PostgreSQL server. A table `hot` is kept busy
by pgbench (point selects and updates); a transaction is left open on it for `--hold` seconds
(`BEGIN; SELECT count(*) FROM hot;`); a second after it opens, the migration
`ALTER TABLE hot ADD COLUMN c int` starts:

* naive: `hmig apply` with `lock_timeout: 0`, which is what psql or node-pg-migrate do: the
  ALTER queues for its ACCESS EXCLUSIVE lock, and every query on `hot` queues behind it;
* hmig: `hmig apply` with `lock_timeout: 100ms` and the default `lock_retry`: each attempt
  gives up after 100 ms, rolls back and retries with backoff until the blocker is gone.

From pgbench's per-second progress (`-P 1`) and its per-transaction log (`--log`) the script
derives the seconds at 0 tps, the longest stall and the worst latency, and prints them with
the time the migration landed, relative to the blocker's end. A benchmark reports, it does
not assert: the target (hmig: 0 seconds at 0 tps, worst latency <= lock_timeout + 10 ms) is
shown as PASS or MISS. Every database it creates is dropped at the end, also after an error,
Ctrl-C or SIGTERM. See bench/README.md.

    /work/main/.venv/bin/python bench/lock_safety.py [--hold 8] [--dsn URL] [--only naive,hmig]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from _common import (
    DEFAULT_DSN,
    URL_ENV,
    check_loopback,
    child_env,
    database_url,
    find_hmig,
    load_average,
    terminate,
)
from psycopg import sql

DB_PREFIX = "hmig_locksafety_"
MIGRATION_NAME = "1700000000000_add_column_c"
MIGRATION_SQL = (
    "-- Up Migration\nALTER TABLE hot ADD COLUMN c int;\n"
    "-- Down Migration\nALTER TABLE hot DROP COLUMN c;\n"
)
LATENCY_SLACK_MS = 10.0  # target: hmig's worst latency <= lock_timeout + this
MONITOR_INTERVAL_S = 0.02
MONITOR_QUERY = """
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
               WHERE attrelid = 'public.hot'::regclass AND attname = 'c' AND NOT attisdropped),
       count(*) FILTER (WHERE a.application_name = 'pgbench' AND a.wait_event_type = 'Lock')
FROM pg_catalog.pg_stat_activity AS a
WHERE a.datname = current_database()
"""
PROGRESS_RE = re.compile(r"^progress: (\d+(?:\.\d+)?) s, (\d+(?:\.\d+)?) tps, lat (\S+) ms")
FINAL_TPS_RE = re.compile(r"^tps = (\d+(?:\.\d+)?) \(without initial connection time\)", re.M)


class BenchError(Exception):
    """A scenario could not be run as designed: reported as an error, never as a figure."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One way of running the migration."""

    key: str
    label: str
    environment: str  # environment in the generated hmig.yml
    lock_timeout_ms: int


@dataclass(frozen=True, slots=True)
class Settings:
    """What the command line chose."""

    dsn: str
    hold_s: float
    lead_s: float
    warmup_s: float
    tail_s: float
    clients: int
    jobs: int
    rows: int
    lock_timeout: str
    lock_timeout_ms: int
    hmig: str
    pgbench: str
    keep: bool


# --- helpers ----------------------------------------------------------------------------------


def parse_duration_ms(text: str) -> int:
    """`100ms`, `1s` or `250` (milliseconds) as milliseconds; the subset this script accepts."""
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s)?\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected e.g. 100ms, 1s or 250, got {text!r}")
    value = int(match.group(1))
    return value * 1000 if match.group(2) == "s" else value


def find_pgbench(override: str | None) -> str:
    """pgbench from --pgbench, the PATH, or the PostgreSQL 15 client tools."""
    candidates: list[str | None] = [override] if override else []
    candidates += [shutil.which("pgbench"), "/usr/lib/postgresql/15/bin/pgbench"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit("pgbench not found: install the PostgreSQL client tools or pass --pgbench")


def first_line(argv: Sequence[str]) -> str:
    """The first line a `--version` command prints, or `?`."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


# --- server -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    """The admin connection: creates, prepares and drops this run's databases."""

    dsn: str
    created: set[str] = field(default_factory=set)

    def _admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)

    def version(self) -> str:
        """The server's `version()`."""
        with self._admin() as conn:
            row = conn.execute("SELECT pg_catalog.version()").fetchone()
        return str(row[0]) if row else "?"

    def others_active(self) -> int:
        """Active sessions of other clients on the server: a sign of concurrent load."""
        with self._admin() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_catalog.pg_stat_activity "
                "WHERE state = 'active' AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            ).fetchone()
        return int(row[0]) if row else 0

    def create(self, rows: int) -> str:
        """A fresh database with a unique name, holding `hot` with `rows` rows."""
        name = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.add(name)
        with psycopg.connect(
            database_url(self.dsn, name), autocommit=True, connect_timeout=10
        ) as conn:
            conn.execute(
                "CREATE TABLE hot (id int PRIMARY KEY, abalance int NOT NULL DEFAULT 0, "
                "filler text NOT NULL DEFAULT repeat('x', 80))"
            )
            conn.execute("INSERT INTO hot (id) SELECT g FROM generate_series(1, %s) AS g", (rows,))
            conn.execute("VACUUM (ANALYZE) hot")
        return name

    def checkpoint(self) -> None:
        """Flush dirty buffers so a checkpoint is less likely during a measurement (best effort)."""
        try:
            with self._admin() as conn:
                conn.execute("CHECKPOINT")
        except psycopg.Error:
            pass

    def has_column_c(self, name: str) -> bool:
        """True when the migration's column exists in database `name`."""
        with psycopg.connect(
            database_url(self.dsn, name), autocommit=True, connect_timeout=10
        ) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_catalog.pg_attribute "
                "WHERE attrelid = 'public.hot'::regclass AND attname = 'c' AND NOT attisdropped"
            ).fetchone()
        return bool(row and row[0])

    def drop(self, name: str) -> None:
        """Drop database `name`, disconnecting whatever is left in it."""
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self.created.discard(name)

    def drop_all(self) -> None:
        """Best effort, on the way out (also after an error or Ctrl-C)."""
        for name in sorted(self.created):
            try:
                self.drop(name)
            except psycopg.Error as exc:
                print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)


# --- observers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    """One `-P 1` line of pgbench: the interval ending `at` (epoch seconds, when read)."""

    at: float
    elapsed: float
    tps: float
    latency_ms: float | None


class ProgressReader(threading.Thread):
    """Reads pgbench's stderr: keeps the progress lines (time-stamped) and everything else."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.progress: list[Progress] = []
        self.other: list[str] = []
        self.first = threading.Event()

    def run(self) -> None:
        """Read until pgbench closes its stderr."""
        for raw in self.stream:
            line = raw.decode("utf-8", "replace").rstrip()
            match = PROGRESS_RE.match(line)
            if match is None:
                self.other.append(line)
                continue
            lat = match.group(3)
            self.progress.append(
                Progress(
                    at=time.time(),
                    elapsed=float(match.group(1)),
                    tps=float(match.group(2)),
                    latency_ms=float(lat) if re.fullmatch(r"[\d.]+", lat) else None,
                )
            )
            self.first.set()


class Monitor(threading.Thread):
    """Polls the database every 20 ms: when column `c` appears, and pgbench sessions on a lock."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.landed_at: float | None = None
        self.samples: list[tuple[float, int]] = []  # (epoch, pgbench sessions waiting on a lock)
        self.error: str | None = None

    def run(self) -> None:
        """Sample until told to stop; a failure is kept, not raised."""
        try:
            with psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=10,
                application_name="hmig-bench-monitor",
                options="-c lock_timeout=50 -c statement_timeout=1000",
            ) as conn:
                self.ready.set()
                while not self.stop.is_set():
                    try:
                        row = conn.execute(MONITOR_QUERY).fetchone()
                    except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable):
                        continue
                    now = time.time()
                    assert row is not None
                    if row[0] and self.landed_at is None:
                        self.landed_at = now
                    self.samples.append((now, int(row[1])))
                    self.stop.wait(MONITOR_INTERVAL_S)
        except psycopg.Error as exc:
            self.error = str(exc).strip()
        finally:
            self.ready.set()

    def longest_queued_s(self) -> float:
        """Longest run of consecutive samples with a pgbench session waiting on a lock."""
        longest, since = 0.0, None
        for at, waiting in self.samples:
            if waiting and since is None:
                since = at
            elif not waiting and since is not None:
                longest, since = max(longest, at - since), None
        if since is not None and self.samples:
            longest = max(longest, self.samples[-1][0] - since)
        return longest

    def first_queued(self) -> float | None:
        """When a pgbench session was first seen waiting on a lock (epoch seconds)."""
        return next((at for at, waiting in self.samples if waiting), None)

    def peak_queued(self) -> int:
        """Most pgbench sessions seen waiting on a lock at once."""
        return max((w for _, w in self.samples), default=0)


# --- one scenario -----------------------------------------------------------------------------


@dataclass(slots=True)
class Timeline:
    """When things happened, in epoch seconds."""

    pgbench_start: float = 0.0
    block_start: float = 0.0
    migration_start: float = 0.0
    block_end: float = 0.0
    hmig_exit: float | None = None


@dataclass(slots=True)
class Result:
    """What one scenario measured."""

    scenario: Scenario
    database: str = ""
    timeline: Timeline = field(default_factory=Timeline)
    progress: list[Progress] = field(default_factory=list)
    zero_tps_seconds: int = 0
    longest_stall_ms: float = 0.0
    stall_from_s: float = 0.0  # start of the longest stall, relative to the blocker's start
    worst_latency_ms: float = 0.0
    worst_at_s: float = 0.0  # completion of the slowest transaction, relative to blocker start
    baseline_worst_ms: float = 0.0  # worst latency before the blocker opened
    transactions: int = 0
    failed_transactions: int = 0
    mean_tps: float = 0.0
    before_tps: float = 0.0
    during_tps: float = 0.0
    landed: bool = False
    landed_after_s: float | None = None  # relative to the blocker's end
    hmig_exit_code: int | None = None
    hmig_outcome: str = ""
    retries: int | None = None
    retry_example: str = ""
    peak_queued: int = 0
    first_queued_s: float | None = None  # first pgbench session on a lock, from blocker start
    longest_queued_ms: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def write_files(root: Path, settings: Settings) -> tuple[Path, Path]:
    """The migration folder, the manifest (one environment per scenario) and the pgbench script."""
    migrations = root / "migrations"
    migrations.mkdir(parents=True)
    (migrations / f"{MIGRATION_NAME}.sql").write_text(MIGRATION_SQL, encoding="utf-8")
    manifest = root / "hmig.yml"
    manifest.write_text(
        "version: 1\n"
        "migrations:\n"
        "  dir: migrations\n"
        "default_environment: naive\n"
        "environments:\n"
        "  naive:\n"
        f"    database: {{url_env: {URL_ENV}}}\n"
        "    lock_timeout: 0\n"
        "  hmig:\n"
        f"    database: {{url_env: {URL_ENV}}}\n"
        f"    lock_timeout: {settings.lock_timeout}\n",
        encoding="utf-8",
    )
    script = root / "hot.sql"
    script.write_text(
        f"\\set id random(1, {settings.rows})\n"
        "SELECT abalance FROM hot WHERE id = :id;\n"
        "UPDATE hot SET abalance = abalance + 1 WHERE id = :id;\n",
        encoding="utf-8",
    )
    return manifest, script


def sleep_until(deadline: float) -> None:
    """Sleep until the epoch time `deadline` (no-op when it has passed)."""
    remaining = deadline - time.time()
    if remaining > 0:
        time.sleep(remaining)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM our child (hmig rolls back and exits 130), then SIGKILL after `grace_s`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


def run_scenario(
    scenario: Scenario, settings: Settings, server: Server, root: Path, manifest: Path, script: Path
) -> Result:
    """Load, block, migrate, measure; the scenario's database is dropped before returning."""
    result = Result(scenario)
    work = root / scenario.key
    work.mkdir()
    name = server.create(settings.rows)
    result.database = name
    url = database_url(settings.dsn, name)
    server.checkpoint()
    monitor = Monitor(url)
    pgbench: subprocess.Popen[bytes] | None = None
    hmig: subprocess.Popen[bytes] | None = None
    blocker: psycopg.Connection[tuple[Any, ...]] | None = None
    t = result.timeline
    duration = round(settings.warmup_s + settings.hold_s + settings.tail_s)
    try:
        monitor.start()
        monitor.ready.wait(15)
        t.pgbench_start = time.time()
        pgbench = subprocess.Popen(
            [
                settings.pgbench,
                "-n",
                "-f",
                str(script),
                "-c",
                str(settings.clients),
                "-j",
                str(settings.jobs),
                "-T",
                str(duration),
                "-P",
                "1",
                "--log",
                f"--log-prefix={work / 'tx'}",
                url,
            ],
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=(work / "pgbench.out").open("wb"),
            stderr=subprocess.PIPE,
            cwd=work,
        )
        assert pgbench.stderr is not None
        reader = ProgressReader(pgbench.stderr)
        reader.start()
        if not reader.first.wait(15):
            raise BenchError("pgbench printed no progress within 15 s: " + " | ".join(reader.other))
        # The first progress line arrives about 1 s into the load; open the blocker at `warmup`.
        sleep_until(reader.progress[0].at + settings.warmup_s - 1.0)

        blocker = psycopg.connect(
            url,
            connect_timeout=10,
            application_name="hmig-bench-blocker",
            # If this script dies without cleaning up, the server ends the blocker by itself.
            options=f"-c idle_in_transaction_session_timeout={int(settings.hold_s * 1000) + 30000}"
            " -c statement_timeout=10000",
        )
        blocker.execute("SELECT count(*) FROM hot").fetchone()
        t.block_start = time.time()

        sleep_until(t.block_start + settings.lead_s)
        t.migration_start = time.time()
        hmig = subprocess.Popen(
            [
                settings.hmig,
                "--manifest",
                str(manifest),
                "--env",
                scenario.environment,
                "--json",
                "apply",
            ],
            env=child_env({URL_ENV: url}),
            stdin=subprocess.DEVNULL,
            stdout=(work / "hmig.json").open("wb"),
            stderr=(work / "hmig.err").open("wb"),
            cwd=root,
        )

        sleep_until(t.block_start + settings.hold_s)
        blocker.commit()
        t.block_end = time.time()
        blocker.close()
        blocker = None

        try:
            pgbench.wait(timeout=duration + 30)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(
                f"pgbench still running {duration + 30} s after -T {duration}"
            ) from exc
        reader.join(10)
        # hmig's retries back off up to lock_retry.max_delay (5 s): give it time to land.
        try:
            hmig.wait(timeout=max(5.0, t.block_end + 20.0 - time.time()))
            t.hmig_exit = time.time()
        except subprocess.TimeoutExpired:
            result.notes.append("hmig still running 20 s after the blocker ended: stopped")
            stop_process(hmig)
        result.progress = reader.progress
        if pgbench.returncode != 0:
            raise BenchError(
                f"pgbench exit code {pgbench.returncode}: " + " | ".join(reader.other[-10:])
            )
    finally:
        monitor.stop.set()
        if blocker is not None:
            blocker.close()  # an open transaction is rolled back
        for proc in (hmig, pgbench):
            if proc is not None:
                stop_process(proc)
        monitor.join(5)
    analyse(result, settings, work, monitor, landed=server.has_column_c(name))
    server.drop(name)
    return result


def analyse(
    result: Result, settings: Settings, work: Path, monitor: Monitor, *, landed: bool
) -> None:
    """Fill `result` from pgbench's progress and log, hmig's report and the monitor's samples."""
    t = result.timeline
    result.zero_tps_seconds = sum(1 for p in result.progress if p.tps == 0.0)
    out = (work / "pgbench.out").read_text(encoding="utf-8", errors="replace")
    final = FINAL_TPS_RE.search(out)

    completions: list[float] = []
    worst = (0.0, 0.0)  # (latency ms, completed at)
    baseline_worst = 0.0
    for path in sorted(work.glob("tx.*")):
        with path.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                parts = line.split()
                if len(parts) < 6:
                    continue
                if not parts[2].isdigit():  # "failed" / "skipped"
                    result.failed_transactions += 1
                    continue
                done_at = int(parts[4]) + int(parts[5]) / 1e6
                latency_ms = int(parts[2]) / 1000
                completions.append(done_at)
                if latency_ms > worst[0]:
                    worst = (latency_ms, done_at)
                if t.pgbench_start + 1.0 <= done_at < t.block_start:
                    baseline_worst = max(baseline_worst, latency_ms)
    if not completions:
        raise BenchError("pgbench logged no transactions")
    completions.sort()
    result.transactions = len(completions)
    result.worst_latency_ms, result.worst_at_s = worst[0], worst[1] - t.block_start
    result.baseline_worst_ms = baseline_worst
    gap, gap_from = 0.0, completions[0]
    for before, after in itertools.pairwise(completions):
        if after - before > gap:
            gap, gap_from = after - before, before
    result.longest_stall_ms, result.stall_from_s = gap * 1000, gap_from - t.block_start
    span = completions[-1] - completions[0]
    result.mean_tps = float(final.group(1)) if final else len(completions) / max(span, 1e-9)

    def rate(start: float, end: float) -> float:
        inside = sum(1 for c in completions if start <= c < end)
        return inside / (end - start) if end > start else 0.0

    result.before_tps = rate(max(t.pgbench_start + 1.0, completions[0]), t.block_start)
    result.during_tps = rate(t.migration_start, t.block_end)

    report: dict[str, Any] = {}
    try:
        report = json.loads((work / "hmig.json").read_text(encoding="utf-8") or "{}")
    except ValueError:
        result.notes.append("hmig printed no JSON report")
    result.hmig_exit_code = report.get("exit_code")
    result.hmig_outcome = str(report.get("outcome", "?"))
    ran = [r for r in report.get("ran", []) if r.get("name") == MIGRATION_NAME]
    result.retries = int(ran[0].get("retries", 0)) if ran else None
    errors = (work / "hmig.err").read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(errors):
        if line.lstrip().startswith("↻"):
            held = errors[i + 1].strip() if i + 1 < len(errors) else ""
            result.retry_example = f"{line.strip()} / {held}"
            break
    result.landed = landed and result.hmig_exit_code == 0
    if monitor.error:
        result.notes.append(f"monitor: {monitor.error}")
    landed_at = monitor.landed_at or t.hmig_exit
    if result.landed and landed_at is not None:
        result.landed_after_s = landed_at - t.block_end
    if not result.landed:
        failure = report.get("failure") or report.get("error") or {}
        result.notes.append(
            f"hmig exit {result.hmig_exit_code}, outcome {result.hmig_outcome}: "
            f"{failure.get('message', '') if isinstance(failure, dict) else failure}".rstrip(": ")
        )
    result.peak_queued = monitor.peak_queued()
    first_queued = monitor.first_queued()
    if first_queued is not None:
        result.first_queued_s = first_queued - t.block_start
    result.longest_queued_ms = monitor.longest_queued_s() * 1000
    if result.failed_transactions:
        result.notes.append(f"{result.failed_transactions} pgbench transactions failed")


# --- report -----------------------------------------------------------------------------------


def tps_strip(result: Result) -> str:
    """Per-second tps from pgbench -P, with the blocker (B..E) and the landing (L) marked."""
    t = result.timeline
    cells = []
    for p in result.progress:
        start = p.at - 1.0
        marks = ""
        for label, at in (("B", t.block_start), ("M", t.migration_start), ("E", t.block_end)):
            if start <= at < p.at:
                marks += label
        landed_at = (
            t.block_end + result.landed_after_s if result.landed_after_s is not None else None
        )
        if landed_at is not None and start <= landed_at < p.at:
            marks += "L"
        value = f"{p.tps / 1000:.1f}k" if p.tps >= 1000 else f"{p.tps:.0f}"
        cells.append(f"{value}{'[' + marks + ']' if marks else ''}")
    return " ".join(cells)


def report(results: Sequence[Result], settings: Settings) -> list[str]:
    """The printed table, the per-second strips, and the target verdicts."""
    head = (
        f"{'scenario':<34} {'0-tps s':>7} {'stall ms':>9} {'worst ms':>9} {'mean tps':>9} "
        f"{'tps while blocked':>17} {'retries':>7}  landed"
    )
    lines = [head, "-" * (len(head) + 24)]
    for r in results:
        if r.error:
            lines.append(f"{r.scenario.label:<34} ERROR: {r.error}")
            continue
        kept = (
            f"{r.during_tps:>7.0f} ({r.during_tps / r.before_tps:>4.0%})" if r.before_tps else "?"
        )
        landed = (
            f"yes, {r.landed_after_s:+.2f} s after blocker end"
            if r.landed and r.landed_after_s is not None
            else ("yes" if r.landed else "NO")
        )
        lines.append(
            f"{r.scenario.label:<34} {r.zero_tps_seconds:>7} {r.longest_stall_ms:>9.0f} "
            f"{r.worst_latency_ms:>9.1f} {r.mean_tps:>9.0f} {kept:>17} "
            f"{'-' if r.retries is None else r.retries:>7}  {landed}"
        )
    lines += [
        "0-tps s: pgbench -P 1 intervals at 0 tps. stall ms: longest gap between two completed",
        "transactions (per-transaction log). worst ms: slowest transaction. tps while blocked:",
        "from the migration's start to the blocker's end, (share of the tps before the blocker).",
        "",
    ]
    for r in results:
        if r.error:
            continue
        lines.append(f"{r.scenario.label}:")
        lines.append(f"  tps/s: {tps_strip(r)}")
        lines.append(
            "         [B] blocker opened, [M] migration started, [E] blocker committed, "
            "[L] column c visible"
        )
        lines.append(
            f"  {r.transactions} transactions; worst latency at {r.worst_at_s:+.2f} s from "
            f"blocker start; longest stall from {r.stall_from_s:+.2f} s; worst before the "
            f"blocker {r.baseline_worst_ms:.1f} ms (noise floor); tps before {r.before_tps:.0f}"
        )
        first_queued = (
            f", the first at {r.first_queued_s:+.2f} s from blocker start"
            if r.first_queued_s is not None
            else ""
        )
        lines.append(
            f"  pg_stat_activity every {MONITOR_INTERVAL_S * 1000:.0f} ms: up to {r.peak_queued} "
            f"pgbench sessions waiting on a lock{first_queued}, at most "
            f"{r.longest_queued_ms:.0f} ms in a row"
        )
        lines.append(f"  hmig: exit {r.hmig_exit_code}, outcome {r.hmig_outcome}")
        if r.retry_example:
            lines.append(f"  first retry logged: {r.retry_example}")
        lines += [f"  note: {n}" for n in r.notes]
    lines.append("")
    target_ms = settings.lock_timeout_ms + LATENCY_SLACK_MS
    lines.append(
        f"Target (issue 8), hmig with lock_timeout {settings.lock_timeout}: 0 seconds at 0 tps, "
        f"worst latency <= {target_ms:g} ms (lock_timeout + {LATENCY_SLACK_MS:g} ms)."
    )
    safe = next((r for r in results if r.scenario.key == "hmig"), None)
    if safe is None or safe.error:
        lines.append("  hmig scenario not measured: n/a")
    else:
        zero_ok = safe.zero_tps_seconds == 0
        lat_ok = safe.worst_latency_ms <= target_ms
        checks = (
            ("seconds at 0 tps", f"{safe.zero_tps_seconds} s", "0 s", zero_ok),
            ("worst latency", f"{safe.worst_latency_ms:.1f} ms", f"<= {target_ms:g} ms", lat_ok),
            ("migration landed", "yes" if safe.landed else "no", "yes", safe.landed),
        )
        for label, value, target, ok in checks:
            lines.append(
                f"  {label + ':':<18} {value:<10} target {target:<11} {'PASS' if ok else 'MISS'}"
            )
        if not lat_ok and safe.baseline_worst_ms > target_ms:
            lines.append(
                "  (the load alone, before the blocker, already reached "
                f"{safe.baseline_worst_ms:.1f} ms: the machine is noisy)"
            )
    naive = next((r for r in results if r.scenario.key == "naive"), None)
    if naive is not None and not naive.error:
        queued = naive.first_queued_s
        expected = settings.hold_s - (queued if queued is not None else settings.lead_s)
        since = "the ALTER queued" if queued is not None else "the migration started"
        lines.append(
            f"Reference, naive: the table should stall from when {since} to the blocker's end, "
            f"about {expected:.2f} s; measured {naive.longest_stall_ms / 1000:.2f} s, "
            f"{naive.zero_tps_seconds} s at 0 tps."
        )
    return lines


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dsn", default=DEFAULT_DSN, help=f"admin URL (default {DEFAULT_DSN})")
    parser.add_argument(
        "--hold", type=float, default=8.0, help="seconds the blocker stays open (default 8)"
    )
    parser.add_argument(
        "--lead", type=float, default=1.0, help="seconds from blocker to migration (default 1)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of load before the blocker (default 2)"
    )
    parser.add_argument(
        "--tail",
        type=float,
        default=6.0,
        help="seconds of load after the blocker ends (default 6; hmig's backoff can reach 5 s)",
    )
    parser.add_argument("--clients", type=int, default=4, help="pgbench -c (default 4)")
    parser.add_argument("--jobs", type=int, default=2, help="pgbench -j (default 2)")
    parser.add_argument("--rows", type=int, default=100_000, help="rows in hot (default 100000)")
    parser.add_argument(
        "--lock-timeout", default="100ms", help="hmig scenario's lock_timeout (default 100ms)"
    )
    parser.add_argument(
        "--only", default="naive,hmig", metavar="KEYS", help="scenarios: naive,hmig (default both)"
    )
    parser.add_argument("--hmig", default=None, metavar="PATH", help="hmig executable")
    parser.add_argument("--pgbench", default=None, metavar="PATH", help="pgbench executable")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (pgbench logs)")
    args = parser.parse_args(argv)
    if args.warmup < 1.0 or not 0 <= args.lead < args.hold:
        parser.error("need --warmup >= 1 and 0 <= --lead < --hold")
    if args.warmup + args.hold + args.tail > 50:
        parser.error("--warmup + --hold + --tail must stay under 50 s (the run is bounded)")
    parse_duration_ms(args.lock_timeout)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios; exit 1 when one could not be measured (a MISS is not an error)."""
    args = parse_args(argv)
    check_loopback(args.dsn)
    signal.signal(signal.SIGTERM, terminate)
    settings = Settings(
        dsn=args.dsn,
        hold_s=args.hold,
        lead_s=args.lead,
        warmup_s=args.warmup,
        tail_s=args.tail,
        clients=args.clients,
        jobs=args.jobs,
        rows=args.rows,
        lock_timeout=args.lock_timeout.strip(),
        lock_timeout_ms=parse_duration_ms(args.lock_timeout),
        hmig=find_hmig(args.hmig),
        pgbench=find_pgbench(args.pgbench),
        keep=args.keep,
    )
    scenarios = {
        "naive": Scenario("naive", "naive (lock_timeout: 0)", "naive", 0),
        "hmig": Scenario(
            "hmig",
            f"hmig (lock_timeout: {settings.lock_timeout}, retry)",
            "hmig",
            settings.lock_timeout_ms,
        ),
    }
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    if not keys or set(keys) - set(scenarios):
        raise SystemExit(f"--only takes a subset of {sorted(scenarios)}")
    server = Server(settings.dsn)
    root = Path(tempfile.mkdtemp(prefix="hmig-lock-bench-"))
    started = time.time()
    results: list[Result] = []
    try:
        manifest, script = write_files(root, settings)
        print("hmig lock-safety benchmark (issue 8)")
        print(f"  server:   {server.version()}")
        print(f"  pgbench:  {first_line([settings.pgbench, '--version'])} ({settings.pgbench})")
        print(f"  hmig:     {first_line([settings.hmig, '--version'])} ({settings.hmig})")
        print(
            f"  load:     -c {settings.clients} -j {settings.jobs}, point SELECT + UPDATE on hot "
            f"({settings.rows} rows); {settings.warmup_s:g} s warm-up, blocker open "
            f"{settings.hold_s:g} s, migration {settings.lead_s:g} s after it, "
            f"{settings.tail_s:g} s after it ends"
        )
        print("  migration: ALTER TABLE hot ADD COLUMN c int")
        print(f"  machine:  {os.cpu_count()} CPUs; files in {root}{' (kept)' if args.keep else ''}")
        print(
            f"  load avg: {load_average()} (1/5/15 min) before; "
            f"{server.others_active()} other active sessions on the server"
        )
        print()
        for key in keys:
            scenario = scenarios[key]
            print(f"  running {scenario.label} ...", end="", flush=True)
            try:
                result = run_scenario(scenario, settings, server, root, manifest, script)
            except (BenchError, psycopg.Error, OSError) as exc:
                result = Result(scenario, error=str(exc).strip().splitlines()[0])
            results.append(result)
            print(" ERROR" if result.error else " done", flush=True)
        print(
            f"  load avg: {load_average()} (1/5/15 min) after; "
            f"{server.others_active()} other active sessions on the server; "
            f"{time.time() - started:.0f} s in all"
        )
        print()
        for text in report(results, settings):
            print(text)
        return 1 if any(r.error for r in results) else 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        server.drop_all()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
