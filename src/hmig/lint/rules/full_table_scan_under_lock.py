"""`full-table-scan-under-lock`: a statement reads every row of a large table to validate it.

Problem: ADD CONSTRAINT … CHECK or FOREIGN KEY without NOT VALID, SET NOT NULL, and ATTACH
PARTITION check every existing row while holding a lock that blocks writes (SHARE ROW
EXCLUSIVE for a foreign key, on both tables) or reads and writes (ACCESS EXCLUSIVE), for as long
as the scan takes (PostgreSQL docs, ALTER TABLE "Notes").

Fix: add the constraint NOT VALID (instant), then VALIDATE CONSTRAINT in a later migration: it
takes SHARE UPDATE EXCLUSIVE, so reads and writes go on. For SET NOT NULL, validate a
`CHECK (col IS NOT NULL) NOT VALID` first; PostgreSQL 12+ then skips the scan.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmig.lint.rules import Context, Hit, Rule, a_lock, blocked, large, sized
from hmig.locks import blocks_writes

ID = "full-table-scan-under-lock"


def check(context: Context) -> Iterator[Hit]:
    """One hit per large table scanned under a lock that blocks writes."""
    for lock, size in context.existing():
        if not lock.scans or lock.rewrites or not blocks_writes(lock.level) or not large(size):
            continue
        message = (
            f"{lock.action} reads every row of {sized(lock, size)} under {a_lock(lock.level)}: "
            f"its {blocked(lock.level)} wait until the scan ends"
        )
        help_text = _fix(lock.action)
        if lock.caveat:
            help_text = f"Not always: {lock.caveat}. {help_text}"
        yield Hit(message, help_text, softened=lock.caveat is not None)


def _fix(action: str) -> str:
    if "SET NOT NULL" in action:
        return (
            "Add CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in a later "
            "migration, then SET NOT NULL (PostgreSQL 12+ skips the scan) and drop the check."
        )
    if action.startswith("ATTACH PARTITION"):
        return (
            "Before attaching, add a CHECK constraint matching the partition bound NOT VALID "
            "and VALIDATE it: ATTACH PARTITION then skips the scan."
        )
    if action.startswith("ADD COLUMN"):
        return "Add the column nullable (or with a default), backfill it, then add the constraint."
    return (
        "Add the constraint NOT VALID, then VALIDATE CONSTRAINT in a later migration "
        "(SHARE UPDATE EXCLUSIVE: reads and writes continue during the scan)."
    )


RULE = Rule(id=ID, severity="error", check=check)
