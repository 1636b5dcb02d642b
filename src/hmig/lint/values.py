"""The values lint works with: table sizes, the report, and how sizes read in a message.

Frozen dataclasses and small pure functions only; nothing here fetches a size (that is the
`postgres.relations` adapter's job) or decides what is a finding (the rules do).
"""

from __future__ import annotations

from dataclasses import dataclass

from hmig.model import Finding

SEVERITIES = ("warning", "error")


@dataclass(frozen=True, slots=True)
class RelationSize:
    """How big a table is on the target, from the catalog (never by counting rows)."""

    table: str  # the name as the migration writes it, e.g. `patients` or `clinic.patients`
    rows: int | None  # estimated rows; None when the catalog cannot tell
    bytes: int  # pg_total_relation_size: heap, indexes and TOAST
    estimated: bool = False  # rows derived from the size, not from statistics (never analysed)


@dataclass(frozen=True, slots=True)
class LintReport:
    """What lint found on the pending migrations, and whether that fails the run."""

    findings: tuple[Finding, ...]
    unused_ignores: tuple[Finding, ...]
    failed: bool


def describe_size(size: RelationSize) -> str:
    """`≈ 2.1 M rows, 1.4 GB`: the words a reviewer needs to judge the lock's duration."""
    parts: list[str] = []
    if size.rows is not None:
        rows = f"≈ {_count(size.rows)} rows"
        parts.append(
            rows + (" (estimated from its size: never analysed)" if size.estimated else "")
        )
    parts.append(describe_bytes(size.bytes))
    return ", ".join(parts)


def describe_bytes(count: int) -> str:
    """Bytes in PostgreSQL's `pg_size_pretty` units (kB, MB, GB, TB: powers of 1024)."""
    value = float(count)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit in ("bytes", "kB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _count(rows: int) -> str:
    if rows < 1_000:
        return str(rows)
    for divisor, unit in ((1_000_000_000, "billion"), (1_000_000, "M"), (1_000, "k")):
        if rows >= divisor:
            value = rows / divisor
            shown = f"{value:.1f}" if value < 100 else f"{value:.0f}"
            return f"{shown.removesuffix('.0')} {unit}"
    return str(rows)  # pragma: no cover - the loop always returns for rows ≥ 1000
