"""Benchmark `hmig apply` against psql (the floor), node-pg-migrate 9.0.0 and dbmate.

Generates N identical SQL migrations, then, for each contender, creates a fresh database on
the same server, runs the contender's command as a user would (timing the wall clock of the
whole process, start-up included), checks that the work was really done, and drops the
database. Each contender runs `--repeat` times, round-robin, and the median and minimum are
reported, with the ratios hmig is judged by. See bench/README.md.

    /work/main/.venv/bin/python bench/run.py [--count 500] [--repeat 3] [--dsn URL] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from _common import (
    DEFAULT_DSN,
    NOISY,
    NPM_BIN,
    URL_ENV,
    BenchError,
    child_env,
    children_cpu,
    database_url,
    dbmate_binary,
    first_line,
    freeze_hmig,
    hmig_command,
    load_average,
    npm_install,
    positive,
    terminate,
)
from psycopg import sql

NPM_VERSION = "9.0.0"  # bench/package.json pins it, with dbmate
TARGET_FLOOR_RATIO = 1.3  # each hmig mode at most 1.3x its psql floor
DB_PREFIX = "hmig_bench_"
DBMATE_TABLE = "schema_migrations"  # dbmate's history table (one row per version)


# --- workload ---------------------------------------------------------------------------------


def migration_sql(i: int) -> str:
    """The SQL of migration number `i`: one table and one index."""
    return (
        f"CREATE TABLE t_{i} (id bigint PRIMARY KEY, name text NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now());\n"
        f"CREATE INDEX t_{i}_name_idx ON t_{i} (name);\n"
    )


@dataclass(frozen=True, slots=True)
class Workload:
    """The generated files every contender runs."""

    root: Path
    count: int

    @property
    def migrations(self) -> Path:
        """The migrations folder (hmig `migrations.dir`, node-pg-migrate `-m`)."""
        return self.root / "migrations"

    @property
    def all_sql(self) -> Path:
        """Every migration concatenated, for `psql -1`."""
        return self.root / "all.sql"

    @property
    def each_sql(self) -> Path:
        """Every migration wrapped in its own BEGIN; ... COMMIT;, for one psql session."""
        return self.root / "each.sql"

    @property
    def manifest(self) -> Path:
        """The hmig.yml with one environment per transaction mode."""
        return self.root / "hmig.yml"

    @property
    def dbmate_migrations(self) -> Path:
        """dbmate's default layout: the same SQL under `-- migrate:up` markers."""
        return self.root / "db/migrations"


def generate(root: Path, count: int) -> Workload:
    """Write the N migration files, the two psql scripts and the hmig manifest under `root`."""
    work = Workload(root=root, count=count)
    work.migrations.mkdir(parents=True)
    work.dbmate_migrations.mkdir(parents=True)
    all_parts: list[str] = []
    each_parts: list[str] = []
    for i in range(1, count + 1):
        text = migration_sql(i)
        name = f"{i:05d}_table_{i}.sql"
        (work.migrations / name).write_text(text, encoding="utf-8")
        # dbmate runs the `-- migrate:up` section in a transaction of its own (its default).
        dbmate = f"-- migrate:up\n{text}\n-- migrate:down\n"
        (work.dbmate_migrations / name).write_text(dbmate, encoding="utf-8")
        all_parts.append(text)
        each_parts.append(f"BEGIN;\n{text}COMMIT;\n")
    work.all_sql.write_text("".join(all_parts), encoding="utf-8")
    work.each_sql.write_text("".join(each_parts), encoding="utf-8")
    work.manifest.write_text(
        "version: 1\n"
        "migrations:\n"
        "  dir: migrations\n"
        "default_environment: bench_per_migration\n"
        "environments:\n"
        "  bench_per_migration:\n"
        f"    database: {{url_env: {URL_ENV}}}\n"
        "  bench_all:\n"
        f"    database: {{url_env: {URL_ENV}}}\n"
        "    transaction: all\n",
        encoding="utf-8",
    )
    return work


# --- contenders -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tools:
    """The executables the contenders run."""

    psql: str
    hmig: list[str]  # argv prefix
    hmig_env: dict[str, str]  # extra environment (PYTHONPATH of a frozen copy)
    node: str | None
    npm_bin: Path | None
    npm_skip_reason: str | None = None
    dbmate: Path | None = None


@dataclass(frozen=True, slots=True)
class Contender:
    """One way of applying the workload."""

    key: str
    label: str
    history: str | None  # the table it writes N rows to: pgmigrations, schema_migrations
    command: Callable[[Workload, str], tuple[list[str], dict[str, str]]]


def _base_env() -> dict[str, str]:
    return child_env()


def dbmate_url(url: str) -> str:
    """`url` with `sslmode=disable`: dbmate's driver (lib/pq) otherwise requires TLS."""
    return f"{url}{'&' if '?' in url else '?'}sslmode=disable"


def contenders(tools: Tools) -> list[Contender]:
    """Every contender, floors first."""
    psql = [tools.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1"]

    def psql_all(work: Workload, url: str) -> tuple[list[str], dict[str, str]]:
        return [*psql, "-1", "-f", str(work.all_sql), "-d", url], _base_env()

    def psql_each(work: Workload, url: str) -> tuple[list[str], dict[str, str]]:
        return [*psql, "-f", str(work.each_sql), "-d", url], _base_env()

    def hmig(env_name: str) -> Callable[[Workload, str], tuple[list[str], dict[str, str]]]:
        def command(work: Workload, url: str) -> tuple[list[str], dict[str, str]]:
            argv = [*tools.hmig, "apply", "--manifest", str(work.manifest), "--env", env_name]
            return argv, {**_base_env(), **tools.hmig_env, URL_ENV: url}

        return command

    def npm(single: bool) -> Callable[[Workload, str], tuple[list[str], dict[str, str]]]:
        def command(work: Workload, url: str) -> tuple[list[str], dict[str, str]]:
            assert tools.node is not None and tools.npm_bin is not None
            argv = [tools.node, str(tools.npm_bin), "up", "-m", str(work.migrations)]
            if not single:
                argv.append("--no-single-transaction")
            return argv, {**_base_env(), "DATABASE_URL": url}

        return command

    def dbmate(work: Workload, url: str) -> tuple[list[str], dict[str, str]]:
        assert tools.dbmate is not None
        argv = [
            str(tools.dbmate),
            "--url",
            dbmate_url(url),
            "--migrations-dir",
            str(work.dbmate_migrations),
            "--no-dump-schema",
            "migrate",
        ]
        return argv, _base_env()

    history = "pgmigrations"
    found = [
        Contender("psql_1", "psql -1 (one transaction)", None, psql_all),
        Contender("psql_each", "psql, BEGIN/COMMIT per file", None, psql_each),
        Contender("hmig_all", "hmig apply, transaction: all", history, hmig("bench_all")),
        Contender("hmig_per", "hmig apply, per-migration", history, hmig("bench_per_migration")),
    ]
    if tools.npm_bin is not None:
        found += [
            Contender(
                "npm_single", "node-pg-migrate up (default: single tx)", history, npm(single=True)
            ),
            Contender(
                "npm_each",
                "node-pg-migrate up --no-single-transaction",
                history,
                npm(single=False),
            ),
        ]
    if tools.dbmate is not None:
        found.append(
            Contender("dbmate", "dbmate migrate (a transaction per file)", DBMATE_TABLE, dbmate)
        )
    return found


# --- tools ------------------------------------------------------------------------------------


def find_tools(hmig_override: str | None, frozen: Path | None) -> Tools:
    """Locate psql, hmig, node, and node-pg-migrate 9.0.0 and dbmate from bench/node_modules.

    The npm packages are installed from bench/package-lock.json (`npm ci --prefix bench`) when
    they are missing; without node or npm their contenders are skipped.
    """
    psql = shutil.which("psql")
    if psql is None:
        raise SystemExit("psql not found on PATH")
    hmig, hmig_env = hmig_command(hmig_override, frozen)
    problem = npm_install(always=False)
    dbmate = dbmate_binary()
    node = shutil.which("node")
    if node is None:
        return Tools(psql, hmig, hmig_env, None, None, "node not found on PATH", dbmate)
    if problem is not None or _package_version(NPM_BIN) != NPM_VERSION:
        reason = problem or f"node-pg-migrate {NPM_VERSION} not in {NPM_BIN}"
        return Tools(psql, hmig, hmig_env, node, None, reason, dbmate)
    return Tools(psql, hmig, hmig_env, node, NPM_BIN, None, dbmate)


def _package_version(bin_path: Path) -> str | None:
    package = bin_path.parent.parent / "package.json"
    try:
        return str(json.loads(package.read_text(encoding="utf-8")).get("version"))
    except (OSError, ValueError):
        return None


def _version(argv: Sequence[str], extra_env: dict[str, str] | None = None) -> str:
    return first_line(argv, {**os.environ, **(extra_env or {})})


# --- databases --------------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    """The admin connection: creates, checks and drops the per-run databases."""

    dsn: str
    created: set[str] = field(default_factory=set)

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)

    def version(self) -> str:
        with self._admin() as conn:
            row = conn.execute("SELECT pg_catalog.version()").fetchone()
        return str(row[0]) if row else "?"

    def create(self) -> str:
        name = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        # Recorded first: an interruption while CREATE DATABASE runs may still leave it behind,
        # and drop_all's DROP DATABASE IF EXISTS is harmless when it did not.
        self.created.add(name)
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop(self, name: str) -> None:
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

    @contextmanager
    def fresh(self) -> Iterator[str]:
        name = self.create()
        try:
            yield name
        finally:
            self.drop(name)

    def checkpoint(self) -> None:
        """Flush dirty buffers so one run's writes are not paid for by the next (best effort)."""
        try:
            with self._admin() as conn:
                conn.execute("CHECKPOINT")
        except psycopg.Error:
            pass  # not superuser (PG15) / no pg_checkpoint (PG16+): skip

    def verify(self, name: str, count: int, *, history: str | None) -> None:
        """Raise `BenchError` unless the run made N tables, N indexes (and N `history` rows)."""
        with psycopg.connect(
            database_url(self.dsn, name), autocommit=True, connect_timeout=10
        ) as conn:
            tables = _scalar(
                conn,
                "SELECT count(*) FROM pg_catalog.pg_tables "
                "WHERE schemaname = 'public' AND tablename LIKE 't\\_%'",
            )
            indexes = _scalar(
                conn,
                "SELECT count(*) FROM pg_catalog.pg_indexes "
                "WHERE schemaname = 'public' AND indexname LIKE 't\\_%\\_name\\_idx'",
            )
            problems = []
            if tables != count:
                problems.append(f"{tables} t_% tables, expected {count}")
            if indexes != count:
                problems.append(f"{indexes} t_%_name_idx indexes, expected {count}")
            if history:
                rows = _history_rows(conn, history)
                if rows != count:
                    problems.append(f"{rows} rows in {history}, expected {count}")
        if problems:
            raise BenchError("; ".join(problems))


def _scalar(conn: psycopg.Connection[tuple[object, ...]], query: str) -> int:
    row = conn.execute(query.encode("utf-8")).fetchone()
    assert row is not None
    return int(str(row[0]))


def _history_rows(conn: psycopg.Connection[tuple[object, ...]], table: str) -> int:
    """Rows in `public.<table>`, 0 when it does not exist."""
    exists = conn.execute(
        "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public' AND tablename = %s",
        (table,),
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(table))
    ).fetchone()
    return int(str(row[0])) if row else 0


# --- running ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What one contender did over all repeats."""

    contender: Contender
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the command's user+sys CPU seconds
    error: str | None = None

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu and not self.error else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds and not self.error else None

    @property
    def minimum(self) -> float | None:
        return min(self.seconds) if self.seconds and not self.error else None


@dataclass(frozen=True, slots=True)
class Timing:
    """One run: wall clock, and the CPU the command itself used (its children included)."""

    wall: float
    cpu: float


def run_once(contender: Contender, work: Workload, server: Server, timeout_s: float) -> Timing:
    """Time one run on a fresh database; raise `BenchError` if it failed or did not do the work.

    The CPU figure is the growth of RUSAGE_CHILDREN across the run: only the timed command is
    a child process that ends in that window (database set-up and checks run in-process).
    """
    with server.fresh() as name:
        argv, env = contender.command(work, database_url(server.dsn, name))
        server.checkpoint()
        cpu_before = children_cpu()
        started = time.perf_counter()
        try:
            done = subprocess.run(
                argv,
                env=env,
                cwd=work.root,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"timed out after {timeout_s:.0f}s") from exc
        except OSError as exc:
            raise BenchError(f"cannot start {argv[0]}: {exc}") from exc
        elapsed = time.perf_counter() - started
        cpu = children_cpu() - cpu_before
        if done.returncode != 0:
            tail = (done.stderr or done.stdout or b"").decode("utf-8", "replace")[-3000:]
            raise BenchError(f"exit code {done.returncode}:\n{tail.rstrip()}")
        server.verify(name, work.count, history=contender.history)
    return Timing(wall=elapsed, cpu=cpu)


def run_all(
    chosen: Sequence[Contender],
    work: Workload,
    server: Server,
    *,
    repeat: int,
    warmup: int,
    timeout_s: float,
) -> list[Outcome]:
    """Round-robin over the contenders, rotating the order each round so none always goes first.

    The `warmup` rounds run and verify everything but are not timed into the figures: they fill
    the OS page cache and the server's catalog caches for every contender alike.
    """
    outcomes = {c.key: Outcome(c) for c in chosen}
    for round_no in range(warmup):
        for contender in chosen:
            outcome = outcomes[contender.key]
            if outcome.error:
                continue
            print(f"  warm-up {round_no + 1}/{warmup}: {contender.label} ...", end="", flush=True)
            try:
                timing = run_once(contender, work, server, timeout_s)
            except BenchError as exc:
                outcome.error = str(exc)
                print(" ERROR", flush=True)
                continue
            print(f" {timing.wall:.3f}s (not counted)", flush=True)
    for round_no in range(repeat):
        shift = round_no % len(chosen)
        for contender in [*chosen[shift:], *chosen[:shift]]:
            outcome = outcomes[contender.key]
            if outcome.error:
                continue
            print(f"  round {round_no + 1}/{repeat}: {contender.label} ...", end="", flush=True)
            try:
                timing = run_once(contender, work, server, timeout_s)
            except BenchError as exc:
                outcome.error = str(exc)
                print(" ERROR", flush=True)
                continue
            outcome.seconds.append(timing.wall)
            outcome.cpu.append(timing.cpu)
            print(f" {timing.wall:.3f}s (client CPU {timing.cpu:.3f}s)", flush=True)
    return [outcomes[c.key] for c in chosen]


# --- report -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ratio:
    """hmig over a reference, with the target it is judged by."""

    label: str
    numerator: str
    denominator: str
    target: float
    comparison: str  # "<=" or "<"
    context: str = ""  # why it is shown but not judged; empty for a target


RATIOS = (
    Ratio("hmig all / psql -1", "hmig_all", "psql_1", TARGET_FLOOR_RATIO, "<="),
    Ratio(
        "hmig per-migration / psql BEGIN-COMMIT per file",
        "hmig_per",
        "psql_each",
        TARGET_FLOOR_RATIO,
        "<=",
    ),
    Ratio(
        "hmig per-migration / node-pg-migrate single tx (the defaults)",
        "hmig_per",
        "npm_single",
        1.0,
        "<",
        context="each tool in its default mode, so a commit per migration against one for all",
    ),
    Ratio("hmig per-migration / node-pg-migrate --no-single-tx", "hmig_per", "npm_each", 1.0, "<"),
    Ratio(
        "hmig all / node-pg-migrate single tx (like for like)", "hmig_all", "npm_single", 1.0, "<"
    ),
    Ratio("hmig per-migration / dbmate (like for like)", "hmig_per", "dbmate", 1.0, "<"),
    Ratio(
        "hmig all / dbmate (no one-transaction mode)",
        "hmig_all",
        "dbmate",
        1.0,
        "<",
        context="dbmate has no one-transaction mode",
    ),
)


def report(outcomes: Sequence[Outcome], count: int) -> list[str]:
    """The printed table: timings, then the ratios with PASS/MISS."""
    lines = [
        f"{'contender':<46} {'median s':>9} {'min s':>9} {'max/min':>7} {'ms/migr':>8} "
        f"{'client CPU s':>13}  runs",
        "-" * 102,
    ]
    by_key = {o.contender.key: o for o in outcomes}
    for o in outcomes:
        if o.error:
            lines.append(f"{o.contender.label:<46} {'ERROR':>9}  runs: {len(o.seconds)}")
            continue
        assert o.median is not None and o.minimum is not None and o.cpu_median is not None
        per = o.median / count * 1000
        spread = max(o.seconds) / o.minimum
        lines.append(
            f"{o.contender.label:<46} {o.median:>9.3f} {o.minimum:>9.3f} {spread:>7.2f} "
            f"{per:>8.2f} {o.cpu_median:>13.3f}  {len(o.seconds)}"
        )
    lines.append(
        "ms/migr = median / N. client CPU = median user+sys CPU of the command's own processes "
        "(not the server's)."
    )
    noisy = [
        o.contender.label
        for o in outcomes
        if not o.error and max(o.seconds) > NOISY * min(o.seconds)
    ]
    if noisy:
        lines.append(
            f"WARNING: runs of the same command differ by more than {NOISY:g}x "
            f"({', '.join(noisy)}): the machine or server is busy, the ratios below are "
            "unreliable. Re-run on a quiet machine or with more --repeat."
        )
    width = max(len(ratio.label) for ratio in RATIOS) + 2
    lines += [
        "",
        f"Targets: each hmig mode <= {TARGET_FLOOR_RATIO}x its psql floor, and faster than "
        "node-pg-migrate and dbmate in the same mode (ratio < 1).",
        "PASS/MISS is judged on the ratio of medians; the ratio of minimums is shown because "
        "interference from",
        "other load on the machine only ever adds time.",
        f"{'ratio':<{width}} {'median':>7} {'target':>7}  verdict  {'min':>5}  "
        "extra ms/migr (median)",
        "-" * (width + 47),
    ]
    for ratio in RATIOS:
        top, bottom = by_key.get(ratio.numerator), by_key.get(ratio.denominator)
        label = ratio.label + (" *" if ratio.context else "")
        target = "-" if ratio.context else f"{ratio.comparison}{ratio.target:g}"
        if top is None or bottom is None or top.median is None or bottom.median is None:
            lines.append(f"{label:<{width}} {'n/a':>7} {target:>7}  n/a")
            continue
        assert top.minimum is not None and bottom.minimum is not None
        value = top.median / bottom.median
        ok = value <= ratio.target if ratio.comparison == "<=" else value < ratio.target
        verdict = "-" if ratio.context else "PASS" if ok else "MISS"
        of_mins = top.minimum / bottom.minimum
        extra = (top.median - bottom.median) / count * 1000
        lines.append(
            f"{label:<{width}} {value:>7.2f} {target:>7}  {verdict:<7}  "
            f"{of_mins:>5.2f}  {extra:+.2f}"
        )
    lines += [f"* not a target ({r.context}): {r.label}" for r in RATIOS if r.context]
    errors = [o for o in outcomes if o.error]
    for o in errors:
        lines += ["", f"ERROR {o.contender.label}:", *("  " + x for x in str(o.error).splitlines())]
    return lines


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=positive, default=500, help="migrations (default 500)")
    parser.add_argument("--repeat", type=positive, default=3, help="runs each (default 3)")
    parser.add_argument(
        "--dsn", default=DEFAULT_DSN, help=f"admin URL of the server (default {DEFAULT_DSN})"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds before the timed ones (default 1)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated temp folder")
    parser.add_argument(
        "--only", default=None, metavar="KEYS", help="comma-separated contender keys to run"
    )
    parser.add_argument("--hmig", default=None, metavar="PATH", help="hmig executable")
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="copy the hmig package at start and time that copy (python -m hmig), so edits to "
        "src/ during the run cannot change or break what is measured",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds per run before it is an error"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 when any contender errored (a MISS is not an error)."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminate)
    if args.freeze and args.hmig:
        raise SystemExit("--freeze and --hmig exclude each other")
    server = Server(args.dsn)
    root = Path(tempfile.mkdtemp(prefix="hmig-bench-"))
    try:
        frozen = freeze_hmig(root / "hmig-src") if args.freeze else None
        tools = find_tools(args.hmig, frozen)
        chosen = contenders(tools)
        if args.only:
            keys = {k.strip() for k in args.only.split(",")}
            unknown = keys - {c.key for c in chosen}
            if unknown:
                raise SystemExit(
                    f"unknown contender(s) {sorted(unknown)}; have {[c.key for c in chosen]}"
                )
            chosen = [c for c in chosen if c.key in keys]
        work = generate(root, args.count)
        print(f"hmig benchmark: {args.count} migrations x {args.repeat} runs each")
        print(f"  server:  {server.version()}")
        print(f"  psql:    {_version([tools.psql, '--version'])}")
        shown = f"frozen copy in {frozen}" if frozen else " ".join(tools.hmig)
        print(f"  hmig:    {_version([*tools.hmig, '--version'], tools.hmig_env)} ({shown})")
        if tools.npm_bin is not None and tools.node is not None:
            print(
                f"  node-pg-migrate {_package_version(tools.npm_bin)} on node "
                f"{_version([tools.node, '--version'])} ({tools.npm_bin})"
            )
        else:
            print(f"  node-pg-migrate: skipped ({tools.npm_skip_reason})")
        if tools.dbmate is not None:
            print(f"  dbmate:  {_version([str(tools.dbmate), '--version'])} ({tools.dbmate})")
        else:
            print("  dbmate:  skipped (not in bench/node_modules: npm ci --prefix bench)")
        print(
            f"  python:  {platform.python_version()}; {os.cpu_count()} CPUs; {platform.platform()}"
        )
        print(f"  files:   {root}{' (kept)' if args.keep else ''}")
        print(f"  load:    {load_average()} (1/5/15 min) before the first run")
        print()
        outcomes = run_all(
            chosen,
            work,
            server,
            repeat=args.repeat,
            warmup=max(args.warmup, 0),
            timeout_s=args.timeout,
        )
        print(f"  load:    {load_average()} (1/5/15 min) after the last run")
        print()
        for text in report(outcomes, args.count):
            print(text)
        return 1 if any(o.error for o in outcomes) else 0
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
