"""Catalog rows → `SchemaSnapshot`: the schema as comparable values, the same on every major.

A snapshot is a set of `SchemaObject`s keyed by a stable identity in words (`table
public.patients`, `column public.patients.phone`, `index public.idx_x`), each with normalised
attributes (`type`, `default`, `definition`, `body`, …). Normalised means: what PostgreSQL
itself treats as the same reads the same, whichever server or client wrote it. OIDs never
appear; constraints, indexes and policies are keyed by name, so their order does not matter;
line endings and spacing in bodies and comments do not count; PostgreSQL 18's NOT NULL entries
in `pg_constraint` are not read (the column's `attnotnull` says it on every major); a view's
definition is compared in the form PostgreSQL 16+ prints (15 table-qualifies every column of a
single-table view, 16 does not: its stored views lost the OLD/NEW range-table entries). Names
are schema-qualified because the adapter reads the catalog with `search_path = pg_catalog`, so
a target's search_path never changes the text. hmig's and node-pg-migrate's own tables are left
out. Pure: rows in, values out; this module must not read a database or a file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pglast
from pglast import ast
from pglast.enums import SetOperation
from pglast.stream import RawStream
from pglast.visitors import Skip, Visitor

Row = Mapping[str, Any]
"""One catalog row, by column name (the adapter's `catalog_*.sql` queries)."""

MIGRATING_ROLE = "(the role that runs the migrations)"
"""Owner or grantee shown for the role each side was migrated by, so that roles compare."""


@dataclass(frozen=True, slots=True)
class SchemaObject:
    """One object of the schema and its normalised attributes."""

    kind: str  # "table", "column", "index", "constraint", "view", "function", "enum", …
    name: str  # schema-qualified: `public.patients`, `public.patients.phone`, `public.f(integer)`
    attributes: tuple[tuple[str, str], ...] = ()  # (label, value), labels in words
    parent: str | None = None  # identity of the object it belongs to (its table)

    @property
    def identity(self) -> str:
        """`column public.patients.phone`: how reports name it, and the snapshot's key."""
        return f"{self.kind} {self.name}"

    def attribute(self, label: str) -> str | None:
        """The value of one attribute, or None when the object does not have it."""
        return dict(self.attributes).get(label)


@dataclass(frozen=True, slots=True)
class SchemaSnapshot:
    """The managed schemas of one database, as `SchemaObject`s keyed by identity."""

    server_major: int
    schemas: tuple[str, ...]
    objects: Mapping[str, SchemaObject] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CatalogRows:
    """What the adapter read from `pg_catalog`, one tuple of rows per query."""

    tables: tuple[Row, ...] = ()
    columns: tuple[Row, ...] = ()
    constraints: tuple[Row, ...] = ()
    indexes: tuple[Row, ...] = ()
    views: tuple[Row, ...] = ()
    functions: tuple[Row, ...] = ()
    triggers: tuple[Row, ...] = ()
    sequences: tuple[Row, ...] = ()
    types: tuple[Row, ...] = ()
    extensions: tuple[Row, ...] = ()
    policies: tuple[Row, ...] = ()


@dataclass(frozen=True, slots=True)
class Scope:
    """What to keep: the managed schemas, the history tables to leave out, and privileges."""

    schemas: tuple[str, ...] = ("public",)
    history_schema: str = "public"
    history_table: str = "pgmigrations"
    privileges: bool = False  # also keep ownership and grants
    migrating_role: str | None = None  # this side's migrating role, shown as MIGRATING_ROLE

    def is_tool_table(self, schema: str, table: str) -> bool:
        """node-pg-migrate's history table, and hmig's own `hmig_*` tables beside it."""
        return schema == self.history_schema and (
            table == self.history_table or table.startswith("hmig_")
        )


def build(rows: CatalogRows, *, server_major: int, scope: Scope) -> SchemaSnapshot:
    """The snapshot of one database from its catalog rows."""
    builders: tuple[tuple[Callable[[Row, Scope], SchemaObject | None], tuple[Row, ...]], ...] = (
        (_table, rows.tables),
        (_column, rows.columns),
        (_constraint, rows.constraints),
        (_index, rows.indexes),
        (_view, rows.views),
        (_function, rows.functions),
        (_trigger, rows.triggers),
        (_sequence, rows.sequences),
        (_type, rows.types),
        (_extension, rows.extensions),
        (_policy, rows.policies),
    )
    objects: dict[str, SchemaObject] = {}
    for make, batch in builders:
        for row in batch:
            made = make(row, scope)
            if made is not None:
                objects[made.identity] = made
    return SchemaSnapshot(server_major=server_major, schemas=scope.schemas, objects=objects)


# --- normalisation ----------------------------------------------------------------------------


def normalise_text(value: str) -> str:
    """Line endings and trailing spaces do not count (a CRLF checkout of the same file)."""
    lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def normalise_body(value: str) -> str:
    """A function body with every run of whitespace made one space.

    PostgreSQL stores a body as written, so re-indenting it, or checking it out with CRLF line
    endings, changes `prosrc` without changing the function. The price: an edit that only
    changes whitespace inside a string literal of the body is not seen.
    """
    return " ".join(value.split())


def sql_standard_body(functiondef: str) -> str:
    """The body of a SQL-standard function (`BEGIN ATOMIC … END` or `RETURN …`).

    `pg_get_functiondef` prints the header and one attribute per line, each indented; the body
    starts at the first line that is not.
    """
    lines = normalise_text(functiondef).split("\n")
    for index, line in enumerate(lines):
        if index and line.startswith(("BEGIN ATOMIC", "RETURN ")):
            return normalise_body("\n".join(lines[index:]))
    return normalise_body(functiondef)


def normalise_view(definition: str) -> str:
    """A view's query in one canonical form, whichever major printed it.

    PostgreSQL 15 and older keep OLD and NEW entries in a view's range table, so
    `pg_get_viewdef` qualifies every column (`users.id`); 16 dropped them (commit "Get rid of
    the "new" and "old" entries in a view's rangetable") and prints a single-relation query's
    columns bare (`id`), as seen on 15.20 and 18.6. The qualification is dropped here, at the
    top level of a query with one FROM item (inside subqueries, CTEs and set operations both
    print it), and the query is printed again by pglast, so spacing does not count either.
    """
    try:
        statements = pglast.parse_sql(definition)
    except pglast.parser.ParseError:
        return normalise_body(definition)
    if len(statements) == 1 and isinstance(statements[0].stmt, ast.SelectStmt):
        _unqualify_single_relation(statements[0].stmt)
    return str(RawStream()(statements))


def _unqualify_single_relation(select: ast.SelectStmt) -> None:
    from_items = select.fromClause or ()
    if select.op != SetOperation.SETOP_NONE or len(from_items) != 1:
        return
    only = from_items[0]
    alias = getattr(only, "alias", None)
    if alias is not None:
        refname = alias.aliasname
    elif isinstance(only, ast.RangeVar):
        refname = only.relname
    else:
        return
    _Unqualify(refname)(select)


class _Unqualify(Visitor):
    """Drops `refname.` from column references outside subqueries, CTEs and FROM subselects."""

    def __init__(self, refname: str) -> None:
        self.refname = refname

    def visit_SubLink(self, ancestors: object, node: ast.SubLink) -> object:
        # `id IN (SELECT …)`: the left side is this query's, the subquery is printed qualified.
        if node.testexpr is not None:
            self(node.testexpr)
        return Skip

    def visit_RangeSubselect(self, ancestors: object, node: object) -> object:
        return Skip

    def visit_CommonTableExpr(self, ancestors: object, node: object) -> object:
        return Skip

    def visit_ColumnRef(self, ancestors: object, node: ast.ColumnRef) -> None:
        fields = node.fields or ()
        if (
            len(fields) == 2
            and isinstance(fields[0], ast.String)
            and fields[0].sval == self.refname
            and isinstance(fields[1], ast.String)
        ):
            node.fields = fields[1:]


# --- one builder per catalog query ------------------------------------------------------------


def _table(row: Row, scope: Scope) -> SchemaObject | None:
    schema, name = row["schema"], row["name"]
    if scope.is_tool_table(schema, name):
        return None
    partition_of = row.get("partition_of")
    attributes = [
        ("kind", _RELKINDS.get(row["relkind"], row["relkind"])),
        ("persistence", "UNLOGGED" if row.get("persistence") == "u" else "logged"),
        ("row level security", "enabled" if row.get("row_security") else "disabled"),
        ("forced row level security", "forced" if row.get("force_row_security") else "not forced"),
        ("partition key", row.get("partition_key")),
        (
            "partition of",
            f"{partition_of} {row.get('partition_bound') or ''}".strip() if partition_of else None,
        ),
        ("inherits", _joined(row.get("inherits"))),
        ("storage parameters", _joined(sorted(row.get("options") or ()))),
        ("comment", _comment(row)),
        *_privileges(row, scope),
    ]
    return _object("table", f"{schema}.{name}", attributes)


_RELKINDS = {"r": "table", "p": "partitioned table", "f": "foreign table"}


def _column(row: Row, scope: Scope) -> SchemaObject | None:
    schema, table = row["schema"], row["table_name"]
    if scope.is_tool_table(schema, table):
        return None
    generated = {"s": "STORED", "v": "VIRTUAL"}.get(row.get("generated") or "")
    attributes = [
        ("type", row["type"]),
        ("default", _text(row.get("default_value"))),
        ("nullability", "NOT NULL" if row.get("not_null") else "nullable"),
        ("identity", _identity(row)),
        (
            "generated",
            f"GENERATED ALWAYS AS ({row.get('generation')}) {generated}" if generated else None,
        ),
        ("collation", row.get("collation")),
        ("storage", _STORAGE.get(row.get("storage") or "")),
        ("comment", _comment(row)),
        ("grants", _grants(row, scope) if scope.privileges else None),
    ]
    return _object(
        "column",
        f"{schema}.{table}.{row['name']}",
        attributes,
        parent=f"table {schema}.{table}",
    )


# pg_attribute.attstorage (PostgreSQL docs, "pg_type", typstorage).
_STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}


def _identity(row: Row) -> str | None:
    kind = {"a": "GENERATED ALWAYS AS IDENTITY", "d": "GENERATED BY DEFAULT AS IDENTITY"}.get(
        row.get("identity") or ""
    )
    if kind is None:
        return None
    options = row.get("identity_options")
    if not options:
        return kind
    start, increment, minimum, maximum, cache, cycle = options
    cycles = "CYCLE" if str(cycle).lower() in ("true", "t") else "NO CYCLE"
    return (
        f"{kind} (START {start} INCREMENT {increment} MINVALUE {minimum} MAXVALUE {maximum} "
        f"CACHE {cache} {cycles})"
    )


def _constraint(row: Row, scope: Scope) -> SchemaObject | None:
    schema, table = row["schema"], row["table_name"]
    if scope.is_tool_table(schema, table):
        return None
    attributes = [("definition", _text(row["definition"])), ("comment", _comment(row))]
    return _object(
        "constraint",
        f"{schema}.{table}.{row['name']}",
        attributes,
        parent=f"table {schema}.{table}",
    )


def _index(row: Row, scope: Scope) -> SchemaObject | None:
    schema, table = row["schema"], row["table_name"]
    if scope.is_tool_table(schema, table):
        return None
    parent_kind = "materialized view" if row.get("table_kind") == "m" else "table"
    attributes = [
        ("definition", _text(row["definition"])),
        ("validity", "valid" if row.get("valid", True) else "INVALID"),
        ("comment", _comment(row)),
    ]
    return _object(
        "index",
        f"{schema}.{row['name']}",
        attributes,
        parent=f"{parent_kind} {schema}.{table}",
    )


def _view(row: Row, scope: Scope) -> SchemaObject:
    kind = "materialized view" if row.get("relkind") == "m" else "view"
    attributes = [
        ("definition", normalise_view(row["definition"] or "")),
        ("options", _joined(sorted(row.get("options") or ()))),
        ("comment", _comment(row)),
        *_privileges(row, scope),
    ]
    return _object(kind, f"{row['schema']}.{row['name']}", attributes)


def _function(row: Row, scope: Scope) -> SchemaObject:
    kind = "procedure" if row.get("prokind") == "p" else "function"
    sql_body = row.get("sql_body")
    body = sql_standard_body(sql_body) if sql_body else normalise_body(row.get("source") or "")
    attributes = [
        ("arguments", row.get("arguments") or "(none)"),
        ("returns", row.get("result") if kind == "function" else None),
        ("language", row.get("language")),
        ("volatility", _VOLATILITY.get(row.get("volatility") or "")),
        ("strict", "STRICT" if row.get("strict") else "CALLED ON NULL INPUT"),
        ("security", "SECURITY DEFINER" if row.get("security_definer") else "SECURITY INVOKER"),
        ("leakproof", "LEAKPROOF" if row.get("leakproof") else "NOT LEAKPROOF"),
        ("parallel", _PARALLEL.get(row.get("parallel") or "")),
        ("cost", _number(row.get("cost"))),
        ("rows", _number(row.get("rows")) if row.get("rows") else None),
        ("settings", _joined(row.get("config"))),
        ("body", body),
        ("comment", _comment(row)),
        *_privileges(row, scope),
    ]
    if kind == "procedure":  # these do not apply to procedures
        attributes = [(k, v) for k, v in attributes if k not in ("volatility", "cost", "parallel")]
    name = f"{row['schema']}.{row['name']}({row.get('identity_arguments') or ''})"
    return _object(kind, name, attributes)


_VOLATILITY = {"i": "IMMUTABLE", "s": "STABLE", "v": "VOLATILE"}
_PARALLEL = {"s": "PARALLEL SAFE", "r": "PARALLEL RESTRICTED", "u": "PARALLEL UNSAFE"}


def _trigger(row: Row, scope: Scope) -> SchemaObject | None:
    schema, table = row["schema"], row["table_name"]
    if scope.is_tool_table(schema, table):
        return None
    parent_kind = "view" if row.get("table_kind") == "v" else "table"
    attributes = [
        ("definition", _text(row["definition"])),
        ("enabled", _TRIGGER_ENABLED.get(row.get("enabled") or "O", row.get("enabled"))),
        ("comment", _comment(row)),
    ]
    return _object(
        "trigger",
        f"{schema}.{table}.{row['name']}",
        attributes,
        parent=f"{parent_kind} {schema}.{table}",
    )


# pg_trigger.tgenabled (PostgreSQL docs, "pg_trigger").
_TRIGGER_ENABLED = {
    "O": "enabled",
    "D": "disabled",
    "R": "enabled on replicas only",
    "A": "enabled always",
}


def _sequence(row: Row, scope: Scope) -> SchemaObject | None:
    owned_by = row.get("owned_by")
    parent = None
    if owned_by:
        owner_schema, owner_table, _ = owned_by.split(".", 2)
        if scope.is_tool_table(owner_schema, owner_table):
            return None
        parent = f"table {owner_schema}.{owner_table}"
    attributes = [
        ("type", row.get("type")),
        ("start", row.get("start")),
        ("increment", row.get("increment")),
        ("minimum", row.get("minimum")),
        ("maximum", row.get("maximum")),
        ("cache", row.get("cache")),
        ("cycle", "CYCLE" if row.get("cycle") else "NO CYCLE"),
        ("owned by", owned_by),
        ("comment", _comment(row)),
        *_privileges(row, scope),
    ]
    return _object("sequence", f"{row['schema']}.{row['name']}", attributes, parent=parent)


def _type(row: Row, scope: Scope) -> SchemaObject | None:
    typtype = row.get("typtype")
    kind = {"e": "enum", "d": "domain", "c": "composite type", "r": "range type"}.get(typtype or "")
    if kind is None:
        return None
    details: list[tuple[str, str | None]] = []
    if typtype == "e":
        details = [("labels", ", ".join(_quoted(label) for label in row.get("labels") or ()))]
    elif typtype == "d":
        details = [
            ("base type", row.get("base_type")),
            ("nullability", "NOT NULL" if row.get("not_null") else "nullable"),
            ("default", _text(row.get("default_value"))),
            ("collation", row.get("collation")),
            ("checks", "; ".join(row.get("checks") or ()) or None),
        ]
    elif typtype == "c":
        details = [("attributes", _joined(row.get("attributes")))]
    else:
        details = [("subtype", row.get("subtype"))]
    attributes = [*details, ("comment", _comment(row)), *_privileges(row, scope)]
    return _object(kind, f"{row['schema']}.{row['name']}", attributes)


def _extension(row: Row, scope: Scope) -> SchemaObject:
    attributes = [("schema", row.get("schema")), ("version", row.get("version"))]
    return _object("extension", row["name"], attributes)


def _policy(row: Row, scope: Scope) -> SchemaObject | None:
    schema, table = row["schema"], row["table_name"]
    if scope.is_tool_table(schema, table):
        return None
    roles = [_role(role, scope) for role in row.get("roles") or ()]
    attributes = [
        ("command", _POLICY_COMMANDS.get(row.get("command") or "*", row.get("command"))),
        ("type", "PERMISSIVE" if row.get("permissive", True) else "RESTRICTIVE"),
        ("roles", ", ".join(sorted(roles)) or "PUBLIC"),
        ("using", _text(row.get("using_expression"))),
        ("with check", _text(row.get("check_expression"))),
        ("comment", _comment(row)),
    ]
    return _object(
        "policy",
        f"{schema}.{table}.{row['name']}",
        attributes,
        parent=f"table {schema}.{table}",
    )


# pg_policy.polcmd (PostgreSQL docs, "pg_policy").
_POLICY_COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


# --- helpers ----------------------------------------------------------------------------------


def _object(
    kind: str,
    name: str,
    attributes: Iterable[tuple[str, str | None]],
    *,
    parent: str | None = None,
) -> SchemaObject:
    kept = tuple((label, value) for label, value in attributes if value is not None)
    return SchemaObject(kind=kind, name=name, attributes=kept, parent=parent)


def _text(value: object) -> str | None:
    """Catalog text with line endings normalised (a literal may hold a CRLF checkout's)."""
    if value is None:
        return None
    return str(value).replace("\r\n", "\n")


def _comment(row: Row) -> str | None:
    comment = row.get("comment")
    return normalise_text(comment) if comment is not None else None


def _joined(values: Iterable[str] | None) -> str | None:
    items = list(values or ())
    return ", ".join(items) if items else None


def _number(value: object) -> str | None:
    if value is None:
        return None
    number = float(str(value))
    return str(int(number)) if number.is_integer() else str(number)


def _quoted(label: str) -> str:
    return "'" + label.replace("'", "''") + "'"


def _role(name: str, scope: Scope) -> str:
    return MIGRATING_ROLE if scope.migrating_role and name == scope.migrating_role else name


def _privileges(row: Row, scope: Scope) -> Iterator[tuple[str, str | None]]:
    """Owner and grants, only behind the manifest's switch (`drift.privileges`)."""
    if not scope.privileges:
        return
    owner = row.get("owner")
    yield "owner", _role(owner, scope) if owner else None
    yield "grants", _grants(row, scope)


def _grants(row: Row, scope: Scope) -> str:
    entries: Sequence[str] = row.get("grants") or ()
    shown = []
    for entry in entries:
        grantee, _, privilege = entry.partition(" ")
        shown.append(f"{_role(grantee, scope)} {privilege}")
    return ", ".join(sorted(shown)) or "(none)"


_SIMPLE_NAME = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote_name(name: str) -> str:
    """A dotted name as SQL, each part double-quoted unless it is a plain lowercase name."""
    return ".".join(
        part if _SIMPLE_NAME.match(part) else '"' + part.replace('"', '""') + '"'
        for part in name.split(".")
    )
