"""psycopg 3 session: connect, transactions, timeouts, the advisory lock and target checks.

Every server error is turned into an `HmigError` here, keeping SQLSTATE, detail, hint and
position. The connection runs in autocommit mode and hmig opens transactions explicitly, so a
non-transactional statement is never wrapped by accident.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import pq, sql
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.pq.abc import PGresult

from hmig.errors import ConnectionFailed, LockNotAcquired, Refused, StatementFailed
from hmig.model import QueryResult, Target
from hmig.postgres._queries import query as load_query

# node-pg-migrate's PG_MIGRATE_LOCK_ID (src/runner.ts): hmig and `npm run migrate` exclude
# each other because they take the same session-level advisory lock.
LOCK_KEY = 7241865325823964
APPLICATION_NAME = "hmig"

_Query = sql.SQL | sql.Composed

# psycopg logs as warnings the errors it ignores while cleaning up after one it raised (a
# pipeline's commands skipped after the failing one): hmig reports the error raised. With no
# logging configured, Python would print them on stderr, beside hmig's own account of it.
logging.getLogger("psycopg").addHandler(logging.NullHandler())
_CONNECTION_FAILURE = "08006"  # PostgreSQL docs, Appendix A: connection_failure
_LOCK_POLL_S = 0.2  # how often a run waiting for the migration lock tries again


def describe(conninfo: str) -> Target:
    """The target named by a connection string, without its password.

    Before connecting, libpq's defaults (PGHOST, PGPORT) fill in the host and port the string
    leaves out; `connect` then names the host and port the connection really reached.
    """
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ConnectionFailed(
            "the database URL cannot be parsed",
            hint="Use postgresql://user@host:port/database (password in PGPASSWORD or the URL).",
        ) from exc
    defaults = {
        option.keyword.decode(): option.val.decode()
        for option in pq.Conninfo.get_defaults()
        if option.val is not None
    }
    port = params.get("port") or defaults.get("port")
    return Target(
        host=str(params.get("host") or defaults.get("host") or "localhost"),
        port=int(port) if port and str(port).isdigit() else None,
        database=str(params.get("dbname") or params.get("user") or ""),
        user=str(params["user"]) if params.get("user") else None,
    )


class PgSession:
    """One connection to the target; implements the core's `Session` port."""

    def __init__(self, conn: psycopg.Connection[Any], target: Target, conninfo: str) -> None:
        self._conn = conn
        self.target = target
        # Kept for the tools that need their own connection (pg_dump); holds the password, so
        # it is never printed or put in a report.
        self.conninfo = conninfo
        # A BEGIN (with its SET LOCALs) not sent yet: it travels with the transaction's first
        # statement, one round trip fewer per migration (docs/benchmarks.md, "Apply").
        self._opening: str | None = None
        # The opening text of each kind of transaction, composed once: every migration begins one.
        self._openings: dict[tuple[bool, int | None, int | None], str] = {}

    # -- Session port ------------------------------------------------------------------------

    def begin(
        self,
        *,
        read_only: bool = False,
        lock_timeout_ms: int | None = None,
        statement_timeout_ms: int | None = None,
    ) -> None:
        """Open a transaction, with its timeouts; it is sent with the first statement.

        Read-only transactions make plan/status unable to write anything. The timeouts are
        `SET LOCAL`: they end with the transaction.
        """
        key = (read_only, lock_timeout_ms, statement_timeout_ms)
        opening = self._openings.get(key)
        if opening is None:
            parts: list[sql.Composable] = [sql.SQL("BEGIN READ ONLY" if read_only else "BEGIN")]
            for name, value in (
                ("lock_timeout", lock_timeout_ms),
                ("statement_timeout", statement_timeout_ms),
            ):
                if value is not None:
                    parts.append(
                        sql.SQL("SET LOCAL {} = {}").format(
                            sql.Identifier(name), sql.Literal(value)
                        )
                    )
            opening = self._openings[key] = sql.SQL("; ").join(parts).as_string(self._conn)
        self._opening = opening

    def commit(self) -> None:
        """Commit the open transaction (nothing to send when it never ran a statement)."""
        if self._opening is not None:
            self._opening = None
            return
        self._run(sql.SQL("COMMIT"))

    def rollback(self) -> None:
        """Roll back the open transaction; nothing is sent when none is open."""
        self._opening = None
        if not self.usable() or self._conn.info.transaction_status == TransactionStatus.IDLE:
            return
        self._conn.execute("ROLLBACK")

    def set_session_timeouts(self, *, lock_timeout_ms: int, statement_timeout_ms: int) -> None:
        """SET for the session: for statements that run outside a transaction."""
        for name, value in (
            ("lock_timeout", lock_timeout_ms),
            ("statement_timeout", statement_timeout_ms),
        ):
            self._run(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))

    def execute(self, sql_text: str) -> None:
        """Run migration SQL as written (simple query protocol, so `$$` bodies pass intact).

        A BEGIN still to send goes first in the same query string; the server's error position
        is then counted past it, back to a position in `sql_text`.
        """
        prefix = f"{self._opening}; " if self._opening is not None else ""
        self._opening = None
        try:
            self._conn.execute((prefix + sql_text).encode("utf-8"), prepare=False)
        except psycopg.Error as exc:
            raise statement_failed(exc, skip=len(prefix)) from exc

    def query(self, sql_text: str, params: Sequence[object]) -> list[QueryResult]:
        """A `.js` migration's `pgm.db.query`, answered as node-postgres receives the answer.

        With parameters: `$1` placeholders, the extended protocol, each value bound as pg's
        client binds it (text of unknown type, `bytes` for a Buffer). Without: the simple query
        protocol, so a multi-statement text answers with one result per statement. Values stay
        the server's text and columns keep their type OIDs: the Node side parses them with
        node-postgres's own type parsers.

        In an open transaction the query runs in a savepoint, so a failure the migration
        catches undoes only that query instead of aborting the transaction. Text that manages
        transactions or savepoints itself runs bare: releasing hmig's savepoint after it would
        release the migration's own savepoints too.
        """
        self._open()
        conn = self._conn
        guarded = conn.info.transaction_status == TransactionStatus.INTRANS and not re.search(
            r"(?:^|;)(?:\s|--[^\n]*|/\*.*?\*/)*"
            r"(?:savepoint|release|rollback|commit|begin|start|end|abort)\b",
            sql_text,
            re.IGNORECASE | re.DOTALL,
        )
        encoding = conn.info.encoding

        def text(value: bytes | None) -> str | None:
            return None if value is None else value.decode(encoding, "replace")

        def raw(res: PGresult) -> QueryResult:
            columns = range(res.nfields)
            return QueryResult(
                command=None if res.status == ExecStatus.EMPTY_QUERY else text(res.command_status),
                fields=tuple(
                    (
                        text(res.fname(c)) or "",
                        res.ftable(c),
                        res.ftablecol(c),
                        res.ftype(c),
                        res.fsize(c),
                        res.fmod(c),
                    )
                    for c in columns
                )
                if res.status == ExecStatus.TUPLES_OK
                else None,
                rows=tuple(
                    tuple(text(res.get_value(r, c)) for c in columns) for r in range(res.ntuples)
                ),
            )

        try:
            with self.savepoint() if guarded else nullcontext():
                try:
                    with psycopg.RawCursor(conn) as cursor:
                        cursor.execute(
                            sql_text.encode("utf-8"), list(params) or None, prepare=False
                        )
                        results = []
                        while cursor.pgresult is not None:
                            results.append(raw(cursor.pgresult))
                            if not cursor.nextset():
                                break
                        return results
                except psycopg.Error as exc:
                    raise statement_failed(exc) from exc
        except StatementFailed:
            # savepoint() rolled back to its savepoint but keeps it; release it, or an outer
            # `savepoint()` would later roll back (or release) this one instead of its own.
            if (
                guarded
                and self.usable()
                and conn.info.transaction_status == TransactionStatus.INTRANS
            ):
                self._run(sql.SQL("RELEASE SAVEPOINT hmig_savepoint"))
            raise

    def lock_holders(self, relations: Sequence[str]) -> list[str]:
        """Who holds locks on these relations, in words, for the retry log."""
        rows = self.fetch(load_query("lock_holders"), {"relations": list(relations)})
        described = []
        for pid, app, user, state, xact_start, query_start, held in rows:
            since = xact_start or query_start
            when = f" since {since:%H:%M:%S}" if since else ""
            described.append(
                f"pid {pid} (application_name {app!r}, user {user}, {state}{when}) holds {held}"
            )
        return described

    def invalid_index(self, name: str) -> bool:
        """True when `name` is an INVALID index (a failed concurrent build)."""
        return bool(self.fetch(load_query("invalid_index"), {"name": name})[0][0])

    # -- the rest of the adapter -------------------------------------------------------------

    def fetch(self, query: _Query, params: Mapping[str, object] | None = None) -> list[Any]:
        """Rows of an adapter query, as tuples."""
        self._open()
        try:
            rows: list[Any] = self._conn.execute(query, params).fetchall()
            return rows
        except psycopg.Error as exc:
            raise statement_failed(exc) from exc

    def run(self, query: _Query, params: Mapping[str, object] | None = None) -> None:
        """Run an adapter statement."""
        self._run(query, params)

    def server_version(self) -> str:
        """`15.19`, `18.6`: shown beside the target."""
        version = self._conn.info.server_version
        return f"{version // 10000}.{version % 10000}"

    @contextmanager
    def together(self) -> Iterator[None]:
        """Send what runs inside in one round trip, when the block ends (psycopg's pipeline).

        For statements whose results are not read: the history rows and the COMMIT after them.
        The first error skips the rest and is raised when the block ends.
        """
        self._open()  # BEGIN with its SET LOCALs is several statements: one message alone
        try:
            with self._conn.pipeline():
                yield
        except psycopg.Error as exc:
            raise statement_failed(exc) from exc

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested scope in the open transaction: an error inside undoes only its part."""
        self._run(sql.SQL("SAVEPOINT hmig_savepoint"))
        try:
            yield
        except BaseException:
            if self.usable():
                self._run(sql.SQL("ROLLBACK TO SAVEPOINT hmig_savepoint"))
            raise
        self._run(sql.SQL("RELEASE SAVEPOINT hmig_savepoint"))

    def usable(self) -> bool:
        """False once the connection is closed or broken (server restart, terminated)."""
        return not self._conn.closed and not self._conn.broken

    def cancel(self) -> None:
        """Ask the server to cancel the running statement (SIGINT/SIGTERM)."""
        self._conn.cancel_safe(timeout=5)

    def close(self) -> None:
        """Close the connection; the server releases session locks with it."""
        self._conn.close()

    def _open(self) -> None:
        """Send a BEGIN still waiting for its first statement: the next one needs it alone.

        Statements with parameters use the extended protocol, which takes one statement per
        message, so the BEGIN cannot travel with them.
        """
        if self._opening is not None:
            opening, self._opening = self._opening, None
            self._send(sql.SQL(opening))

    def _run(self, query: _Query, params: Mapping[str, object] | None = None) -> None:
        self._open()
        self._send(query, params)

    def _send(self, query: _Query, params: Mapping[str, object] | None = None) -> None:
        try:
            self._conn.execute(query, params)
        except psycopg.Error as exc:
            raise statement_failed(exc) from exc


def connect(conninfo: str, *, target: Target, connect_timeout_s: int = 10) -> PgSession:
    """Open the session; a failure names the target, never the password."""
    try:
        conn = psycopg.connect(
            conninfo,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=connect_timeout_s,
            # Migration files are UTF-8 (as psql sends them from a UTF-8 locale); and on a
            # SQL_ASCII database psycopg would otherwise return text columns as bytes.
            client_encoding="UTF8",
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ConnectionFailed(
            f"cannot connect to {target.describe()}: {reason}",
            hint="Check that the server is running and the URL, user and password are right.",
        ) from exc
    session = PgSession(conn, target, conninfo)
    return PgSession(
        conn,
        Target(
            host=conn.info.host,
            port=int(conn.info.port),
            database=conn.info.dbname,
            user=conn.info.user,
            server_version=session.server_version(),
        ),
        conninfo,
    )


def check_target(session: PgSession) -> None:
    """Refuse targets where migrating cannot be safe (README, "Targets hmig refuses")."""
    in_recovery = session.fetch(sql.SQL("SELECT pg_catalog.pg_is_in_recovery()"))[0][0]
    if in_recovery:
        raise Refused(
            f"{session.target.describe()} is a hot standby (pg_is_in_recovery() is true): "
            "it cannot be migrated",
            hint="Point the environment at the primary server.",
        )
    _check_session_pinning(session)


def _check_session_pinning(session: PgSession) -> None:
    """Detect a transaction-pooling proxy, where session advisory locks do not hold.

    Session state must stay on one server backend across transactions. PgBouncer in transaction
    mode may hand the next transaction to another backend; when it does, this notices. It cannot
    notice a proxy that happens to reuse the same backend, which the README says.
    """
    token = secrets.token_hex(8)
    session.run(sql.SQL("SET hmig.session_probe = {}").format(sql.Literal(token)))
    first = session.fetch(sql.SQL("SELECT pg_catalog.pg_backend_pid()"))[0][0]
    probe = sql.SQL(
        "SELECT pg_catalog.current_setting('hmig.session_probe', true), pg_backend_pid()"
    )
    value, second = session.fetch(probe)[0]
    if value != token or first != second:
        raise Refused(
            f"{session.target.describe()} does not keep session state between transactions "
            "(a transaction-pooling proxy such as PgBouncer in transaction mode?)",
            hint="Session advisory locks do not hold through such a proxy: connect to the "
            "server directly, or through a session-pooling port.",
        )


@contextmanager
def advisory_lock(session: PgSession, *, wait_s: float) -> Iterator[None]:
    """Hold node-pg-migrate's session-level advisory lock; wait at most `wait_s` for it.

    Session-level, never transaction-level, so a non-transactional statement such as CREATE
    INDEX CONCURRENTLY cannot deadlock against hmig's own lock (Flyway #1654 / #3682); and
    waited for by polling, so it cannot deadlock against the runs waiting for it (`_acquire`).
    """
    _acquire(session, wait_s=wait_s)
    try:
        yield
    finally:
        if session.usable():
            session.rollback()
            session.fetch(_lock_call("pg_advisory_unlock"))


def _acquire(session: PgSession, *, wait_s: float) -> None:
    """Try for the lock every `_LOCK_POLL_S` until `wait_s` has passed.

    Not one blocking pg_advisory_lock() call: a statement blocked in it holds a snapshot for
    as long as it waits, and the holder's CREATE INDEX CONCURRENTLY waits for every older
    snapshot to end (PostgreSQL docs, CREATE INDEX, "Building Indexes Concurrently") while the
    waiter waits for the holder's lock. The server breaks that cycle as a deadlock (40P01),
    failing the waiter or the index build. Between two tries the session holds no snapshot.
    """
    started = time.monotonic()
    try_lock = _lock_call("pg_try_advisory_lock")
    while not session.fetch(try_lock)[0][0]:
        waited = time.monotonic() - started
        if waited >= wait_s:
            raise LockNotAcquired(
                f"another migration run holds the lock on {session.target.database} "
                f"(waited {waited:.0f} s){_holder(session)}",
                hint="Wait for it to finish, or raise --lock-wait. If that process is gone, its "
                "session ends and the lock is released with it.",
            )
        time.sleep(min(_LOCK_POLL_S, wait_s - waited))


def _lock_call(function: str) -> sql.Composed:
    return sql.SQL("SELECT pg_catalog.{}({})").format(
        sql.Identifier(function), sql.Literal(LOCK_KEY)
    )


def _holder(session: PgSession) -> str:
    rows = session.fetch(
        load_query("lock_holder"),
        {"classid": LOCK_KEY >> 32, "objid": LOCK_KEY & 0xFFFFFFFF},
    )
    if not rows:
        return ""
    pid, app, user, state, query_start, client = rows[0]
    since = f", query started {query_start:%Y-%m-%d %H:%M:%S %Z}" if query_start else ""
    where = f" from {client}" if client else ""
    return f": pid {pid}, application_name {app!r}, user {user}{where}, state {state}{since}"


def statement_failed(exc: psycopg.Error, *, skip: int = 0) -> StatementFailed:
    """A psycopg error as hmig's `StatementFailed`, keeping what the server said.

    `skip`: characters sent before the statement in the same query string (a BEGIN), which
    the server's position counts and the statement's own does not.
    """
    diag = exc.diag
    raw = diag.statement_position
    position = int(raw) - skip if raw and raw.isdigit() else 0
    sqlstate = exc.sqlstate
    if sqlstate is None and isinstance(exc, psycopg.OperationalError):
        # libpq lost the connection without a word from the server (a crash, an immediate
        # shutdown, the network): no SQLSTATE. Name it connection_failure, as pgjdbc does
        # (PSQLState.CONNECTION_FAILURE), so it is told apart from a statement the server refused.
        sqlstate = _CONNECTION_FAILURE
    return StatementFailed(
        diag.message_primary or str(exc).strip() or type(exc).__name__,
        sqlstate=sqlstate,
        detail=diag.message_detail,
        server_hint=diag.message_hint,
        position=position if position > 0 else None,
    )
