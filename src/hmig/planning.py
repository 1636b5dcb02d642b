"""(migration files, applied history) → `Plan`: what is applied, pending, unknown, out of order.

The applied history is authoritative: applied migrations keep their recorded order (`ORDER BY
run_on, id`, as node-pg-migrate reads it) and pending ones follow in file order. Pure: no
database, no files; everything arrives as values.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from hmig import locks
from hmig.errors import ConfigurationError, ManifestError, MigrationFileError, StrictOrderViolation
from hmig.model import Applied, History, MigrationFile, Notice, Plan, Rendered

_DIGITS = re.compile(r"^(\d+)")


def sort_key(name: str) -> tuple[int, int, str]:
    """Default order key.

    A leading number first, by value (`005` < `1678886400000`); ties and names without a
    number by name (code point order); unprefixed names after prefixed ones.
    """
    match = _DIGITS.match(name)
    if match is None:
        return (1, 0, name)
    return (0, int(match.group(1)), name)


def order(
    files: Sequence[MigrationFile], *, explicit: Sequence[str] | None, manifest_file: str
) -> tuple[MigrationFile, ...]:
    """Files in execution order: the manifest's `migrations.order`, or the default order."""
    if explicit is None:
        return tuple(sorted(files, key=lambda f: sort_key(f.name)))
    by_name = {f.name: f for f in files}
    missing = [name for name in explicit if name not in by_name]
    if missing:
        raise ManifestError(
            f"migrations.order lists {', '.join(repr(n) for n in missing)}, but no such "
            "migration file exists",
            file=manifest_file,
            key="migrations.order",
            hint="Names are file names without their extension; remove or correct the entry.",
        )
    unlisted = [f.path for f in files if f.name not in set(explicit)]
    if unlisted:
        raise ManifestError(
            f"migrations.order does not list {', '.join(unlisted)}",
            file=manifest_file,
            key="migrations.order",
            hint="With an explicit order every migration must be listed once, so none is "
            "silently skipped or run in a surprising place.",
        )
    return tuple(by_name[name] for name in explicit)


def plan(files: Sequence[MigrationFile], history: History, *, target: str | None = None) -> Plan:
    """Compute the plan. `files` must already be in execution order."""
    names = {f.name for f in files}
    position = {f.name: i for i, f in enumerate(files)}
    notices: list[Notice] = []
    applied_names: set[str] = set()
    unknown: list[Applied] = []
    for row in history.applied:
        name = _resolve_row(row.name, names)
        if name is None:
            unknown.append(row)
            continue
        if name != row.name:
            notices.append(
                Notice(
                    code="legacy-up-name",
                    message=f"history row {row.name!r} (node-pg-migrate's default loader) "
                    f"counts as {name!r} applied",
                    migration=name,
                )
            )
        applied_names.add(name)
    notices.extend(_duplicates([_resolve_row(r.name, names) or r.name for r in history.applied]))
    notices.extend(
        Notice(
            code="unknown-history-row",
            message=f"{row.name!r} is recorded as applied (run_on {row.run_on:%Y-%m-%d %H:%M:%S})"
            " but no migration file has that name",
            migration=row.name,
        )
        for row in unknown
    )
    pending = [f for f in files if f.name not in applied_names]
    last_applied = max((position[n] for n in applied_names), default=-1)
    out_of_order = tuple(f.name for f in pending if position[f.name] < last_applied)
    notices.extend(_out_of_order_notices(pending, files, applied_names, out_of_order))
    return Plan(
        files=tuple(files),
        applied=history.applied,
        pending=tuple(pending),
        to_run=_cut(tuple(pending), target, names, applied_names),
        unknown=tuple(unknown),
        out_of_order=out_of_order,
        notices=tuple(notices),
    )


def check_runnable(migrations: Sequence[MigrationFile]) -> None:
    """Refuse (exit 2) when any of these files cannot run, naming every such file."""
    broken = [m for m in migrations if m.problem is not None]
    if not broken:
        return
    first = broken[0]
    assert first.problem is not None
    others = "".join(
        f"\n  {m.path}:{m.problem.line}: {m.problem.message}" for m in broken[1:] if m.problem
    )
    raise MigrationFileError(
        first.problem.message + others,
        file=first.path,
        line=first.problem.line,
        column=first.problem.column,
        hint="Nothing was run. Fix the file and run the command again.",
    )


def check_order(plan_: Plan, *, strict: bool) -> None:
    """With `strict_order: true`, an out-of-order pending migration is a failure (exit 1)."""
    if strict and plan_.out_of_order:
        raise StrictOrderViolation(
            f"{len(plan_.out_of_order)} pending migration(s) sort before an applied one: "
            + ", ".join(plan_.out_of_order),
            hint="This environment sets strict_order: true. Rename the file so it sorts after "
            "the applied ones, or set strict_order: false to run it after them.",
        )


# --- internals --------------------------------------------------------------------------------


def _resolve_row(row_name: str, names: set[str]) -> str | None:
    if row_name in names:
        return row_name
    # node-pg-migrate's default loader records `X.up.sql` as `X.up`; hmig calls it `X`.
    if row_name.endswith(".up") and row_name[:-3] in names:
        return row_name[:-3]
    return None


def _duplicates(names: Sequence[str]) -> list[Notice]:
    counts = Counter(names)
    return [
        Notice(
            code="duplicate-history-row",
            message=f"{name!r} is recorded {count} times in the history table",
            migration=name,
        )
        for name, count in counts.items()
        if count > 1
    ]


def _out_of_order_notices(
    pending: Sequence[MigrationFile],
    files: Sequence[MigrationFile],
    applied_names: set[str],
    out_of_order: Sequence[str],
) -> list[Notice]:
    position = {f.name: i for i, f in enumerate(files)}
    notices = []
    for migration in pending:
        if migration.name not in out_of_order:
            continue
        later = next(
            f.name for f in files[position[migration.name] + 1 :] if f.name in applied_names
        )
        notices.append(
            Notice(
                code="out-of-order",
                message=f"{migration.name} sorts before the applied migration {later}; "
                "it will run after everything already applied",
                migration=migration.name,
                file=migration.path,
            )
        )
    return notices


def _cut(
    pending: tuple[MigrationFile, ...],
    target: str | None,
    names: set[str],
    applied_names: set[str],
) -> tuple[MigrationFile, ...]:
    if target is None:
        return pending
    if target not in names:
        raise ConfigurationError(
            f"--target {target!r} is not a migration of this project",
            hint="Give the file name without its extension, as `hmig status` lists it.",
        )
    if target in applied_names:
        return ()
    index = next(i for i, m in enumerate(pending) if m.name == target)
    return pending[: index + 1]


@dataclass(frozen=True, slots=True)
class BackupScope:
    """What a `mode: tables` backup dumps, and why; `tables` None means a full backup."""

    tables: tuple[str, ...] | None
    reason: str


def backup_scope(
    mode: str,
    rendered: Sequence[tuple[MigrationFile, Rendered | None]],
    *,
    history_tables: Sequence[str],
) -> BackupScope:
    """The tables the pending migrations touch (parsed with pglast), for `backup.mode: tables`.

    Where they cannot be known for certain (a DO block, a function call, a trigger, a cascade,
    a `.js` migration that could not be rendered), the backup is full, and the reason says so.
    """
    if mode != "tables":
        return BackupScope(None, f"backup.mode: {mode}")
    unrendered = [m.name for m, r in rendered if r is None]
    if unrendered:
        return BackupScope(
            None, f"full instead of tables: the SQL of {', '.join(unrendered)} is not known yet"
        )
    touched = locks.touched_tables([s.sql for _, r in rendered if r for s in r.statements])
    if touched.uncertain:
        reasons = "; ".join(touched.uncertain[:3])
        return BackupScope(
            None, f"full instead of tables: cannot tell every table touched ({reasons})"
        )
    tables = tuple(dict.fromkeys([*touched.tables, *history_tables]))
    return BackupScope(
        tables, f"the tables the pending migrations touch: {', '.join(touched.tables)}"
    )


def rollback_range(
    files: Sequence[MigrationFile],
    history: History,
    *,
    count: int | None,
    to: str | None,
) -> tuple[MigrationFile, ...]:
    """What `rollback` reverts, latest first, in the reverse of the recorded order.

    `--count N` takes the last N applied (0, or more than the history holds, is refused:
    node-pg-migrate's `down 0` reverts everything, a trap not copied here); `--to NAME` takes
    everything applied after NAME. Without either, the last one.
    """
    if count is not None and to is not None:
        raise ConfigurationError("give --count or --to, not both")
    names = {f.name for f in files}
    by_name = {f.name: f for f in files}
    applied = [(_resolve_row(row.name, names), row) for row in history.applied]
    if to is not None:
        resolved = [name for name, _ in applied]
        if to not in resolved:
            raise ConfigurationError(
                f"--to {to!r} is not an applied migration",
                hint="`hmig status` lists what is applied, in recorded order.",
            )
        selected = applied[len(resolved) - resolved[::-1].index(to) :]
    else:
        wanted = 1 if count is None else count
        if wanted < 1 or wanted > len(applied):
            raise ConfigurationError(
                f"--count {wanted} is out of range: {len(applied)} migration(s) are applied",
                hint="Give a count from 1 to the number applied; --count 0 does not mean "
                "'everything' in hmig.",
            )
        selected = applied[len(applied) - wanted :]
    missing = [row.name for name, row in selected if name is None]
    if missing:
        raise MigrationFileError(
            f"cannot roll back {', '.join(missing)}: no migration file has that name, so there "
            "is no down to run",
            file="(history)",
            hint="Restore the file, or remove the history row by hand if the change is gone.",
        )
    return tuple(by_name[name] for name, _ in reversed(selected) if name is not None)
