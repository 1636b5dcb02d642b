"""SQL text → located statements, with the PostgreSQL parser (pglast).

Knowing where each statement starts lets an error name the line even when the server gives no
position (most DDL errors), and the parse tree says which statements cannot run inside a
transaction block. node-pg-migrate's `-- Up Migration` / `-- Down Migration` markers are
honoured here, and what hmig refuses to send is refused here, located: transaction control,
psql meta-commands, COPY to or from the client, binary content. Pure: text in, values out.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pglast
from pglast import ast
from pglast.enums import AlterTableType, ReindexObjectType
from pglast.visitors import Visitor

from hmig.model import Problem, Statement

# node-pg-migrate's own marker expression (src/sqlMigration.ts): case-insensitive, extra dashes
# and spaces allowed, anchored at a line start.
_UP_MARKER = re.compile(r"^\s*--[\s-]*up\s+migration", re.IGNORECASE | re.MULTILINE)
_DOWN_MARKER = re.compile(r"^\s*--[\s-]*down\s+migration", re.IGNORECASE | re.MULTILINE)
NO_TRANSACTION_DIRECTIVE = re.compile(r"^\s*--\s*hmig:no-transaction\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Section:
    """A part of a file, and where it starts in it."""

    text: str
    offset: int  # characters before the section in the file


def up_section(text: str) -> Section:
    """The SQL that runs on up.

    With an up marker: from it to the down marker (or the end). Without one: everything before
    the down marker. node-pg-migrate runs the whole file in that last case, down SQL included;
    hmig deliberately does not (README, "Differences from node-pg-migrate").
    """
    up = _UP_MARKER.search(text)
    down = _DOWN_MARKER.search(text)
    if up is None:
        return Section(text[: down.start()] if down else text, 0)
    end = down.start() if down is not None and down.start() > up.start() else len(text)
    return Section(text[up.start() : end], up.start())


def down_section(text: str) -> Section | None:
    """The SQL that runs on down, or None when the file has no down marker."""
    down = _DOWN_MARKER.search(text)
    if down is None:
        return None
    up = _UP_MARKER.search(text)
    end = up.start() if up is not None and up.start() > down.start() else len(text)
    return Section(text[down.start() : end], down.start())


def split(text: str, section: Section) -> tuple[Statement, ...]:
    """Split a section into statements located in `text`; raise `SqlProblem` when invalid.

    The parser's C splitter validates and locates every statement; a Python parse tree (much
    slower to build) is made only for statements whose words could make them special. Line
    numbers come from a table of line starts: a seed file of 100 000 statements stays linear.
    """
    lines = _Lines(text)
    try:
        slices = pglast.parser.split(section.text, with_parser=True, only_slices=True)
    except pglast.parser.ParseError as exc:
        index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        raise _explain(str(exc.args[0]), section=section, index=index, lines=lines) from exc
    found: list[Statement] = []
    nodes: list[ast.Node | None] = []
    for piece in slices:
        sql = section.text[piece].strip()
        if not sql:
            continue
        lead = len(section.text[piece]) - len(section.text[piece].lstrip())
        line, column = lines.at(section.offset + piece.start + lead)
        node = _tree(sql) if _MAYBE_SPECIAL.search(sql) else None
        if node is not None:
            _reject_transaction_control(node, line=line, column=column)
            _reject_client_copy(node, line=line, column=column)
        nodes.append(node)
        found.append(
            Statement(
                index=len(found),
                sql=sql,
                line=line,
                column=column,
                no_transaction=_no_transaction(node) if node is not None else None,
            )
        )
    return _mark_enum_values_used_later(tuple(found), nodes)


def _tree(sql: str) -> ast.Node | None:
    parsed = pglast.parse_sql(sql)
    return parsed[0].stmt if parsed else None


class SqlProblem(Exception):
    """Internal: carries a `Problem` to the caller, which knows the file name.

    `refused` is true when the SQL may well be valid but hmig will not send it (transaction
    control, a psql meta-command, COPY to or from the client), false for a syntax error.
    """

    def __init__(self, problem: Problem, *, refused: bool = False) -> None:
        super().__init__(problem.message)
        self.problem = problem
        self.refused = refused


def forbidden_statement(sql: str) -> Problem | None:
    r"""The first thing in `sql` that hmig refuses to send, located in `sql`; None if nothing.

    That is transaction control (BEGIN, COMMIT, ROLLBACK, PREPARE TRANSACTION …), a psql
    meta-command (`\i`, `\copy`, `\set` …) or COPY from stdin / to stdout, the same checks
    `split` makes on `.sql` files. For SQL another program built: the statements node-pg-migrate
    renders for a `.js` migration. A plain syntax error gives None: the server reports it, with
    its own position, and pglast's grammar may lag the server's.
    """
    try:
        split(sql, Section(sql, 0))
    except SqlProblem as exc:
        return exc.problem if exc.refused else None
    return None


def binary_problem(text: str) -> Problem | None:
    """The first NUL or other control character in `text`, as a located problem; None if none.

    PostgreSQL cannot receive a NUL in query text and pglast stops reading at one, so the
    statements after it would silently never run. Other control characters (tab, line feed,
    vertical tab, form feed and carriage return excepted) are not SQL either, and echoing them
    in a plan or a log would let a file drive the reader's terminal.
    """
    match = _CONTROL.search(text)
    if match is None:
        return None
    line, column = _Lines(text).at(match.start())
    what = (
        "a NUL byte (\\x00)"
        if match.group() == "\0"
        else f"the control character {visible(match.group())}"
    )
    return Problem(
        f"{what}: this is binary content, not SQL text; save the migration as plain UTF-8 text",
        line,
        column,
    )


def visible(text: str) -> str:
    r"""`text` with every control character written as a Python escape (`\n`, `\x1b`).

    For file names and SQL echoed in messages: a newline would split a log line (and could
    start a GitHub Actions `::` command), an ESC would drive the reader's terminal.
    """
    return _UNSAFE.sub(_escape, text)


def relations(sql: str) -> tuple[str, ...]:
    """Every table or view a statement names (schema-qualified when written so), in order."""
    try:
        parsed = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return ()
    collector = _RangeVars()
    for raw_stmt in parsed:
        collector(raw_stmt)
    return tuple(dict.fromkeys(collector.names))


class _RangeVars(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def visit_RangeVar(self, ancestors: object, node: ast.RangeVar) -> None:
        if node.relname:
            prefix = f"{node.schemaname}." if node.schemaname else ""
            self.names.append(prefix + node.relname)


def concurrent_index_name(sql: str) -> str | None:
    """The index a `CREATE INDEX CONCURRENTLY` builds, when the statement names it.

    A failed concurrent build leaves an INVALID index behind (PostgreSQL docs, "Building Indexes
    Concurrently"); it must be dropped before the statement can run again.
    """
    try:
        parsed = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return None
    for raw_stmt in parsed:
        node = raw_stmt.stmt
        if isinstance(node, ast.IndexStmt) and node.concurrent and node.idxname:
            schema = node.relation.schemaname if node.relation is not None else None
            return f"{schema}.{node.idxname}" if schema else node.idxname
    return None


def safe_to_repeat(sql: str) -> bool:
    """Whether a non-transactional statement that failed may simply run again.

    The server rolled it back, so most may; `DETACH PARTITION … CONCURRENTLY` leaves the
    partition "detach pending" and needs `FINALIZE` instead (PostgreSQL docs, ALTER TABLE).
    """
    try:
        parsed = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return False
    return all(
        not (node is not None and _no_transaction(node) == _DETACH_CONCURRENTLY)
        for node in (raw_stmt.stmt for raw_stmt in parsed)
    )


def locate(statement: Statement, position: int | None) -> tuple[int | None, int | None]:
    """Line and column in the file of a 1-based server error position inside `statement`."""
    if statement.line is None or position is None or position < 1:
        return statement.line, statement.column
    before = statement.sql[: position - 1]
    newlines = before.count("\n")
    if newlines == 0:
        return statement.line, (statement.column or 1) + len(before)
    return statement.line + newlines, len(before) - before.rfind("\n")


# --- internals --------------------------------------------------------------------------------

_DETACH_CONCURRENTLY = "ALTER TABLE … DETACH PARTITION … CONCURRENTLY"

# Every statement `_no_transaction`, `_reject_transaction_control`, `_reject_client_copy` or the
# enum check can flag
# contains one of these words; others need no parse tree.
_MAYBE_SPECIAL = re.compile(
    r"\b(concurrently|vacuum|reindex|cluster|database|system|tablespace|subscription|value|begin"
    r"|start|commit|rollback|end|abort|prepare|copy)\b",
    re.IGNORECASE,
)

_TXN_KINDS = {
    "TRANS_STMT_BEGIN",
    "TRANS_STMT_START",
    "TRANS_STMT_COMMIT",
    "TRANS_STMT_ROLLBACK",
    "TRANS_STMT_PREPARE",
    "TRANS_STMT_COMMIT_PREPARED",
    "TRANS_STMT_ROLLBACK_PREPARED",
}


def _reject_transaction_control(node: ast.Node, *, line: int, column: int) -> None:
    """BEGIN/COMMIT/ROLLBACK inside a migration would commit half of it: hmig owns transactions."""
    if (
        isinstance(node, ast.TransactionStmt)
        and node.kind is not None
        and node.kind.name in _TXN_KINDS
    ):
        keyword = node.kind.name.removeprefix("TRANS_STMT_").replace("_", " ")
        message = (
            f"{keyword} inside a migration: hmig runs each migration in its own transaction "
            "(or outside one, statement by statement, when a statement needs that)"
        )
        raise SqlProblem(Problem(message, line, column), refused=True)


def _reject_client_copy(node: ast.Node, *, line: int, column: int) -> None:
    r"""COPY from stdin / to stdout needs psql on the other end of the connection.

    psql streams the rows that follow the statement (up to `\.`) or prints the ones the server
    sends; a migration run by hmig (or node-pg-migrate) has no such stream.
    """
    if not isinstance(node, ast.CopyStmt) or node.filename is not None:
        return
    if node.is_from:
        message = (
            "COPY … FROM stdin needs psql's data stream, which a migration does not have: "
            "use INSERT … VALUES, or COPY … FROM 'file' for a file on the database server"
        )
    else:
        message = (
            "COPY … TO stdout sends rows to a client that does not read them: remove it, or "
            "use COPY … TO 'file' for a file on the database server"
        )
    raise SqlProblem(Problem(message, line, column), refused=True)


def _explain(message: str, *, section: Section, index: int, lines: _Lines) -> SqlProblem:
    """A parse error at `index` of the section, said in the words of its likely cause.

    The rows after `COPY … FROM stdin` and a psql meta-command are both syntax errors to the
    server; "syntax error at or near" would send people hunting for a typo.
    """
    copy = _client_copy_before(section.text[:index])
    if copy is not None:
        line, column = lines.at(section.offset + copy[0])
        try:
            _reject_client_copy(copy[1], line=line, column=column)
        except SqlProblem as refused:
            return refused
    line, column = lines.at(section.offset + index)
    meta = _META_COMMAND.match(section.text, index)
    if meta is None:
        return SqlProblem(Problem(message, line, column))
    command = visible(meta.group())
    advice = _META_ADVICE.get(meta.group(1), "write what it does as SQL")
    return SqlProblem(
        Problem(
            f"{command} is a psql meta-command: hmig sends SQL to the server and, like "
            f"node-pg-migrate, does not run psql's own commands; {advice}",
            line,
            column,
        ),
        refused=True,
    )


def _client_copy_before(text: str) -> tuple[int, ast.Node] | None:
    """The first `COPY` from or to the client in `text` (complete statements), with its offset."""
    if not _COPY_WORD.search(text):
        return None
    try:
        pieces = pglast.parser.split(text, with_parser=False, only_slices=True)
    except pglast.parser.ParseError:
        return None
    for piece in pieces:
        sql = text[piece]
        if not _COPY_WORD.search(sql):
            continue
        try:
            node = _tree(sql.strip())
        except pglast.parser.ParseError:
            continue
        if isinstance(node, ast.CopyStmt) and node.filename is None:
            return piece.start + len(sql) - len(sql.lstrip()), node
    return None


_COPY_WORD = re.compile(r"\bcopy\b", re.IGNORECASE)
_META_COMMAND = re.compile(r"\\([A-Za-z!?.;]*)")
# What to write instead, by psql command (psql docs, "Meta-Commands").
_META_ADVICE = {
    "i": "put the SQL of the other file in this migration, or in a migration of its own",
    "ir": "put the SQL of the other file in this migration, or in a migration of its own",
    "include": "put the SQL of the other file in this migration, or in a migration of its own",
    "include_relative": "put the SQL of the other file in this migration, or in a migration of "
    "its own",
    "copy": "use INSERT … VALUES, or COPY … FROM 'file' for a file on the database server",
    "set": "psql variables do not exist here: write the value in the SQL",
    "c": "a migration runs on the database of its environment: give the other database its "
    "own hmig environment",
    "connect": "a migration runs on the database of its environment: give the other database "
    "its own hmig environment",
    ".": "the rows of a COPY … FROM stdin cannot be sent: use INSERT … VALUES",
}

# C0 controls except tab, line feed, vertical tab, form feed and carriage return; DEL; C1.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# Also the whitespace controls and Unicode's bidirectional overrides (CVE-2021-42574).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class _Lines:
    """Where each line of a text starts: offset → (line, column) in O(log n), not O(n)."""

    def __init__(self, text: str) -> None:
        self._starts = [0, *(match.end() for match in re.finditer("\n", text))]

    def at(self, offset: int) -> tuple[int, int]:
        """1-based line and column of the character at `offset`."""
        index = bisect.bisect_right(self._starts, offset) - 1
        return index + 1, offset - self._starts[index] + 1


# REINDEX of a whole schema, database or the system catalogs commits table by table.
_REINDEX_MANY = {
    ReindexObjectType.REINDEX_OBJECT_SCHEMA: "REINDEX SCHEMA",
    ReindexObjectType.REINDEX_OBJECT_SYSTEM: "REINDEX SYSTEM",
    ReindexObjectType.REINDEX_OBJECT_DATABASE: "REINDEX DATABASE",
}


def _no_transaction(node: ast.Node) -> str | None:
    """Why PostgreSQL refuses this statement inside a transaction block, or None.

    The list follows the statements that call PreventInTransactionBlock in the PostgreSQL
    sources (docs: each command's page says "cannot be executed inside a transaction block").
    """
    if isinstance(node, ast.IndexStmt) and node.concurrent:
        return "CREATE INDEX CONCURRENTLY"
    if isinstance(node, ast.DropStmt) and node.concurrent:
        return "DROP INDEX CONCURRENTLY"
    if isinstance(node, ast.ReindexStmt) and any(
        getattr(p, "defname", None) == "concurrently" for p in node.params or ()
    ):
        return "REINDEX CONCURRENTLY"
    if isinstance(node, ast.ReindexStmt) and node.kind in _REINDEX_MANY:
        return _REINDEX_MANY[node.kind]
    if isinstance(node, ast.ClusterStmt) and node.relation is None:
        return "CLUSTER without a table"
    if isinstance(node, ast.VacuumStmt):
        return "VACUUM" if node.is_vacuumcmd else None
    if isinstance(node, ast.AlterTableStmt):
        for cmd in node.cmds or ():
            is_detach = getattr(cmd, "subtype", None) == AlterTableType.AT_DetachPartition
            if is_detach and getattr(cmd.def_, "concurrent", False):
                return _DETACH_CONCURRENTLY
        return None
    simple = {
        ast.CreatedbStmt: "CREATE DATABASE",
        ast.DropdbStmt: "DROP DATABASE",
        ast.AlterSystemStmt: "ALTER SYSTEM",
        ast.CreateTableSpaceStmt: "CREATE TABLESPACE",
        ast.DropTableSpaceStmt: "DROP TABLESPACE",
    }
    for kind, reason in simple.items():
        if isinstance(node, kind):
            return reason
    if isinstance(node, ast.CreateSubscriptionStmt):
        return "CREATE SUBSCRIPTION"
    return None


def added_enum_value(sql: str) -> str | None:
    """The value an `ALTER TYPE … ADD VALUE` statement adds, as a SQL literal; else None.

    A later statement that holds the literal is taken to use the value: a migration (or a
    `transaction: all` batch) that does so must not add it in the same transaction.
    """
    if not _MAYBE_SPECIAL.search(sql):
        return None
    try:
        return _added_literal(_tree(sql))
    except pglast.parser.ParseError:
        return None


def _added_literal(node: ast.Node | None) -> str | None:
    if not isinstance(node, ast.AlterEnumStmt) or node.newVal is None or node.oldVal:
        return None
    return "'" + node.newVal.replace("'", "''") + "'"


def _mark_enum_values_used_later(
    statements: tuple[Statement, ...], nodes: Sequence[ast.Node | None]
) -> tuple[Statement, ...]:
    """Mark `ADD VALUE` statements whose new enum value is used later in the migration.

    `ALTER TYPE … ADD VALUE` may run in a transaction (PostgreSQL 12+), but the new value cannot
    be used before that transaction commits ("unsafe use of new value"). Only then does the
    migration need to run outside a transaction.
    """
    result = list(statements)
    for index, node in enumerate(nodes):
        literal = _added_literal(node)
        if literal is None:
            continue
        if any(literal in later.sql for later in statements[index + 1 :]):
            current = result[index]
            result[index] = Statement(
                index=current.index,
                sql=current.sql,
                line=current.line,
                column=current.column,
                no_transaction=f"ALTER TYPE … ADD VALUE {literal} used later in the same migration",
            )
    return tuple(result)
