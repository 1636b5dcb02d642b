"""SQL text → the tables a statement locks, with which lock level, and what it does to them.

For each statement (parsed with pglast, PostgreSQL's own parser) this module says which tables
it locks and at which level, following the PostgreSQL 15 docs ("Explicit Locking", section
"Table-Level Locks", and each command's page, e.g. ALTER TABLE's notes on lock levels, which
follow `AlterTableGetLockLevel` in src/backend/commands/tablecmds.c); whether it rewrites a
table (a new copy of every row), reads every row under the lock to validate something, or builds
an index. When the text cannot say which tables a statement touches (a `DO` block, a function
call, a trigger, a cascade) the result is marked `uncertain`, with the reason: callers that need
certainty (the backup of touched tables) must then fall back to something safe.

Known limits, on purpose: partitions and inheritance children are locked with their parent but
are not listed (the text does not name them), and the lock a statement takes on a system catalog
is never listed. Pure: text in, values out; it must not touch a database or the filesystem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import pglast
from pglast import ast
from pglast.enums import AlterTableType, ConstrType, DropBehavior, ObjectType, ReindexObjectType
from pglast.stream import RawStream
from pglast.visitors import Visitor

# The eight table-level lock modes, weakest first (PostgreSQL docs, "Table-Level Locks").
ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
LEVELS = (
    ACCESS_SHARE,
    ROW_SHARE,
    ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    EXCLUSIVE,
    ACCESS_EXCLUSIVE,
)


def strength(level: str) -> int:
    """1 (ACCESS SHARE) to 8 (ACCESS EXCLUSIVE): a stronger lock conflicts with more."""
    return LEVELS.index(level) + 1


def blocks_writes(level: str) -> bool:
    """INSERT/UPDATE/DELETE take ROW EXCLUSIVE, which conflicts with SHARE and stronger."""
    return strength(level) >= strength(SHARE)


def blocks_reads(level: str) -> bool:
    """A plain SELECT takes ACCESS SHARE, which conflicts with ACCESS EXCLUSIVE only."""
    return level == ACCESS_EXCLUSIVE


@dataclass(frozen=True, slots=True)
class TableLock:
    """One table a statement locks, and what the statement does to it under that lock."""

    table: str  # schema-qualified when the statement qualifies it, else bare
    level: str  # one of LEVELS
    rewrites: bool = False  # writes a new copy of every row (time and disk ∝ table size)
    scans: bool = False  # reads every row under the lock to validate a constraint
    builds_index: bool = False  # builds an index over every row under the lock
    creates: bool = False  # the statement creates this table: nothing waits for it
    action: str = ""  # what does it, for messages: "ALTER COLUMN status TYPE text"
    caveat: str | None = None  # when the rewrite or scan depends on what the text cannot show


@dataclass(frozen=True, slots=True)
class StatementLocks:
    """Everything one SQL string (one or more statements) locks."""

    locks: tuple[TableLock, ...]
    uncertain: str | None = None  # why other, unnamed tables may be locked or changed

    def lock_on(self, table: str) -> TableLock | None:
        """The lock on `table`, if the statement takes one."""
        return next((lock for lock in self.locks if lock.table == table), None)


@dataclass(frozen=True, slots=True)
class TouchedTables:
    """Tables that a sequence of statements may change, and why that list may be incomplete."""

    tables: tuple[str, ...]
    uncertain: tuple[str, ...]


@cache  # pure, and asked for the same statement by several rules
def analyse(sql: str) -> StatementLocks:
    """The locks `sql` takes; unparseable text is `uncertain`, never an exception."""
    try:
        parsed = pglast.parse_sql(sql)
    except pglast.parser.ParseError as exc:
        return StatementLocks((), uncertain=f"the statement cannot be parsed: {exc.args[0]}")
    effects = _Effects()
    for raw in parsed:
        if raw.stmt is not None:
            _statement(raw.stmt, effects)
    return effects.result()


def touched_tables(statements: Sequence[str]) -> TouchedTables:
    """Existing tables the statements may change, in order of first appearance.

    "Change" means any lock stronger than the two that only read (ACCESS SHARE, ROW SHARE).
    Tables that an earlier (or the same) statement creates are left out: they did not exist
    before, so there is nothing of them to keep.
    """
    created: set[str] = set()
    tables: list[str] = []
    uncertain: list[str] = []
    for number, sql in enumerate(statements, start=1):
        result = analyse(sql)
        if result.uncertain:
            uncertain.append(f"statement {number}: {result.uncertain}")
        created.update(lock.table for lock in result.locks if lock.creates)
        for lock in result.locks:
            reads_only = strength(lock.level) <= strength(ROW_SHARE)
            if reads_only or lock.table in created or lock.table in tables:
                continue
            tables.append(lock.table)
    return TouchedTables(tuple(tables), tuple(uncertain))


# --- collecting effects -----------------------------------------------------------------------


class _Effects:
    """Accumulates locks (strongest level wins, flags are or-ed) and uncertainty reasons."""

    def __init__(self) -> None:
        self._locks: dict[str, TableLock] = {}
        self._reasons: list[str] = []

    def lock(self, lock: TableLock) -> None:
        current = self._locks.get(lock.table)
        self._locks[lock.table] = lock if current is None else _merge(current, lock)

    def uncertain(self, reason: str) -> None:
        if reason not in self._reasons:
            self._reasons.append(reason)

    def result(self) -> StatementLocks:
        return StatementLocks(tuple(self._locks.values()), "; ".join(self._reasons) or None)


def _merge(a: TableLock, b: TableLock) -> TableLock:
    """Two effects on one table: the stronger level, every flag, the most telling action."""
    level = a.level if strength(a.level) >= strength(b.level) else b.level

    def weight(lock: TableLock) -> int:
        return 4 * lock.rewrites + 2 * lock.scans + lock.builds_index

    lead = a if weight(a) >= weight(b) else b
    return replace(
        lead,
        level=level,
        rewrites=a.rewrites or b.rewrites,
        scans=a.scans or b.scans,
        builds_index=a.builds_index or b.builds_index,
        creates=a.creates or b.creates,
        action=lead.action or a.action or b.action,
        caveat=lead.caveat if weight(lead) else (a.caveat or b.caveat),
    )


def _name(rv: ast.RangeVar | None) -> str | None:
    if rv is None or not rv.relname:
        return None
    return f"{rv.schemaname}.{rv.relname}" if rv.schemaname else rv.relname


def _qualified(parts: Iterable[object]) -> str:
    return ".".join(getattr(part, "sval", str(part)) for part in parts)


# --- statements -------------------------------------------------------------------------------


_Handler = Callable[[Any, _Effects], None]


def _statement(node: ast.Node, effects: _Effects) -> None:
    handler = _HANDLERS.get(type(node))
    if handler is not None:
        handler(node, effects)
        return
    if isinstance(node, _NO_TABLES):
        return
    effects.uncertain(f"hmig does not know which tables {_kind(node)} locks")


def _kind(node: ast.Node) -> str:
    return type(node).__name__.removesuffix("Stmt") + " statement"


def _alter_table(node: ast.AlterTableStmt, effects: _Effects) -> None:
    """ALTER TABLE / INDEX / VIEW / MATERIALIZED VIEW: the strongest level of its subcommands."""
    if node.objtype == ObjectType.OBJECT_TYPE:
        return  # ALTER TYPE on a composite type: no table (typed tables are not named)
    table = _name(node.relation)
    if table is None:
        return
    for cmd in node.cmds or ():
        if isinstance(cmd, ast.AlterTableCmd):
            _subcommand(cmd, table, effects)


def _subcommand(cmd: ast.AlterTableCmd, table: str, effects: _Effects) -> None:
    subtype = cmd.subtype
    level = _subcommand_level(cmd)
    action = _ACTIONS.get(subtype, "ALTER TABLE") if subtype is not None else "ALTER TABLE"
    column = cmd.name or ""
    base = TableLock(table, level, action=action.format(column=column, name=column))
    if subtype == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        _add_column(cmd.def_, table, level, effects)
        return
    if subtype == AlterTableType.AT_AlterColumnType and isinstance(cmd.def_, ast.ColumnDef):
        effects.lock(_alter_type(cmd.def_, table, column))
        return
    if subtype == AlterTableType.AT_SetNotNull:
        # A valid CHECK (col IS NOT NULL) lets PostgreSQL 12+ skip the scan (ALTER TABLE docs).
        caveat = f"skipped when a valid CHECK ({column} IS NOT NULL) constraint already exists"
        effects.lock(replace(base, scans=True, caveat=caveat))
        return
    if subtype == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
        _add_constraint(cmd.def_, table, effects)
        return
    if subtype == AlterTableType.AT_ValidateConstraint:
        effects.lock(replace(base, scans=True))
        return
    if subtype in _REWRITING:
        effects.lock(replace(base, rewrites=True))
        return
    if subtype in (AlterTableType.AT_AttachPartition, AlterTableType.AT_DetachPartition):
        _partition(cmd, table, level, effects)
        return
    if subtype == AlterTableType.AT_DropColumn and cmd.behavior == DropBehavior.DROP_CASCADE:
        effects.uncertain("DROP COLUMN … CASCADE also drops objects that depend on the column")
    effects.lock(base)


def _subcommand_level(cmd: ast.AlterTableCmd) -> str:
    """`AlterTableGetLockLevel` (tablecmds.c), as the ALTER TABLE docs describe it."""
    subtype = cmd.subtype
    if subtype in _SUE_SUBCOMMANDS:
        return SHARE_UPDATE_EXCLUSIVE
    if subtype in _TRIGGER_SUBCOMMANDS:
        return SHARE_ROW_EXCLUSIVE
    if subtype == AlterTableType.AT_AddConstraint:
        # "We add triggers to both tables when we add a Foreign Key, so the lock level must be
        # at least as strong as CREATE TRIGGER" (tablecmds.c).
        foreign = isinstance(cmd.def_, ast.Constraint) and (
            cmd.def_.contype == ConstrType.CONSTR_FOREIGN
        )
        return SHARE_ROW_EXCLUSIVE if foreign else ACCESS_EXCLUSIVE
    if subtype in (AlterTableType.AT_SetRelOptions, AlterTableType.AT_ResetRelOptions):
        names = {getattr(d, "defname", "") or "" for d in cmd.def_ or ()}
        return (
            SHARE_UPDATE_EXCLUSIVE
            if names and all(_light_option(n) for n in names)
            else (ACCESS_EXCLUSIVE)
        )
    if subtype == AlterTableType.AT_DetachPartition:
        concurrent = bool(getattr(cmd.def_, "concurrent", False))
        return SHARE_UPDATE_EXCLUSIVE if concurrent else ACCESS_EXCLUSIVE
    return ACCESS_EXCLUSIVE


def _light_option(name: str) -> bool:
    """Storage parameters set under SHARE UPDATE EXCLUSIVE (ALTER TABLE docs, SET (…))."""
    bare = name.split(".")[-1]
    return bare in _SUE_RELOPTIONS or bare.startswith("autovacuum_")


def _add_column(column: ast.ColumnDef, table: str, level: str, effects: _Effects) -> None:
    """ADD COLUMN rewrites the table when its default is volatile (PostgreSQL 11+).

    A non-volatile default is stored once in the catalog ("fast default"); a volatile one
    (random(), gen_random_uuid(), nextval() of a serial, a STORED generated or identity column)
    is computed for every existing row, which rewrites the table (ALTER TABLE docs, Notes).
    """
    name = column.colname or ""
    constraints = [c for c in column.constraints or () if isinstance(c, ast.Constraint)]
    kinds = {c.contype for c in constraints}
    type_name = _type_name(column.typeName)
    default = next(
        (c.raw_expr for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None
    )
    rewrites = False
    caveat: str | None = None
    why = ""
    if type_name in _SERIAL_TYPES:
        rewrites, why = True, f" of type {type_name}"
    elif ConstrType.CONSTR_IDENTITY in kinds:
        rewrites, why = True, " GENERATED AS IDENTITY"
    elif any(
        c.contype == ConstrType.CONSTR_GENERATED and c.generated_kind != "v" for c in constraints
    ):
        rewrites, why = True, " GENERATED ALWAYS AS … STORED"
    elif default is not None:
        volatility = _volatility(default)
        if volatility == "volatile":
            rewrites, why = True, " with a volatile DEFAULT"
        elif volatility is not None:
            rewrites, why = True, f" with DEFAULT {volatility}()"
            caveat = (
                f"only if {volatility}() is volatile, as functions are unless declared "
                "STABLE or IMMUTABLE"
            )
    not_null = ConstrType.CONSTR_NOTNULL in kinds or bool(column.is_not_null)
    if not_null and default is None and not rewrites:
        why = " NOT NULL without a DEFAULT"  # fails on a table with rows, after a scan
    validates = (
        ConstrType.CONSTR_CHECK in kinds
        or ConstrType.CONSTR_FOREIGN in kinds
        or (not_null and default is None and not rewrites)
    )
    builds = bool(kinds & {ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE})
    effects.lock(
        TableLock(
            table,
            level,
            rewrites=rewrites,
            scans=validates and not rewrites,
            builds_index=builds,
            action=f"ADD COLUMN {name}{why}",
            caveat=caveat,
        )
    )
    for constraint in constraints:
        if constraint.contype == ConstrType.CONSTR_FOREIGN:
            _referenced(constraint, table, effects, scans=False)


def _alter_type(column: ast.ColumnDef, table: str, name: str) -> TableLock:
    """ALTER COLUMN … TYPE rewrites, except for binary-coercible changes (ALTER TABLE, Notes)."""
    type_name = _type_name(column.typeName)
    caveat = None
    if column.raw_default is None and type_name in _MAYBE_COERCIBLE:
        caveat = (
            "no rewrite when the change is binary-coercible (varchar(n) → varchar(m ≥ n) or "
            "text, numeric gaining precision), though indexes on the column are rebuilt"
        )
    shown = RawStream()(column.typeName) if column.typeName is not None else "another type"
    return TableLock(
        table,
        ACCESS_EXCLUSIVE,
        rewrites=True,
        action=f"ALTER COLUMN {name} TYPE {shown}",
        caveat=caveat,
    )


def _add_constraint(constraint: ast.Constraint, table: str, effects: _Effects) -> None:
    """ADD CONSTRAINT: CHECK and FOREIGN KEY scan unless NOT VALID; keys build an index."""
    name = f" {constraint.conname}" if constraint.conname else ""
    validated = not constraint.skip_validation
    kind = constraint.contype
    label = " without NOT VALID" if validated else " NOT VALID"
    if not validated and not constraint.is_enforced and kind != ConstrType.CONSTR_NOTNULL:
        label = " NOT ENFORCED"  # PostgreSQL 18: never checked at all
    if kind == ConstrType.CONSTR_FOREIGN:
        action = f"ADD CONSTRAINT{name} FOREIGN KEY{label}"
        effects.lock(TableLock(table, SHARE_ROW_EXCLUSIVE, scans=validated, action=action))
        _referenced(constraint, table, effects, scans=validated)
        return
    if kind in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_EXCLUSION):
        words = {
            ConstrType.CONSTR_PRIMARY: "PRIMARY KEY",
            ConstrType.CONSTR_UNIQUE: "UNIQUE",
            ConstrType.CONSTR_EXCLUSION: "EXCLUDE",
        }[kind]
        using_index = bool(constraint.indexname)
        suffix = f" USING INDEX {constraint.indexname}" if using_index else ""
        effects.lock(
            TableLock(
                table,
                ACCESS_EXCLUSIVE,
                builds_index=not using_index,
                action=f"ADD CONSTRAINT{name} {words}{suffix}",
            )
        )
        return
    words = "NOT NULL" if kind == ConstrType.CONSTR_NOTNULL else "CHECK"
    action = f"ADD CONSTRAINT{name} {words}{label}"
    effects.lock(TableLock(table, ACCESS_EXCLUSIVE, scans=validated, action=action))


def _referenced(constraint: ast.Constraint, table: str, effects: _Effects, *, scans: bool) -> None:
    """The referenced table of a foreign key: SHARE ROW EXCLUSIVE, as on the referencing one."""
    target = _name(constraint.pktable)
    if target is None or target == table:
        return
    effects.lock(
        TableLock(target, SHARE_ROW_EXCLUSIVE, scans=scans, action=f"FOREIGN KEY from {table}")
    )


def _partition(cmd: ast.AlterTableCmd, table: str, level: str, effects: _Effects) -> None:
    """ATTACH: SHARE UPDATE EXCLUSIVE on the parent, ACCESS EXCLUSIVE and a scan of the partition.

    DETACH: ACCESS EXCLUSIVE on both, or SHARE UPDATE EXCLUSIVE on both with CONCURRENTLY
    (ALTER TABLE docs, ATTACH PARTITION and DETACH PARTITION).
    """
    partition = _name(getattr(cmd.def_, "name", None))
    if cmd.subtype == AlterTableType.AT_AttachPartition:
        effects.lock(TableLock(table, level, action=f"ATTACH PARTITION {partition}"))
        if partition is not None:
            effects.lock(
                TableLock(
                    partition,
                    ACCESS_EXCLUSIVE,
                    scans=True,
                    action=f"ATTACH PARTITION {partition}",
                    caveat="skipped when a valid CHECK constraint already implies the bound",
                )
            )
        return
    action = f"DETACH PARTITION {partition}" + (
        " CONCURRENTLY" if level == SHARE_UPDATE_EXCLUSIVE else ""
    )
    effects.lock(TableLock(table, level, action=action))
    if partition is not None:
        effects.lock(TableLock(partition, level, action=action))


def _create_table(node: ast.CreateStmt, effects: _Effects) -> None:
    """A new table locks nothing anyone waits for, but its parents and referenced tables."""
    table = _name(node.relation)
    if table is None:
        return
    effects.lock(TableLock(table, ACCESS_EXCLUSIVE, creates=True, action="CREATE TABLE"))
    for parent in node.inhRelations or ():
        name = _name(parent) if isinstance(parent, ast.RangeVar) else None
        if name is None:
            continue
        if node.partbound is not None:
            # "Creating a partition using PARTITION OF requires taking an ACCESS EXCLUSIVE lock
            # on the parent" (docs, "Partition Maintenance").
            effects.lock(
                TableLock(name, ACCESS_EXCLUSIVE, action=f"CREATE TABLE {table} PARTITION OF")
            )
        else:
            effects.lock(
                TableLock(name, SHARE_UPDATE_EXCLUSIVE, action=f"CREATE TABLE {table} INHERITS")
            )
    for element in node.tableElts or ():
        if isinstance(element, ast.TableLikeClause):
            source = _name(element.relation)
            if source is not None:
                effects.lock(TableLock(source, ACCESS_SHARE, action=f"CREATE TABLE {table} LIKE"))
        constraints: Iterable[object] = (
            element.constraints or () if isinstance(element, ast.ColumnDef) else (element,)
        )
        for constraint in constraints:
            if isinstance(constraint, ast.Constraint) and (
                constraint.contype == ConstrType.CONSTR_FOREIGN
            ):
                _referenced(constraint, table, effects, scans=False)


def _create_index(node: ast.IndexStmt, effects: _Effects) -> None:
    """CREATE INDEX: SHARE (blocks writes); CONCURRENTLY: SHARE UPDATE EXCLUSIVE (docs)."""
    table = _name(node.relation)
    if table is None:
        return
    unique = "UNIQUE " if node.unique else ""
    if node.concurrent:
        action = f"CREATE {unique}INDEX CONCURRENTLY"
        effects.lock(TableLock(table, SHARE_UPDATE_EXCLUSIVE, builds_index=True, action=action))
    else:
        action = f"CREATE {unique}INDEX without CONCURRENTLY"
        effects.lock(TableLock(table, SHARE, builds_index=True, action=action))


def _reindex(node: ast.ReindexStmt, effects: _Effects) -> None:
    """REINDEX TABLE: SHARE on the table; REINDEX INDEX: ACCESS EXCLUSIVE on the index (docs)."""
    concurrent = any(getattr(p, "defname", None) == "concurrently" for p in node.params or ())
    name = _name(node.relation)
    if (
        node.kind
        not in (ReindexObjectType.REINDEX_OBJECT_TABLE, ReindexObjectType.REINDEX_OBJECT_INDEX)
        or name is None
    ):
        effects.uncertain("REINDEX of a schema, database or the system catalogs names no table")
        return
    if concurrent:
        effects.lock(
            TableLock(
                name, SHARE_UPDATE_EXCLUSIVE, builds_index=True, action="REINDEX CONCURRENTLY"
            )
        )
    elif node.kind == ReindexObjectType.REINDEX_OBJECT_TABLE:
        effects.lock(
            TableLock(name, SHARE, builds_index=True, action="REINDEX TABLE without CONCURRENTLY")
        )
    else:
        effects.lock(
            TableLock(
                name,
                ACCESS_EXCLUSIVE,
                builds_index=True,
                action="REINDEX INDEX without CONCURRENTLY",
            )
        )


def _cluster(node: ast.ClusterStmt, effects: _Effects) -> None:
    """CLUSTER rewrites the table under ACCESS EXCLUSIVE (docs, CLUSTER)."""
    table = _name(node.relation)
    if table is None:
        effects.uncertain("CLUSTER without a table rewrites every table clustered before")
        return
    effects.lock(TableLock(table, ACCESS_EXCLUSIVE, rewrites=True, action="CLUSTER"))


def _vacuum(node: ast.VacuumStmt, effects: _Effects) -> None:
    """VACUUM FULL rewrites under ACCESS EXCLUSIVE; VACUUM, ANALYZE: SHARE UPDATE EXCLUSIVE."""
    full = any(getattr(o, "defname", None) == "full" for o in node.options or ())
    word = "VACUUM" if node.is_vacuumcmd else "ANALYZE"
    tables = [_name(getattr(r, "relation", None)) for r in node.rels or ()]
    if full and not tables:
        effects.uncertain("VACUUM FULL without a table rewrites every table of the database")
    for table in tables:
        if table is None:
            continue
        if full:
            effects.lock(TableLock(table, ACCESS_EXCLUSIVE, rewrites=True, action="VACUUM FULL"))
        else:
            effects.lock(TableLock(table, SHARE_UPDATE_EXCLUSIVE, action=word))


def _lock_table(node: ast.LockStmt, effects: _Effects) -> None:
    """LOCK TABLE: the mode named (ACCESS EXCLUSIVE when none is), held until commit."""
    mode = node.mode if isinstance(node.mode, int) and 1 <= node.mode <= len(LEVELS) else 8
    level = LEVELS[mode - 1]
    for relation in node.relations or ():
        table = _name(relation)
        if table is not None:
            effects.lock(TableLock(table, level, action=f"LOCK TABLE {table} IN {level} MODE"))


def _truncate(node: ast.TruncateStmt, effects: _Effects) -> None:
    for relation in node.relations or ():
        table = _name(relation)
        if table is not None:
            effects.lock(TableLock(table, ACCESS_EXCLUSIVE, action="TRUNCATE"))
    if node.behavior == DropBehavior.DROP_CASCADE:
        effects.uncertain("TRUNCATE … CASCADE also empties every table that references these")


def _drop(node: ast.DropStmt, effects: _Effects) -> None:
    """DROP TABLE/INDEX/…: ACCESS EXCLUSIVE; DROP TRIGGER/POLICY/RULE lock their table."""
    kind = node.removeType
    if node.behavior == DropBehavior.DROP_CASCADE:
        effects.uncertain("DROP … CASCADE also drops objects that depend on it, in other tables")
    if kind == ObjectType.OBJECT_EXTENSION:
        effects.uncertain("DROP EXTENSION drops the extension's own tables and objects")
    for obj in node.objects or ():
        parts = list(obj) if isinstance(obj, tuple | list) else [obj]
        if kind in _DROPPED_RELATIONS:
            level = SHARE_UPDATE_EXCLUSIVE if node.concurrent else ACCESS_EXCLUSIVE
            word = _DROPPED_RELATIONS[kind] + (" CONCURRENTLY" if node.concurrent else "")
            effects.lock(TableLock(_qualified(parts), level, action=word))
        elif kind in _DROPPED_ON_TABLE and len(parts) >= 2:
            word = _DROPPED_ON_TABLE[kind]
            table = _qualified(parts[:-1])
            effects.lock(
                TableLock(table, ACCESS_EXCLUSIVE, action=f"{word} {_qualified(parts[-1:])}")
            )


def _rename(node: ast.RenameStmt, effects: _Effects) -> None:
    """RENAME: ACCESS EXCLUSIVE; an index rename takes SHARE UPDATE EXCLUSIVE (PostgreSQL 12+)."""
    table = _name(node.relation)
    if table is None:
        return
    kind = node.renameType
    if kind == ObjectType.OBJECT_INDEX:
        effects.lock(TableLock(table, SHARE_UPDATE_EXCLUSIVE, action="ALTER INDEX … RENAME"))
    elif kind in _RENAMED_ON_TABLE:
        effects.lock(TableLock(table, ACCESS_EXCLUSIVE, action=_RENAMED_ON_TABLE[kind]))


def _set_schema(node: ast.AlterObjectSchemaStmt, effects: _Effects) -> None:
    table = _name(node.relation)
    if table is not None and node.objectType in _RELATION_KINDS:
        effects.lock(TableLock(table, ACCESS_EXCLUSIVE, action="SET SCHEMA"))


def _on_table(level: str, action: str, attribute: str) -> _Handler:
    """A handler for statements that lock the one table in `attribute` at `level`."""

    def handler(node: ast.Node, effects: _Effects) -> None:
        table = _name(getattr(node, attribute, None))
        if table is not None:
            effects.lock(TableLock(table, level, action=action))

    return handler


def _create_trigger(node: ast.CreateTrigStmt, effects: _Effects) -> None:
    """CREATE TRIGGER takes SHARE ROW EXCLUSIVE; what its function changes cannot be known."""
    table = _name(node.relation)
    if table is None:
        return
    effects.lock(TableLock(table, SHARE_ROW_EXCLUSIVE, action="CREATE TRIGGER"))
    function = _qualified(node.funcname or ())
    effects.uncertain(f"trigger function {function}() may change other tables on writes to {table}")


def _comment(node: ast.CommentStmt, effects: _Effects) -> None:
    """COMMENT ON takes SHARE UPDATE EXCLUSIVE on its object (docs, "Table-Level Locks")."""
    parts: list[object] = list(node.object) if isinstance(node.object, tuple | list) else []
    if node.objtype in _RELATION_KINDS and parts:
        table = _qualified(parts)
    elif (
        node.objtype in (ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABCONSTRAINT)
        and len(parts) >= 2
    ):
        table = _qualified(parts[:-1])
    else:
        return
    effects.lock(TableLock(table, SHARE_UPDATE_EXCLUSIVE, action="COMMENT ON"))


def _create_statistics(node: ast.CreateStatsStmt, effects: _Effects) -> None:
    for relation in node.relations or ():
        table = _name(relation) if isinstance(relation, ast.RangeVar) else None
        if table is not None:
            effects.lock(TableLock(table, SHARE_UPDATE_EXCLUSIVE, action="CREATE STATISTICS"))


def _refresh(node: ast.RefreshMatViewStmt, effects: _Effects) -> None:
    """REFRESH MATERIALIZED VIEW: ACCESS EXCLUSIVE and a new heap; CONCURRENTLY: EXCLUSIVE."""
    view = _name(node.relation)
    if view is None:
        return
    if node.concurrent:
        effects.lock(TableLock(view, EXCLUSIVE, action="REFRESH MATERIALIZED VIEW CONCURRENTLY"))
    else:
        action = "REFRESH MATERIALIZED VIEW without CONCURRENTLY"
        effects.lock(TableLock(view, ACCESS_EXCLUSIVE, rewrites=True, action=action))


def _create_view(node: ast.ViewStmt, effects: _Effects) -> None:
    view = _name(node.view)
    if view is None:
        return
    effects.lock(TableLock(view, ACCESS_EXCLUSIVE, creates=not node.replace, action="CREATE VIEW"))
    _reads(node.query, effects, skip=(), functions_matter=False)


def _create_table_as(node: ast.CreateTableAsStmt, effects: _Effects) -> None:
    table = _name(node.into.rel if node.into is not None else None)
    if table is not None:
        effects.lock(TableLock(table, ACCESS_EXCLUSIVE, creates=True, action="CREATE TABLE AS"))
    _reads(node.query, effects, skip=(table,), functions_matter=True)


def _select(node: ast.SelectStmt, effects: _Effects) -> None:
    """SELECT reads (ACCESS SHARE; ROW SHARE with FOR UPDATE/SHARE); INTO creates a table."""
    target = _name(node.intoClause.rel) if node.intoClause is not None else None
    if target is not None:
        effects.lock(TableLock(target, ACCESS_EXCLUSIVE, creates=True, action="SELECT INTO"))
    level = ROW_SHARE if node.lockingClause else ACCESS_SHARE
    _reads(node, effects, skip=(target,), functions_matter=True, level=level)


def _dml(attribute: str, word: str) -> _Handler:
    """INSERT/UPDATE/DELETE/MERGE: ROW EXCLUSIVE on the target, ACCESS SHARE on what they read."""

    def handler(node: ast.Node, effects: _Effects) -> None:
        table = _name(getattr(node, attribute, None))
        if table is None:
            return
        effects.lock(TableLock(table, ROW_EXCLUSIVE, action=word))
        _reads(node, effects, skip=(table,), functions_matter=True)
        # Foreign keys with ON DELETE/UPDATE CASCADE and triggers run on other tables, which
        # the text does not name (docs, "Foreign Keys" and "Triggers").
        effects.uncertain(f"triggers and cascading foreign keys on {table} may change other tables")

    return handler


def _copy(node: ast.CopyStmt, effects: _Effects) -> None:
    table = _name(node.relation)
    if node.query is not None:
        _reads(node.query, effects, skip=(), functions_matter=True)
    if table is None:
        return
    if node.is_from:
        effects.lock(TableLock(table, ROW_EXCLUSIVE, action="COPY FROM"))
        effects.uncertain(f"triggers on {table} may change other tables")
    else:
        effects.lock(TableLock(table, ACCESS_SHARE, action="COPY TO"))


def _do(node: ast.Node, effects: _Effects) -> None:
    effects.uncertain(f"a {_WORDS.get(type(node), 'statement')} can lock and change any table")


def _alter_domain(node: ast.AlterDomainStmt, effects: _Effects) -> None:
    if node.subtype in ("C", "V", "N"):
        effects.uncertain("a domain constraint is checked in every table column of that domain")


def _create_schema(node: ast.CreateSchemaStmt, effects: _Effects) -> None:
    for element in node.schemaElts or ():
        _statement(element, effects)


def _move_all(node: ast.Node, effects: _Effects) -> None:
    effects.uncertain("ALTER TABLE ALL IN TABLESPACE moves tables the text does not name")


def _explain(node: ast.ExplainStmt, effects: _Effects) -> None:
    analyze = any(getattr(o, "defname", None) == "analyze" for o in node.options or ())
    if analyze and node.query is not None:
        _statement(node.query, effects)
    elif node.query is not None:
        _reads(node.query, effects, skip=(), functions_matter=False)


# --- reading other tables ---------------------------------------------------------------------


class _Reads(Visitor):
    """Every RangeVar (minus CTE names) and every function call of a query tree."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[str] = []
        self.ctes: set[str] = set()
        self.functions: list[str] = []

    def visit_RangeVar(self, ancestors: object, node: ast.RangeVar) -> None:
        name = _name(node)
        if name is not None and name not in self.tables:
            self.tables.append(name)

    def visit_CommonTableExpr(self, ancestors: object, node: ast.CommonTableExpr) -> None:
        if node.ctename:
            self.ctes.add(node.ctename)

    def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:
        self.functions.append(_qualified(node.funcname or ()))


def _reads(
    node: ast.Node | None,
    effects: _Effects,
    *,
    skip: Iterable[str | None],
    functions_matter: bool,
    level: str = ACCESS_SHARE,
) -> None:
    if node is None:
        return
    visitor = _Reads()
    visitor(node)
    skipped = set(skip)
    for table in visitor.tables:
        if table not in skipped and table not in visitor.ctes:
            effects.lock(TableLock(table, level, action="reads"))
    if functions_matter:
        for function in visitor.functions:
            if not _builtin(function):
                effects.uncertain(f"calls {function}(), which may lock or change other tables")


def _builtin(function: str) -> bool:
    schema, _, bare = function.rpartition(".")
    return schema == "pg_catalog" or (not schema and bare in _BUILTINS)


def _volatility(expr: ast.Node) -> str | None:
    """`volatile`, the name of an unknown function (maybe volatile), or None (not volatile)."""
    visitor = _Reads()
    visitor(expr)
    unknown: str | None = None
    for function in visitor.functions:
        bare = function.rpartition(".")[2]
        if bare in _VOLATILE:
            return "volatile"
        if not _builtin(function) and unknown is None:
            unknown = function
    return unknown


def _type_name(type_name: ast.TypeName | None) -> str:
    names = type_name.names if type_name is not None else None
    return getattr(names[-1], "sval", "") if names else ""


# --- tables -----------------------------------------------------------------------------------


_SUE_SUBCOMMANDS = frozenset(
    {
        AlterTableType.AT_SetStatistics,
        AlterTableType.AT_ClusterOn,
        AlterTableType.AT_DropCluster,
        AlterTableType.AT_SetOptions,
        AlterTableType.AT_ResetOptions,
        AlterTableType.AT_ValidateConstraint,
        AlterTableType.AT_AttachPartition,
        AlterTableType.AT_DetachPartitionFinalize,
    }
)
_TRIGGER_SUBCOMMANDS = frozenset(
    {
        AlterTableType.AT_EnableTrig,
        AlterTableType.AT_EnableAlwaysTrig,
        AlterTableType.AT_EnableReplicaTrig,
        AlterTableType.AT_EnableTrigAll,
        AlterTableType.AT_EnableTrigUser,
        AlterTableType.AT_DisableTrig,
        AlterTableType.AT_DisableTrigAll,
        AlterTableType.AT_DisableTrigUser,
    }
)
# Subcommands that write a new copy of the table (ALTER TABLE docs: SET TABLESPACE moves the
# data files, SET LOGGED/UNLOGGED and SET ACCESS METHOD rewrite it).
_REWRITING = frozenset(
    {
        AlterTableType.AT_SetLogged,
        AlterTableType.AT_SetUnLogged,
        AlterTableType.AT_SetTableSpace,
        AlterTableType.AT_SetAccessMethod,
    }
)
_ACTIONS = {
    AlterTableType.AT_ColumnDefault: "ALTER COLUMN {column} SET DEFAULT",
    AlterTableType.AT_DropNotNull: "ALTER COLUMN {column} DROP NOT NULL",
    AlterTableType.AT_SetNotNull: "ALTER COLUMN {column} SET NOT NULL",
    AlterTableType.AT_SetStatistics: "ALTER COLUMN {column} SET STATISTICS",
    AlterTableType.AT_SetStorage: "ALTER COLUMN {column} SET STORAGE",
    AlterTableType.AT_DropColumn: "DROP COLUMN {column}",
    AlterTableType.AT_DropConstraint: "DROP CONSTRAINT {name}",
    AlterTableType.AT_ValidateConstraint: "VALIDATE CONSTRAINT {name}",
    AlterTableType.AT_ChangeOwner: "OWNER TO",
    AlterTableType.AT_SetLogged: "SET LOGGED",
    AlterTableType.AT_SetUnLogged: "SET UNLOGGED",
    AlterTableType.AT_SetTableSpace: "SET TABLESPACE",
    AlterTableType.AT_SetAccessMethod: "SET ACCESS METHOD",
    AlterTableType.AT_SetRelOptions: "SET (storage parameters)",
    AlterTableType.AT_ResetRelOptions: "RESET (storage parameters)",
    AlterTableType.AT_AddIdentity: "ALTER COLUMN {column} ADD GENERATED AS IDENTITY",
    AlterTableType.AT_EnableTrig: "ENABLE TRIGGER",
    AlterTableType.AT_DisableTrig: "DISABLE TRIGGER",
    AlterTableType.AT_EnableRowSecurity: "ENABLE ROW LEVEL SECURITY",
    AlterTableType.AT_ReplicaIdentity: "REPLICA IDENTITY",
    AlterTableType.AT_AddInherit: "INHERIT",
    AlterTableType.AT_DropInherit: "NO INHERIT",
}
# AlterTableGetRelOptionsLockLevel: these are set under SHARE UPDATE EXCLUSIVE.
_SUE_RELOPTIONS = frozenset(
    {
        "fillfactor",
        "toast_tuple_target",
        "parallel_workers",
        "log_autovacuum_min_duration",
        "vacuum_index_cleanup",
        "vacuum_truncate",
        "user_catalog_table",
    }
)
_SERIAL_TYPES = frozenset({"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})
_MAYBE_COERCIBLE = frozenset({"varchar", "text", "numeric", "varbit", "citext", "timestamptz"})
# Volatile built-ins seen in column defaults (pg_proc.provolatile = 'v'), plus pgcrypto's and
# uuid-ossp's generators.
_VOLATILE = frozenset(
    {
        "random",
        "random_normal",
        "gen_random_uuid",
        "gen_random_bytes",
        "uuidv4",
        "uuidv7",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "nextval",
        "clock_timestamp",
        "timeofday",
        "txid_current",
        "setseed",
    }
)
# Built-in functions that neither lock nor change tables (beyond sequences), unqualified.
_BUILTINS = _VOLATILE | frozenset(
    {
        "now",
        "statement_timestamp",
        "transaction_timestamp",
        "current_setting",
        "set_config",
        "setval",
        "currval",
        "lastval",
        "lower",
        "upper",
        "length",
        "char_length",
        "concat",
        "concat_ws",
        "format",
        "replace",
        "split_part",
        "substr",
        "left",
        "right",
        "lpad",
        "rpad",
        "trim",
        "btrim",
        "ltrim",
        "rtrim",
        "md5",
        "regexp_replace",
        "regexp_match",
        "to_char",
        "to_date",
        "to_number",
        "to_timestamp",
        "date_trunc",
        "date_part",
        "age",
        "make_date",
        "make_interval",
        "make_timestamp",
        "make_timestamptz",
        "timezone",
        "abs",
        "round",
        "floor",
        "ceil",
        "greatest",
        "least",
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "string_agg",
        "json_agg",
        "jsonb_agg",
        "json_build_object",
        "jsonb_build_object",
        "json_build_array",
        "jsonb_build_array",
        "to_json",
        "to_jsonb",
        "jsonb_set",
        "jsonb_strip_nulls",
        "array_length",
        "array_to_string",
        "string_to_array",
        "unnest",
        "generate_series",
        "row_number",
        "rank",
        "dense_rank",
        "encode",
        "decode",
        "pg_advisory_xact_lock",
        "pg_sleep",
    }
)
_DROPPED_RELATIONS = {
    ObjectType.OBJECT_TABLE: "DROP TABLE",
    ObjectType.OBJECT_INDEX: "DROP INDEX",
    ObjectType.OBJECT_VIEW: "DROP VIEW",
    ObjectType.OBJECT_MATVIEW: "DROP MATERIALIZED VIEW",
    ObjectType.OBJECT_FOREIGN_TABLE: "DROP FOREIGN TABLE",
}
_DROPPED_ON_TABLE = {
    ObjectType.OBJECT_TRIGGER: "DROP TRIGGER",
    ObjectType.OBJECT_POLICY: "DROP POLICY",
    ObjectType.OBJECT_RULE: "DROP RULE",
}
_RENAMED_ON_TABLE = {
    ObjectType.OBJECT_TABLE: "RENAME TO",
    ObjectType.OBJECT_VIEW: "RENAME TO",
    ObjectType.OBJECT_MATVIEW: "RENAME TO",
    ObjectType.OBJECT_FOREIGN_TABLE: "RENAME TO",
    ObjectType.OBJECT_COLUMN: "RENAME COLUMN",
    ObjectType.OBJECT_TABCONSTRAINT: "RENAME CONSTRAINT",
    ObjectType.OBJECT_TRIGGER: "ALTER TRIGGER … RENAME",
    ObjectType.OBJECT_POLICY: "ALTER POLICY … RENAME",
    ObjectType.OBJECT_RULE: "ALTER RULE … RENAME",
}
_RELATION_KINDS = frozenset(
    {
        ObjectType.OBJECT_TABLE,
        ObjectType.OBJECT_VIEW,
        ObjectType.OBJECT_MATVIEW,
        ObjectType.OBJECT_FOREIGN_TABLE,
        ObjectType.OBJECT_INDEX,
    }
)
_WORDS = {
    ast.DoStmt: "DO block",
    ast.CallStmt: "CALL of a procedure",
    ast.ExecuteStmt: "EXECUTE of a prepared statement",
    ast.AlterExtensionStmt: "ALTER EXTENSION … UPDATE (its update script)",
}
# Statements that lock no user table: types, functions, schemas, roles, settings, grants.
_NO_TABLES = (
    ast.VariableSetStmt,
    ast.VariableShowStmt,
    ast.CreateFunctionStmt,
    ast.AlterFunctionStmt,
    ast.CreateEnumStmt,
    ast.AlterEnumStmt,
    ast.CompositeTypeStmt,
    ast.CreateDomainStmt,
    ast.DefineStmt,
    ast.CreateExtensionStmt,
    ast.AlterExtensionContentsStmt,
    ast.CreateSeqStmt,
    ast.AlterSeqStmt,
    ast.GrantStmt,
    ast.GrantRoleStmt,
    ast.CreateRoleStmt,
    ast.AlterRoleStmt,
    ast.DropRoleStmt,
    ast.AlterDefaultPrivilegesStmt,
    ast.AlterOwnerStmt,
    ast.CreateCastStmt,
    ast.CreateConversionStmt,
    ast.CreateOpClassStmt,
    ast.CreateOpFamilyStmt,
    ast.CreateEventTrigStmt,
    ast.CreatePublicationStmt,
    ast.AlterPublicationStmt,
    ast.CreateTableSpaceStmt,
    ast.AlterSystemStmt,
    ast.NotifyStmt,
    ast.ListenStmt,
    ast.SecLabelStmt,
    ast.AlterCollationStmt,
    ast.AlterTSConfigurationStmt,
    ast.AlterTSDictionaryStmt,
    ast.CreatedbStmt,
    ast.PrepareStmt,
    ast.DeallocateStmt,
    ast.DiscardStmt,
)
_HANDLERS: dict[type, _Handler] = {
    ast.AlterTableStmt: _alter_table,
    ast.CreateStmt: _create_table,
    ast.IndexStmt: _create_index,
    ast.ReindexStmt: _reindex,
    ast.ClusterStmt: _cluster,
    ast.VacuumStmt: _vacuum,
    ast.LockStmt: _lock_table,
    ast.TruncateStmt: _truncate,
    ast.DropStmt: _drop,
    ast.RenameStmt: _rename,
    ast.AlterObjectSchemaStmt: _set_schema,
    ast.CreateTrigStmt: _create_trigger,
    ast.CommentStmt: _comment,
    ast.CreateStatsStmt: _create_statistics,
    ast.RefreshMatViewStmt: _refresh,
    ast.ViewStmt: _create_view,
    ast.CreateTableAsStmt: _create_table_as,
    ast.SelectStmt: _select,
    ast.InsertStmt: _dml("relation", "INSERT"),
    ast.UpdateStmt: _dml("relation", "UPDATE"),
    ast.DeleteStmt: _dml("relation", "DELETE"),
    ast.MergeStmt: _dml("relation", "MERGE"),
    ast.CopyStmt: _copy,
    ast.DoStmt: _do,
    ast.CallStmt: _do,
    ast.ExecuteStmt: _do,
    ast.AlterExtensionStmt: _do,
    ast.AlterDomainStmt: _alter_domain,
    ast.CreateSchemaStmt: _create_schema,
    ast.AlterTableMoveAllStmt: _move_all,
    ast.ExplainStmt: _explain,
    # CREATE POLICY / ALTER POLICY / CREATE RULE take ACCESS EXCLUSIVE on their table.
    ast.CreatePolicyStmt: _on_table(ACCESS_EXCLUSIVE, "CREATE POLICY", "table"),
    ast.AlterPolicyStmt: _on_table(ACCESS_EXCLUSIVE, "ALTER POLICY", "table"),
    ast.RuleStmt: _on_table(ACCESS_EXCLUSIVE, "CREATE RULE", "relation"),
}
