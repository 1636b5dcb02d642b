"""`table-rewrite`: a statement writes a new copy of an existing, large table.

Problem: ALTER COLUMN … TYPE (unless binary-coercible), ADD COLUMN with a volatile default,
SET LOGGED/UNLOGGED, SET TABLESPACE, CLUSTER, VACUUM FULL and REFRESH MATERIALIZED VIEW copy
every row while holding ACCESS EXCLUSIVE: every read and write of the table waits for the whole
copy, and the disk needs room for a second copy (PostgreSQL docs, ALTER TABLE "Notes").

Fix: expand and contract: add a new column, backfill it in batches, switch readers over, drop
the old one; add the column without the volatile default and backfill it; use pg_repack instead
of CLUSTER / VACUUM FULL; REFRESH MATERIALIZED VIEW CONCURRENTLY.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmig.lint.rules import Context, Hit, Rule, large, sized

ID = "table-rewrite"


def check(context: Context) -> Iterator[Hit]:
    """One hit per large table the statement rewrites."""
    for lock, size in context.existing():
        if not lock.rewrites or not large(size):
            continue
        message = (
            f"{lock.action} rewrites {sized(lock, size)} under an ACCESS EXCLUSIVE lock: "
            "its reads and writes wait until every row is copied"
        )
        help_text = _fix(lock.action)
        if lock.caveat:
            help_text = f"Not always: {lock.caveat}. {help_text}"
        yield Hit(message, help_text, softened=lock.caveat is not None)


def _fix(action: str) -> str:
    if "TYPE" in action:
        return (
            "Add a new column of the new type, backfill it in batches, move readers and "
            "writers to it, then drop the old column."
        )
    if action.startswith("ADD COLUMN"):
        return (
            "Add the column without a volatile default (NULL or a constant), backfill it in "
            "batches, then SET DEFAULT for new rows."
        )
    if action.startswith(("CLUSTER", "VACUUM FULL")):
        return "Use pg_repack, which rewrites without holding ACCESS EXCLUSIVE throughout."
    if action.startswith("REFRESH MATERIALIZED VIEW"):
        return "Use REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view)."
    return "Run it in a maintenance window, or move the data in batches to a new table."


RULE = Rule(id=ID, severity="error", check=check)
