"""Values that flow between hmig's layers.

Frozen dataclasses and enums only: no I/O, no behaviour beyond small derived views. Anything
that reads a file, a database or the environment produces these; everything else consumes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path


class Kind(StrEnum):
    """How a migration file is executed."""

    SQL = "sql"
    JS = "js"


class TransactionMode(StrEnum):
    """`transaction:` in an environment: one transaction per migration, or one for all."""

    PER_MIGRATION = "per-migration"
    ALL = "all"


class Outcome(StrEnum):
    """The `outcome` field of the JSON report; the README lists the same set."""

    OK = "ok"
    NOTHING_TO_DO = "nothing-to-do"
    FAILED = "failed"
    DRIFT = "drift"
    REFUSED = "refused"
    ERROR = "error"
    CANCELLED = "cancelled"


# --- manifest ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatabaseSpec:
    """Where an environment's database is. `None` fields mean "not set in the manifest"."""

    url_env: str | None = None
    embedded: bool = False
    embedded_name: str = "hmig"


@dataclass(frozen=True, slots=True)
class LockRetry:
    """`lock_retry:`: how long to keep retrying a migration that lost a lock race."""

    budget_ms: int = 120_000
    initial_delay_ms: int = 200
    max_delay_ms: int = 5_000


@dataclass(frozen=True, slots=True)
class LintPolicy:
    """`lint:`: which findings fail the run, and which rules are never reported."""

    fail_on: str = "never"  # "error" | "warning" | "never"
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BackupPolicy:
    """`backup:` with every default applied; `dir` is absolute."""

    mode: str  # "full" | "schema" | "tables" | "none"
    required: bool
    dir: Path
    format: str = "custom"  # "custom" | "directory"
    jobs: int = 1
    retention_days: int = 30
    retention_keep: int = 5
    verify: str = "list"  # "list" | "restore"
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BackupPlan:
    """What apply will back up before it runs, told to reviewers in the plan."""

    mode: str
    required: bool
    description: str


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    """`drift:` of an environment, defaults applied (README, "Drift")."""

    check: str  # "history" | "schema" | "both" | "none"
    fail: bool  # drift found by plan or apply exits 1 before any migration runs
    ignore: tuple[str, ...] = ()  # fnmatch patterns on a finding's `object` text
    privileges: bool = False  # also compare ownership and grants
    shadow_url_env: str | None = None  # None: a database on the embedded PostgreSQL
    schemas: tuple[str, ...] = ("public",)  # managed schemas to snapshot

    @property
    def checks(self) -> tuple[str, ...]:
        """The checks this policy runs, in the order they run: a subset of history, schema."""
        return CHECKS[self.check]


# `drift.check` → the checks it runs; `hmig drift --check` takes the same words.
CHECKS: Mapping[str, tuple[str, ...]] = {
    "history": ("history",),
    "schema": ("schema",),
    "both": ("history", "schema"),
    "none": (),
}


def _unprotected_drift() -> DriftPolicy:
    return DriftPolicy(check="history", fail=True)


@dataclass(frozen=True, slots=True)
class Environment:
    """One entry of `environments:` with every default already applied."""

    name: str
    database: DatabaseSpec | None
    protected: bool
    lock_timeout_ms: int
    statement_timeout_ms: int
    transaction: TransactionMode
    strict_order: bool
    lock_retry: LockRetry = field(default_factory=LockRetry)
    lint: LintPolicy = field(default_factory=LintPolicy)
    backup: BackupPolicy | None = None
    drift: DriftPolicy = field(default_factory=_unprotected_drift)


@dataclass(frozen=True, slots=True)
class MigrationsConfig:
    """The `migrations:` section."""

    dir: Path
    table: str
    schema: str
    order: tuple[str, ...] | None
    renamed: Mapping[str, str] = field(default_factory=dict)  # old name → new name


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated `hmig.yml`."""

    path: Path
    migrations: MigrationsConfig
    default_environment: str | None
    environments: Mapping[str, Environment]

    @property
    def base_dir(self) -> Path:
        """Relative paths in the manifest resolve against its folder."""
        return self.path.parent


# --- migration files --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a migration as it will be sent to the server."""

    index: int
    sql: str
    line: int | None = None  # 1-based line in the file; None for SQL generated from `.js`
    column: int | None = None
    no_transaction: str | None = None  # why it cannot run inside a transaction block


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a file cannot run, located in it (1-based line and column)."""

    message: str
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True, slots=True)
class MigrationFile:
    """A migration on disk. `name` is exactly what `pgmigrations.name` stores."""

    name: str
    path: str  # as shown to users: relative to the manifest's folder, POSIX separators
    abspath: Path
    kind: Kind
    checksum: str
    statements: tuple[Statement, ...] = ()  # `.sql` up statements; empty for `.js`
    no_transaction_directive: bool = False  # a `-- hmig:no-transaction` line
    down_path: str | None = None  # the `.down.sql` of a `NAME.up.sql` pair
    problem: Problem | None = None  # set when the file cannot run (e.g. a SQL syntax error)
    down_statements: tuple[Statement, ...] | None = None  # `.sql` down; None: no down section
    down_problem: Problem | None = None  # the down section cannot be parsed

    @property
    def no_transaction_reason(self) -> str | None:
        """Why this `.sql` migration must run outside a transaction, if it must."""
        if self.no_transaction_directive:
            return "declared with -- hmig:no-transaction"
        for statement in self.statements:
            if statement.no_transaction:
                line = f" (line {statement.line})" if statement.line else ""
                return f"{statement.no_transaction}{line}"
        return None


@dataclass(frozen=True, slots=True)
class Rendered:
    """The SQL a migration sends: `.sql` as written, `.js` as node-pg-migrate builds it."""

    statements: tuple[Statement, ...]
    transactional: bool
    reason: str | None = None  # why not transactional

    @property
    def sql(self) -> str:
        """The exact SQL, statements separated as they are sent."""
        return "\n\n".join(_terminated(s.sql) for s in self.statements)


def _terminated(sql: str) -> str:
    stripped = sql.rstrip()
    return stripped if stripped.endswith(";") else stripped + ";"


# --- history ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    """A row of the node-pg-migrate compatible history table."""

    id: int
    name: str
    run_on: datetime


@dataclass(frozen=True, slots=True)
class Recorded:
    """hmig's own record of an applied migration (table `hmig_history`)."""

    name: str
    checksum: str | None
    adopted: bool
    applied_by: str | None
    hmig_version: str | None
    recorded_at: datetime | None = None  # when this checksum was recorded (applied, accepted)


@dataclass(frozen=True, slots=True)
class StatementProgress:
    """Progress of a non-transactional migration, one row per statement (`hmig_progress`)."""

    migration: str
    index: int
    checksum: str
    state: str  # "started" | "done" | "failed"
    error: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Everything the database says about what ran."""

    applied: tuple[Applied, ...]
    recorded: Mapping[str, Recorded] = field(default_factory=dict)
    progress: tuple[StatementProgress, ...] = ()
    table_exists: bool = True


# --- plan -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    """A warning in the report: `code` is one of the documented warning codes."""

    code: str
    message: str
    migration: str | None = None
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What `apply` would do, computed from files and history alone."""

    files: tuple[MigrationFile, ...]  # every migration, in file order
    applied: tuple[Applied, ...]  # the history, in recorded order (run_on, id)
    pending: tuple[MigrationFile, ...]  # every migration not applied yet, in file order
    to_run: tuple[MigrationFile, ...]  # what apply runs: `pending` cut at --target
    unknown: tuple[Applied, ...]  # history rows that no file explains
    out_of_order: tuple[str, ...]  # pending names that sort before an applied one
    notices: tuple[Notice, ...]


# --- drift ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """One way the database is not what the repository says (README, "Drift")."""

    check: str  # "history" | "schema"
    code: str  # kebab-case, e.g. "file-changed", "column-unexpected"
    object: str  # what it is about, in words: "migration 001_a", "column public.t.phone"
    message: str  # one sentence: what differs, and since when
    hint: str | None = None  # what to do
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Drift:
    """The drift checks one command ran, and what they found."""

    checked: tuple[str, ...]  # "history", "schema", in the order they ran
    fail: bool  # findings fail this run (exit 1, outcome `drift`)
    findings: tuple[DriftFinding, ...] = ()

    @property
    def failed(self) -> bool:
        """True when this run stops because of drift."""
        return self.fail and bool(self.findings)


@dataclass(frozen=True, slots=True)
class Repair:
    """One change `hmig repair` makes to the history on purpose, and why."""

    action: str  # "accept" | "remap" | "remove"
    name: str  # the history row's name as recorded
    detail: str
    checksum: str | None = None  # accept: the file's checksum now
    row_id: int | None = None  # remap, remove: the `pgmigrations` row
    new_name: str | None = None  # remap: the migration the row now names


# --- running ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunContext:
    """Who and what applies migrations; written to hmig's history table."""

    hmig_version: str
    actor: str | None = None
    commit: str | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What the server answered to one statement of a `.js` migration's `pgm.db.query`.

    Raw, as node-postgres receives it, so the Node side can build pg's own `Result` with pg's
    own type parsers: every value is the server's text output (None for NULL).
    """

    command: str | None
    """The CommandComplete tag (`SELECT 2`, `INSERT 0 1`, `CREATE TABLE`); None: empty query."""
    fields: tuple[tuple[str, int, int, int, int, int], ...] | None
    """RowDescription: (name, tableID, columnID, dataTypeID, dataTypeSize, dataTypeModifier)
    per column; None when the statement sent none (it returns no rows: CREATE, plain INSERT)."""
    rows: tuple[tuple[str | None, ...], ...]


@dataclass(frozen=True, slots=True)
class Ran:
    """One migration this command executed."""

    name: str
    kind: Kind
    transactional: bool
    duration_ms: float
    statements: int
    retries: int = 0  # attempts that lost a lock race before this one succeeded


@dataclass(frozen=True, slots=True)
class Retry:
    """One retry after `lock_not_available` or a deadlock, and who held the lock."""

    migration: str
    attempt: int  # the attempt that failed, from 1
    reason: str  # "lock_timeout" | "deadlock"
    delay_s: float
    holders: tuple[str, ...]
    statement: int | None = None  # for non-transactional migrations: which statement


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a migration failed, located as precisely as the server and parser allow."""

    migration: str
    file: str
    message: str
    sqlstate: str | None = None
    detail: str | None = None
    hint: str | None = None
    line: int | None = None
    column: int | None = None
    statement: str | None = None
    statements_done: int | None = None  # for non-transactional migrations
    statements_total: int | None = None
    rolled_back: bool = True
    advice: str | None = None
    # Every statement ran; the COMMIT (a check deferred to it) or the history rows before it
    # failed. `migration` is then the last one of the transaction, not necessarily the culprit.
    at_commit: bool = False


@dataclass(frozen=True, slots=True)
class RunReport:
    """The result of `apply`: what ran, and the failure that stopped it, if any."""

    ran: tuple[Ran, ...]
    failure: Failure | None = None
    cancelled: bool = False

    @property
    def outcome(self) -> Outcome:
        """The report's outcome word."""
        if self.cancelled:
            return Outcome.CANCELLED
        if self.failure is not None:
            return Outcome.FAILED
        return Outcome.OK if self.ran else Outcome.NOTHING_TO_DO


@dataclass(frozen=True, slots=True)
class Target:
    """The database a command talks to, as it may be shown: never credentials."""

    host: str
    port: int | None
    database: str
    user: str | None
    server_version: str | None = None

    def describe(self) -> str:
        """`user@host:port/database`, for the line that names the target before any write."""
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{who}{self.host}{port}/{self.database}"


# --- lint and backup --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """A lint finding on a pending migration, located in its file (or generated statement)."""

    rule: str
    severity: str  # "error" | "warning"
    message: str  # the consequence, e.g. "blocks writes to patients (≈ 2.1 M rows) while it builds"
    migration: str
    file: str
    help: str | None = None  # the fix
    line: int | None = None
    column: int | None = None
    statement_index: int | None = None
    source: str = "hmig"  # "hmig" | "squawk"


@dataclass(frozen=True, slots=True)
class BackupArtifact:
    """A verified backup taken before migrations ran."""

    path: Path
    bytes: int
    sha256: str
    mode: str
    format: str
    pg_dump_version: str
    server_version: str
    duration_ms: float
    verified: str  # how: "list" | "restore"
    tables: tuple[str, ...] = ()  # for mode "tables"
    encrypted: bool = False
