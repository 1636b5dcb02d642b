"""PostgreSQL adapter: psycopg 3 session, advisory lock, target checks and history tables."""

from __future__ import annotations

from hmig.postgres.connection import (
    LOCK_KEY,
    PgSession,
    advisory_lock,
    check_target,
    connect,
    describe,
)
from hmig.postgres.history import HistoryTables

__all__ = [
    "LOCK_KEY",
    "HistoryTables",
    "PgSession",
    "advisory_lock",
    "check_target",
    "connect",
    "describe",
]
