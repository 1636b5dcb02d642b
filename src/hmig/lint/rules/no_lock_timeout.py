"""`no-lock-timeout`: a lock that blocks writes is requested on an existing table with no timeout.

Problem: the lock request queues behind every open transaction on the table (a long report, an
idle-in-transaction session), and every later query that conflicts with it queues behind the
request: writes for SHARE and stronger, reads too for ACCESS EXCLUSIVE. The table is down until
the blocker ends (issue 8 measured 0 tps for 6 s behind an 8 s transaction; PostgreSQL docs,
"Table-Level Locks" and `lock_timeout`). It does not matter how small the table is, only how
busy.

Fix: set `lock_timeout` for the environment in hmig.yml (e.g. `lock_timeout: 500ms`); hmig sets
it in every migration transaction and retries the migration when the lock is not obtained in
time. Or `SET lock_timeout = '500ms'` before the statement.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmig.lint.rules import Context, Hit, Rule, a_lock
from hmig.locks import blocks_reads, blocks_writes, strength

ID = "no-lock-timeout"


def check(context: Context) -> Iterator[Hit]:
    """One hit per statement, naming every existing table it would stall."""
    if context.lock_timeout_ms > 0:
        return
    locks = [lock for lock, _ in context.existing() if blocks_writes(lock.level)]
    if not locks:
        return
    strongest = max(locks, key=lambda lock: strength(lock.level))
    tables = ", ".join(lock.table for lock in locks)
    queued = "every query" if blocks_reads(strongest.level) else "every write"
    message = (
        f"{strongest.action} waits for {a_lock(strongest.level)} on {tables} with no "
        f"lock_timeout: while it waits behind any open transaction, {queued} on "
        f"{'it' if len(locks) == 1 else 'them'} queues behind it"
    )
    help_text = (
        "Set lock_timeout for this environment in hmig.yml (e.g. lock_timeout: 500ms): hmig "
        "then retries the migration instead of stalling the table, or SET lock_timeout "
        "before the statement."
    )
    yield Hit(message, help_text)


RULE = Rule(id=ID, severity="warning", check=check)
