"""Table sizes on the target, for lint: estimated rows and bytes, from the catalog only.

Rows come from `pg_class.reltuples` scaled to the table's current size, as the planner does;
for a never-analysed table (reltuples -1, or 0 with data on disk) they are estimated from the
table's size and the width of its columns, and marked `estimated`. Never `count(*)`: lint must
stay instant and read-only on a production database. This adapter must not decide what a size
means (that is `hmig.lint`), nor import another adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hmig.lint import RelationSize
from hmig.postgres._queries import query
from hmig.postgres.connection import PgSession

# PostgreSQL's page header (SizeOfPageHeaderData) and per-row overhead: the tuple header,
# MAXALIGNed, plus its line pointer (table_block_relation_estimate_size, tableam.c).
_PAGE_HEADER = 24
_ROW_OVERHEAD = 24 + 4
_NO_STORAGE = frozenset({"p", "v", "f", "c", "I"})  # partitioned, view, foreign, type, p. index


@dataclass(frozen=True, slots=True)
class _Member:
    """One relation with storage counted under a name (the table, or one of its partitions)."""

    relkind: str
    reltuples: float
    relpages: int
    heap_bytes: int
    total_bytes: int
    block_size: int
    row_width: int


def relation_sizes(session: PgSession, tables: Sequence[str]) -> dict[str, RelationSize]:
    """Sizes of the `tables` that exist, keyed by the names given; missing ones are absent.

    Names are as `hmig.locks` writes them (`patients`, `clinic.patients`, already folded the
    way PostgreSQL's parser folds identifiers); unqualified ones resolve through the session's
    search_path.
    """
    names = list(dict.fromkeys(tables))
    if not names:
        return {}
    parts = [name.rpartition(".") for name in names]
    rows = session.fetch(
        query("relation_sizes"),
        {
            "names": names,
            "schemas": [schema or None for schema, _, _ in parts],
            "relations": [relation for _, _, relation in parts],
        },
    )
    members: dict[str, list[_Member]] = {}
    for name, *values in rows:
        members.setdefault(name, []).append(_Member(*values))
    return {name: _size(name, found) for name, found in members.items()}


def _size(name: str, members: Sequence[_Member]) -> RelationSize:
    counted = [(member, _rows(member)) for member in members if member.relkind not in _NO_STORAGE]
    known = [rows for _, (rows, _) in counted if rows is not None]
    return RelationSize(
        table=name,
        rows=sum(known) if known else None,
        bytes=sum(member.total_bytes for member in members),
        estimated=any(estimated for _, (_, estimated) in counted),
    )


def _rows(member: _Member) -> tuple[int | None, bool]:
    """Estimated rows of one relation, and whether they come from its size alone."""
    pages = member.heap_bytes // member.block_size if member.block_size else 0
    if member.reltuples > 0 and member.relpages > 0:
        # Statistics say how dense the pages were; the table may have grown since: scale to
        # its current size, as the planner's estimate_rel_size does.
        return round(member.reltuples / member.relpages * pages), False
    if pages == 0 or (member.reltuples == 0 and member.relpages >= pages):
        return 0, False  # empty, and no bigger than when statistics said so
    # Never analysed (reltuples -1 since PostgreSQL 14, 0 before), or analysed while empty and
    # filled since: estimate from the pages on disk and the width of a row.
    per_page = max((member.block_size - _PAGE_HEADER) // (member.row_width + _ROW_OVERHEAD), 1)
    return pages * per_page, True
