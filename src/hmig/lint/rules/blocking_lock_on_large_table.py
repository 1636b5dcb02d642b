"""`blocking-lock-on-large-table`: an index is built over a large table under a blocking lock.

Problem: CREATE INDEX without CONCURRENTLY holds SHARE (writes wait), and ADD PRIMARY KEY /
UNIQUE / EXCLUDE and REINDEX INDEX hold ACCESS EXCLUSIVE (reads wait too), for as long as the
index takes to build over every row (PostgreSQL docs, CREATE INDEX "Building Indexes
Concurrently").

Fix: CREATE INDEX CONCURRENTLY (hmig runs such a migration outside a transaction, statement by
statement); for a key, build a unique index CONCURRENTLY first, then ADD CONSTRAINT … USING
INDEX; REINDEX … CONCURRENTLY.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmig.lint.rules import Context, Hit, Rule, blocked, large, sized
from hmig.locks import blocks_writes

ID = "blocking-lock-on-large-table"


def check(context: Context) -> Iterator[Hit]:
    """One hit per large table an index is built on while writes (or reads) wait."""
    for lock, size in context.existing():
        if not lock.builds_index or lock.rewrites or not blocks_writes(lock.level):
            continue
        if not large(size):
            continue
        what = "reads and writes on" if blocked(lock.level) != "writes" else "writes to"
        message = f"{lock.action} blocks {what} {sized(lock, size)} while it builds"
        yield Hit(message, _fix(lock.action))


def _fix(action: str) -> str:
    if action.startswith("ADD"):
        return (
            "CREATE UNIQUE INDEX CONCURRENTLY first (in its own migration), then ADD "
            "CONSTRAINT … USING INDEX, which only takes a brief lock."
        )
    if action.startswith("REINDEX"):
        return "Use REINDEX … CONCURRENTLY (PostgreSQL 12+)."
    return (
        "Use CREATE INDEX CONCURRENTLY: reads and writes continue while it builds. hmig runs "
        "that migration outside a transaction and resumes it at the failed statement."
    )


RULE = Rule(id=ID, severity="error", check=check)
