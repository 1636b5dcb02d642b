"""(migration files, applied history) → `Plan`, history drift and repairs.

The applied history is authoritative: applied migrations keep their recorded order (`ORDER BY
run_on, id`, as node-pg-migrate reads it) and pending ones follow in file order. History drift
(an applied file changed or gone, a row no file explains, a name recorded twice) and what `hmig
repair` would do about it are computed here too. Pure: no database, no files; everything
arrives as values.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from hmig import locks
from hmig.errors import ConfigurationError, ManifestError, MigrationFileError, StrictOrderViolation
from hmig.model import (
    Applied,
    DriftFinding,
    History,
    MigrationFile,
    Notice,
    Plan,
    Problem,
    Recorded,
    Rendered,
    Repair,
)

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
            path=("migrations", "order", list(explicit).index(missing[0])),
            hint="Names are file names without their extension; remove or correct the entry.",
        )
    unlisted = [f.path for f in files if f.name not in set(explicit)]
    if unlisted:
        raise ManifestError(
            f"migrations.order does not list {', '.join(unlisted)}",
            file=manifest_file,
            key="migrations.order",
            path=("migrations", "order"),
            hint="With an explicit order every migration must be listed once, so none is "
            "silently skipped or run in a surprising place.",
        )
    return tuple(by_name[name] for name in explicit)


def plan(
    files: Sequence[MigrationFile],
    history: History,
    *,
    target: str | None = None,
    renamed: Mapping[str, str] | None = None,
) -> Plan:
    """Compute the plan. `files` must already be in execution order.

    `renamed` is the manifest's `migrations.renamed`: a row with an old name counts as the new
    name applied. Rows no file explains are listed in `unknown`; whether they are drift is
    `history_drift`'s to say.
    """
    names = {f.name for f in files}
    position = {f.name: i for i, f in enumerate(files)}
    notices: list[Notice] = []
    applied_names: set[str] = set()
    unknown: list[Applied] = []
    for row in history.applied:
        name = _resolve_row(row.name, names, renamed)
        if name is None:
            unknown.append(row)
            continue
        if row.name.endswith(".up") and name == row.name[:-3]:
            notices.append(
                Notice(
                    code="legacy-up-name",
                    message=f"history row {row.name!r} (node-pg-migrate's default loader) "
                    f"counts as {name!r} applied",
                    migration=name,
                )
            )
        applied_names.add(name)
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


def check_renamed(
    files: Sequence[MigrationFile], renamed: Mapping[str, str], *, manifest_file: str
) -> None:
    """`migrations.renamed` must map a name no file has any more to the name of a file."""
    names = {f.name for f in files}
    for old, new in renamed.items():
        if new not in names:
            raise ManifestError(
                f"{old!r} is renamed to {new!r}, but no migration file is named {new!r}",
                file=manifest_file,
                key=f"migrations.renamed.{old}",
                path=("migrations", "renamed", old),
                hint="The new name is the file name without its extension, as it is now.",
            )
        if old in names:
            raise ManifestError(
                f"{old!r} is renamed to {new!r}, but a migration file is still named {old!r}",
                file=manifest_file,
                key=f"migrations.renamed.{old}",
                path=("migrations", "renamed", old),
                hint="A rename maps a name that no file has any more; remove the entry or the "
                "old file.",
            )


def check_runnable(migrations: Sequence[MigrationFile], *, down: bool = False) -> None:
    """Refuse (exit 2) when any of these files cannot run, naming every such file.

    With `down`, a down section or `.down.sql` that cannot run counts too: `validate` checks
    it, as a rollback is not the time to find out.
    """
    broken: list[tuple[str, Problem]] = []
    for m in migrations:
        if m.problem is not None:
            broken.append((m.path, m.problem))
        elif down and m.down_problem is not None:
            broken.append((m.down_path or m.path, m.down_problem))
    if not broken:
        return
    (path, first), others = broken[0], broken[1:]
    raise MigrationFileError(
        first.message
        + "".join(
            f"\n  {p}{'' if q.line is None else f':{q.line}'}: {q.message}" for p, q in others
        ),
        file=path,
        line=first.line,
        column=first.column,
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


def without(
    history: History,
    *,
    reverted: Collection[str],
    files: Sequence[MigrationFile],
    renamed: Mapping[str, str] | None = None,
) -> History:
    """`history` less the rows of the `reverted` migrations: what a rollback left.

    For the report of a rollback whose session the server ended, when the history cannot be
    read again; the rows of migrations not reverted stay as they were.
    """
    names = {f.name for f in files}
    gone = set(reverted)
    kept = tuple(r for r in history.applied if _resolve_row(r.name, names, renamed) not in gone)
    return replace(history, applied=kept)


def _resolve_row(
    row_name: str, names: set[str], renamed: Mapping[str, str] | None = None
) -> str | None:
    """The migration a history row stands for, or None when no file explains it."""
    if row_name in names:
        return row_name
    # node-pg-migrate's default loader records `X.up.sql` as `X.up`; hmig calls it `X`.
    if row_name.endswith(".up") and row_name[:-3] in names:
        return row_name[:-3]
    if renamed:
        new = renamed.get(row_name) or renamed.get(row_name.removesuffix(".up"))
        if new is not None and new in names:
            return new
    return None


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
    renamed: Mapping[str, str] | None = None,
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
    applied = [(_resolve_row(row.name, names, renamed), row) for row in history.applied]
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


# --- history drift ----------------------------------------------------------------------------

_HISTORY = "history"
_BEHIND = (
    " If this checkout is older than what was deployed, update it; a migration's file stays in "
    "the repository after it runs."
)


@dataclass(frozen=True, slots=True)
class _Row:
    """A history row with what explains it: the migration it counts as, and hmig's record."""

    row: Applied
    name: str | None  # the migration it counts as; None: no file explains it
    record: Recorded | None


def history_drift(
    files: Sequence[MigrationFile],
    history: History,
    *,
    renamed: Mapping[str, str] | None = None,
) -> tuple[DriftFinding, ...]:
    """Applied files changed or gone, rows no file explains, names recorded twice.

    Checksums ignore line endings and trailing blank space (`discovery.checksum`), so a CRLF
    checkout is not a change. Out-of-order pending files are not drift: the plan warns, and
    `strict_order` decides. Rows another tool wrote have no checksum from their run: they are
    not drift either, only unverified (`unverified`).
    """
    rows = _rows(files, history, renamed)
    by_name = {f.name: f for f in files}
    applied = {r.name for r in rows if r.name is not None}
    pending = {f.checksum: f for f in reversed(files) if f.name not in applied}
    findings: list[DriftFinding] = []
    seen: set[str] = set()
    for row in rows:
        if row.row.name in seen:
            continue  # a duplicate: reported once, below
        seen.add(row.row.name)
        if row.name is None:
            findings.append(_orphan(row, pending))
        elif _changed(row.record, by_name[row.name]):
            findings.append(_file_changed(row, by_name[row.name]))
    findings.extend(_duplicate_rows(rows))
    return tuple(findings)


def unverified(
    files: Sequence[MigrationFile],
    history: History,
    *,
    renamed: Mapping[str, str] | None = None,
    skip: Collection[str] = (),
) -> tuple[Notice, ...]:
    """One warning naming the applied migrations whose content hmig never verified.

    A row another tool wrote has no checksum from its run: hmig records the file as it first
    sees it (`adopted`). That is no evidence of a difference, so it is not drift; it stays a
    warning until a schema check passes (which verifies it) or `hmig repair` accepts it. `skip`:
    rows another warning already names (apply's `adopted`).
    """
    names = [
        r.row.name
        for r in _rows(files, history, renamed)
        if r.name is not None
        and r.row.name not in skip
        and (r.record is None or r.record.adopted or not r.record.checksum)
    ]
    names = list(dict.fromkeys(names))
    if not names:
        return ()
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        Notice(
            code="unverified",
            message=f"{len(names)} applied migration(s) were applied by another tool and their "
            f"content is unverified: {shown}. A passing schema drift check verifies them "
            "(`hmig drift --check schema`); `hmig repair --yes` accepts them as they are",
            migration=names[0] if len(names) == 1 else None,
        ),
    )


def verifiable(
    files: Sequence[MigrationFile],
    history: History,
    *,
    renamed: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Adopted rows a passing schema check verifies: their record matches the file now."""
    by_name = {f.name: f for f in files}
    return tuple(
        dict.fromkeys(
            r.row.name
            for r in _rows(files, history, renamed)
            if r.name is not None
            and r.record is not None
            and r.record.adopted
            and r.record.checksum == by_name[r.name].checksum
        )
    )


def repairs(
    files: Sequence[MigrationFile],
    history: History,
    *,
    renamed: Mapping[str, str] | None = None,
) -> tuple[Repair, ...]:
    """What `hmig repair` does to bring the history in line with the files, row by row.

    A changed or unverified applied file: accept its checksum now. A row no file explains:
    re-map it to the pending file that has the content it was applied with (a rename), else
    remove it. A migration recorded twice: keep the first row, remove the others.
    """
    rows = _rows(files, history, renamed)
    by_name = {f.name: f for f in files}
    applied = {r.name for r in rows if r.name is not None}
    pending = {f.checksum: f for f in reversed(files) if f.name not in applied}
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        groups.setdefault(row.name or row.row.name, []).append(row)
    changes: list[Repair] = []
    for key, group in groups.items():
        first = group[0]
        if first.name is None:
            changes.append(_orphan_repair(first, pending))
        else:
            changes.extend(_accept_repair(first, by_name[first.name]))
        changes.extend(
            Repair(
                action="remove",
                name=extra.row.name,
                detail=f"recorded again (id {extra.row.id}, run_on {_when(extra.row.run_on)}); "
                f"the first row of {key} (id {first.row.id}) stays",
                row_id=extra.row.id,
            )
            for extra in group[1:]
        )
    return tuple(changes)


def _rows(
    files: Sequence[MigrationFile], history: History, renamed: Mapping[str, str] | None
) -> list[_Row]:
    names = {f.name for f in files}
    return [
        _Row(row, _resolve_row(row.name, names, renamed), history.recorded.get(row.name))
        for row in history.applied
    ]


def _changed(record: Recorded | None, migration: MigrationFile) -> bool:
    return record is not None and bool(record.checksum) and record.checksum != migration.checksum


def _file_changed(row: _Row, migration: MigrationFile) -> DriftFinding:
    record = row.record
    assert record is not None
    since = record.recorded_at or row.row.run_on
    who = "hmig adopted it" if record.adopted else "hmig recorded it"
    return DriftFinding(
        check=_HISTORY,
        code="file-changed",
        object=f"migration {row.row.name}",
        message=f"{migration.path} changed since {who} on {_when(since)} "
        f"(checksum {_short(record.checksum)}… → {_short(migration.checksum)}…)",
        hint="An applied migration never runs again: revert the edit and put the change in a "
        "new migration, or run `hmig repair --yes` to accept the file as it is now.",
        since=since,
    )


def _orphan(row: _Row, pending: Mapping[str, MigrationFile]) -> DriftFinding:
    name, run_on = row.row.name, row.row.run_on
    record = row.record
    renamed_to = pending.get(record.checksum) if record and record.checksum else None
    if renamed_to is not None:
        return DriftFinding(
            check=_HISTORY,
            code="file-renamed",
            object=f"migration {name}",
            message=f"{name} (applied {_when(run_on)}) has no file any more, but the pending "
            f"{renamed_to.path} has the content it was applied with: renamed?",
            hint=f"Record the rename in the manifest (migrations.renamed: {{{name}: "
            f"{renamed_to.name}}}) or run `hmig repair --yes` to re-map the row; otherwise "
            f"{renamed_to.name} runs again.",
            since=run_on,
        )
    if record is not None:
        return DriftFinding(
            check=_HISTORY,
            code="file-missing",
            object=f"migration {name}",
            message=f"{name} was applied on {_when(run_on)}, but its file is gone from the "
            "migrations folder",
            hint="Restore the file, record a rename in migrations.renamed, or run `hmig repair "
            "--yes` to remove the history row." + _BEHIND,
            since=run_on,
        )
    return DriftFinding(
        check=_HISTORY,
        code="unknown-row",
        object=f"migration {name}",
        message=f"the history row {name!r} (run_on {_when(run_on)}) is explained by no "
        "migration file, and hmig has no record of its content",
        hint="If its file was renamed, record it in migrations.renamed: {old-name: new-name}; "
        "if it was deleted on purpose, `hmig repair --yes` removes the row." + _BEHIND,
        since=run_on,
    )


def _duplicate_rows(rows: Sequence[_Row]) -> list[DriftFinding]:
    groups: dict[str, list[Applied]] = {}
    for row in rows:
        groups.setdefault(row.name or row.row.name, []).append(row.row)
    findings = []
    for name, group in groups.items():
        if len(group) < 2:
            continue
        listed = ", ".join(f"id {r.id} on {_when(r.run_on)}" for r in group)
        findings.append(
            DriftFinding(
                check=_HISTORY,
                code="duplicate-row",
                object=f"migration {name}",
                message=f"{name} is recorded {len(group)} times in the history table ({listed})",
                hint="A migration runs once: `hmig repair --yes` removes the later row(s) and "
                "keeps the first.",
                since=group[1].run_on,
            )
        )
    return findings


def _orphan_repair(row: _Row, pending: Mapping[str, MigrationFile]) -> Repair:
    record = row.record
    renamed_to = pending.get(record.checksum) if record and record.checksum else None
    if renamed_to is not None:
        return Repair(
            action="remap",
            name=row.row.name,
            detail=f"renamed: {renamed_to.path} has the content it was applied with",
            row_id=row.row.id,
            new_name=renamed_to.name,
        )
    return Repair(
        action="remove",
        name=row.row.name,
        detail=f"no migration file explains it (id {row.row.id}, run_on "
        f"{_when(row.row.run_on)}); nothing is undone in the schema",
        row_id=row.row.id,
    )


def _accept_repair(row: _Row, migration: MigrationFile) -> list[Repair]:
    record = row.record
    if record is None:
        detail = "applied by another tool; its checksum now is recorded and accepted"
    elif _changed(record, migration):
        detail = (
            f"file changed since it was recorded ({_short(record.checksum)} → "
            f"{_short(migration.checksum)})"
        )
    elif record.adopted or not record.checksum:
        detail = "adopted from another tool; checksum now accepted"
    else:
        return []
    return [Repair(action="accept", name=row.row.name, detail=detail, checksum=migration.checksum)]


def _short(checksum: str | None) -> str:
    return (checksum or "none").removeprefix("sha256:")[:12]


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}"
