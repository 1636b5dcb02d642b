"""Live-schema drift: the applied migrations replayed into a throwaway shadow database.

`check_schema` builds the schema the target should have by replaying, in recorded order,
the migrations its history says are applied (`.sql` and `.js` alike, through the same execution
machinery as `apply`) into a new database: on the server named by the manifest's shadow URL
variable (best: a CI service container of production's major), or else on the project's
embedded PostgreSQL 18. Before the replay the shadow takes the target's effective search_path
and gets the target's roles (NOLOGIN), so unqualified names and GRANT/POLICY … TO role resolve
as they did on the target. Then both catalogs are snapshotted and compared by `hmig.drift`. The
shadow database is dropped whatever happens (an error, Ctrl-C, SIGTERM), with further signals
held off while it is dropped; roles created for it are dropped after it. This module never
writes to the target, and never picks an exit code.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from psycopg import conninfo as pg_conninfo
from psycopg import sql

from hmig import embedded, execution, planning, postgres
from hmig.commands._common import Console, Project, optional_bridge, run_context
from hmig.drift import Difference, compare
from hmig.errors import ConfigurationError, HmigError, Interrupted, StatementFailed
from hmig.model import (
    DriftPolicy,
    Failure,
    History,
    Kind,
    MigrationFile,
    Ran,
    Retry,
    Target,
    TransactionMode,
)
from hmig.postgres import catalog
from hmig.settings import Settings
from hmig.snapshot import Scope

_DUPLICATE_OBJECT = "42710"
_SYNTAX_ERROR = "42601"
_MISSING_ROLE = re.compile(r'role "(?P<name>[^"]+)" does not exist')


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """The result of a live-schema drift check."""

    differences: tuple[Difference, ...]
    replayed: tuple[str, ...]  # the migrations replayed into the shadow, in recorded order
    not_replayed: tuple[str, ...]  # history rows no migration file explains (history drift's)
    shadow: str  # the shadow's server, in words: "embedded PostgreSQL 18.6"
    timings: tuple[tuple[str, float], ...] = ()  # (phase, seconds), in order


def check_schema(
    project: Project,
    settings: Settings,
    console: Console,
    *,
    session: postgres.PgSession,
    history: History,
    policy: DriftPolicy,
) -> SchemaCheck:
    """Compare the target's schema with the one its applied migrations build.

    `session` is the target, outside any transaction; it is only read. `policy` is the
    environment's `drift:` (ignore, privileges, shadow_url_env, schemas). Raises
    `ConfigurationError` when the shadow cannot be had or lacks an extension or role the
    migrations need, and `HmigError` when the migrations do not replay.
    """
    config = project.manifest.migrations
    files, unknown = applied_files(project.files, history, renamed=config.renamed)
    planning.check_runnable(files)
    scope = Scope(
        schemas=policy.schemas,
        history_schema=config.schema,
        history_table=config.table,
        privileges=policy.privileges,
    )
    watch = _Stopwatch()
    actual = catalog.snapshot(session, scope=scope)
    search_path = catalog.effective_search_path(session)
    target_roles = catalog.roles(session)
    watch.lap("snapshot database")
    with _shadow_database(project, settings, url_env=policy.shadow_url_env, watch=watch) as shadow:
        console.line(
            f"Shadow: {shadow.described}; replaying {len(files)} applied migration(s) "
            "in recorded order."
        )
        if _major(shadow.session.target) != _major(session.target):
            console.line(
                f"  The database runs PostgreSQL {session.target.server_version}: a migration "
                "whose SQL depends on the server's version shows as drift; "
                "drift.shadow_url_env can name a shadow of the same major."
            )
        if unknown:
            console.line(
                f"  {len(unknown)} history row(s) name no migration file and are not replayed "
                f"({', '.join(unknown)}): what they made shows as unexpected."
            )
        _mirror_roles(shadow, target_roles)
        _replay(project, settings, shadow, files, search_path=search_path)
        watch.lap("replay migrations")
        expected = catalog.snapshot(shadow.session, scope=scope)
        watch.lap("snapshot shadow")
    differences = compare(expected, actual, ignore=policy.ignore)
    watch.lap("compare")
    return SchemaCheck(
        differences=tuple(differences),
        replayed=tuple(f.name for f in files),
        not_replayed=tuple(unknown),
        shadow=shadow.described,
        timings=tuple(watch.laps),
    )


def _major(target: Target) -> str:
    return (target.server_version or "").split(".")[0]


def applied_files(
    files: Sequence[MigrationFile], history: History, *, renamed: Mapping[str, str]
) -> tuple[list[MigrationFile], list[str]]:
    """The files of the applied history rows, in recorded order, and the rows with no file.

    A row names its file as hmig records it, as node-pg-migrate's default loader does
    (`X.up` for `X.up.sql`), or by a name `migrations.renamed` maps to the file's new name.
    """
    by_name = {f.name: f for f in files}
    replay: list[MigrationFile] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for row in history.applied:
        found = _file_for(row.name, by_name, renamed)
        if found is None:
            unknown.append(row.name)
        elif found.name not in seen:
            seen.add(found.name)
            replay.append(found)
    return replay, unknown


def _file_for(
    name: str, by_name: Mapping[str, MigrationFile], renamed: Mapping[str, str]
) -> MigrationFile | None:
    """As `planning` resolves a row: its name, `X.up` as `X`, then `migrations.renamed`."""
    bare = name.removesuffix(".up")
    for candidate in (name, bare, renamed.get(name), renamed.get(bare)):
        if candidate is not None and candidate in by_name:
            return by_name[candidate]
    return None


# --- the shadow database ----------------------------------------------------------------------


@dataclass(slots=True)
class _Shadow:
    admin: postgres.PgSession  # on the shadow server's maintenance database
    session: postgres.PgSession  # on the shadow database
    described: str
    created_roles: list[str] = field(default_factory=list)


@contextmanager
def _shadow_database(
    project: Project, settings: Settings, *, url_env: str | None, watch: _Stopwatch
) -> Iterator[_Shadow]:
    admin_url, where = _shadow_server(project, settings, url_env)
    admin = postgres.connect(admin_url, target=postgres.describe(admin_url))
    watch.lap("shadow server")
    name = f"hmig_shadow_{os.getpid()}_{secrets.token_hex(4)}"
    created_roles: list[str] = []
    try:
        try:
            admin.run(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        except StatementFailed as exc:
            raise ConfigurationError(
                f"cannot create a shadow database on {where}: {exc.message}",
                hint="The shadow's role needs CREATEDB; hmig creates a new database for every "
                "check and drops it afterwards.",
            ) from exc
        url = pg_conninfo.make_conninfo(admin_url, dbname=name)
        session = postgres.connect(url, target=postgres.describe(url))
        described = f"{where} PostgreSQL {session.target.server_version}"
        watch.lap("create shadow database")
        try:
            yield _Shadow(
                admin=admin, session=session, described=described, created_roles=created_roles
            )
        finally:
            session.close()
    finally:
        with _signals_held():
            _drop_database(admin, name)
            _drop_roles(admin, created_roles)
        admin.close()
        watch.lap("drop shadow database")


def _shadow_server(project: Project, settings: Settings, url_env: str | None) -> tuple[str, str]:
    """The shadow server's maintenance URL, and how to name the server to people."""
    if url_env is None:
        return embedded.start(project.manifest.base_dir, database="postgres"), "embedded"
    url = settings.environ.get(url_env, "").strip()
    if not url:
        state = "empty" if url_env in settings.environ else "not set"
        raise ConfigurationError(
            f"drift.shadow_url_env names ${url_env}, which is {state}",
            hint=f"Set {url_env} to the URL of a server hmig may create a database on (for "
            "example a CI service container running production's PostgreSQL major), or remove "
            "shadow_url_env to use the embedded PostgreSQL.",
        )
    target = postgres.describe(url)
    return url, f"${url_env} ({target.host}{f':{target.port}' if target.port else ''})"


def _drop_database(admin: postgres.PgSession, name: str) -> None:
    """Drop the shadow; WITH (FORCE) (PostgreSQL 13+) ends a session a crash left behind."""
    identifier = sql.Identifier(name)
    try:
        try:
            admin.run(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        except StatementFailed as exc:
            if exc.sqlstate != _SYNTAX_ERROR:  # before PostgreSQL 13: no FORCE
                raise
            admin.run(sql.SQL("DROP DATABASE IF EXISTS {}").format(identifier))
    except StatementFailed as exc:
        raise HmigError(
            f"the shadow database {name} on {admin.target.describe()} could not be dropped: "
            f"{exc.message}",
            hint=f"Drop it by hand: DROP DATABASE IF EXISTS {name} WITH (FORCE);",
        ) from exc


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the shadow is dropped (only the main thread sets handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _mirror_roles(shadow: _Shadow, target_roles: set[str]) -> None:
    """Create the target's roles the shadow server lacks, NOLOGIN, so GRANT … TO them replays.

    Roles are server-wide: the ones created here are dropped after the shadow database. A
    server where the shadow's role may not create roles gets none, and a migration that names
    one fails with a hint.
    """
    for role in sorted(target_roles - catalog.roles(shadow.admin)):
        try:
            shadow.admin.run(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        except StatementFailed as exc:
            if exc.sqlstate == _DUPLICATE_OBJECT:  # another check created it meanwhile
                continue
            return
        shadow.created_roles.append(role)


def _drop_roles(admin: postgres.PgSession, roles: Sequence[str]) -> None:
    for role in roles:
        # Best effort: a concurrent check on the same server may still use the role.
        with contextlib.suppress(StatementFailed):
            admin.run(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# --- the replay -------------------------------------------------------------------------------


def _replay(
    project: Project,
    settings: Settings,
    shadow: _Shadow,
    files: Sequence[MigrationFile],
    *,
    search_path: Sequence[str],
) -> None:
    """Apply `files` to the shadow as `apply` would, each with its history row."""
    session = shadow.session
    catalog.set_search_path(session, search_path)
    # A throwaway database: no need to wait for each commit's WAL flush.
    session.run(sql.SQL("SET synchronous_commit = off"))
    config = project.manifest.migrations
    tables = postgres.HistoryTables(session, schema=config.schema, table=config.table)
    session.begin()
    tables.ensure()
    session.commit()
    if not files:
        return
    options = execution.Options(
        mode=TransactionMode.PER_MIGRATION,
        lock_timeout_ms=0,  # nothing else uses the shadow
        statement_timeout_ms=0,
        context=run_context(settings),
    )
    needs_js = any(f.kind is Kind.JS for f in files)
    with optional_bridge(project, settings, needed=needs_js) as bridge:
        report = execution.apply(
            files,
            session=session,
            history=tables,
            renderer=bridge,
            options=options,
            progress=_Quiet(),
            clock=time.monotonic,
            sleep=time.sleep,
            jitter=random.random,
        )
    if report.cancelled:
        raise Interrupted("interrupted while replaying migrations into the shadow database")
    if report.failure is not None:
        raise _replay_failed(report.failure, shadow=shadow.described)


def _replay_failed(failure: Failure, *, shadow: str) -> HmigError:
    where = failure.file + (f":{failure.line}" if failure.line else "")
    name = execution.missing_extension(failure.message)
    if name is not None:
        return ConfigurationError(
            f"the shadow database ({shadow}) cannot replay {where}: the extension {name!r} is "
            "not available there",
            hint="The embedded PostgreSQL 18 ships without some contrib extensions (uuid-ossp, "
            "pgcrypto). Give the environment a shadow server of production's major version "
            "with the extension installed: drift.shadow_url_env names the variable holding "
            "its URL (in GitHub Actions, a postgres service container).",
        )
    role = _MISSING_ROLE.search(failure.message)
    if role is not None:
        return ConfigurationError(
            f"the shadow database ({shadow}) cannot replay {where}: role {role['name']!r} does "
            "not exist there, and hmig could not create it",
            hint=f"Create the role on the shadow server (CREATE ROLE {role['name']} NOLOGIN), or "
            "let the shadow's role create roles (CREATEROLE).",
        )
    return HmigError(
        f"the applied migrations do not replay into the shadow database ({shadow}): {where}: "
        f"{failure.message}",
        hint="The migration files no longer build the schema from an empty database (edited "
        "after they were applied, or relying on something made by hand?). Fix that; or, if "
        "the SQL depends on the server's version, set drift.shadow_url_env to a server of "
        "production's major.",
    )


class _Quiet:
    """The replay prints nothing per migration: it is not what the user is waiting for."""

    def started(self, migration: MigrationFile) -> None:
        """Nothing to show."""

    def finished(self, ran: Ran) -> None:
        """Nothing to show."""

    def retrying(self, retry: Retry) -> None:
        """Nothing to show."""


class _Stopwatch:
    """Seconds per phase, for the benchmark's breakdown."""

    def __init__(self) -> None:
        self.laps: list[tuple[str, float]] = []
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps.append((phase, now - self._last))
        self._last = now
