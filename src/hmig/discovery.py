"""The filesystem side: the manifest file and the migrations folder → values.

Reads `hmig.yml` and every migration file once, computing each file's name (exactly what
`pgmigrations.name` stores), kind, checksum and statements. It decides nothing about order or
what is pending: that is `planning`'s job.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from hmig import manifest as manifest_module
from hmig import statements
from hmig.errors import ManifestError, MigrationFileError
from hmig.model import Kind, Manifest, MigrationFile, MigrationsConfig, Problem, Statement

# node-pg-migrate 9 loads all of these through jiti (src/migrationLoader.ts).
JS_EXTENSIONS = (".js", ".cjs", ".mjs", ".ts", ".cts", ".mts")
MAX_NAME_LENGTH = 255  # pgmigrations.name is varchar(255)


def load_manifest(path: Path) -> Manifest:
    """Read and validate the manifest at `path`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(
            "manifest not found",
            file=str(path),
            hint="Run hmig from the folder that holds hmig.yml, or pass --manifest PATH.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read the manifest: {exc}", file=str(path)) from exc
    return manifest_module.parse(text, path=path.resolve())


def checksum(text: str) -> str:
    """sha256 of the text with line endings and trailing blank space normalised.

    CRLF checkouts and an editor's final newline must not look like an edited migration
    (Flyway #253 is the cautionary tale).
    """
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    return "sha256:" + hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def discover(config: MigrationsConfig, *, base_dir: Path) -> tuple[MigrationFile, ...]:
    """Every migration in `config.dir`, in no particular order.

    Not recursive; dotfiles, sub-folders and files that are not `.sql` or JavaScript/TypeScript
    (`.js .cjs .mjs .ts .cts .mts`; a README.md, say) are ignored, unlike node-pg-migrate, which
    tries to run them.
    """
    folder = config.dir
    if not folder.is_dir():
        raise ManifestError(
            f"migrations folder {_display(folder, base_dir)} does not exist",
            file="hmig.yml",
            key="migrations.dir",
            hint="migrations.dir is relative to the manifest's folder.",
        )
    candidates = sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.is_file() and _kind(p) is not None
    )
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in candidates:
        groups[_migration_name(path)].append(path)
    base = base_dir.resolve()
    return tuple(_load(name, paths, base_dir=base) for name, paths in sorted(groups.items()))


def names(config: MigrationsConfig) -> list[str]:
    """Migration names in `config.dir`, from file names alone (for `hmig new`)."""
    if not config.dir.is_dir():
        return []
    return sorted(
        {
            _migration_name(p)
            for p in config.dir.iterdir()
            if not p.name.startswith(".") and p.is_file() and _kind(p) is not None
        }
    )


# --- internals --------------------------------------------------------------------------------


def _kind(path: Path) -> Kind | None:
    suffix = path.suffix.lower()  # node-pg-migrate 9 matches extensions case-insensitively
    if suffix == ".sql":
        return Kind.SQL
    if suffix in JS_EXTENSIONS:
        return Kind.JS
    return None


def _migration_name(path: Path) -> str:
    """`X.up.sql` and `X.down.sql` are the migration `X` (node-pg-migrate 9's SQL strategy)."""
    stem = path.stem
    if path.suffix.lower() == ".sql":
        for part in (".up", ".down"):
            if stem.lower().endswith(part):
                return stem[: -len(part)]
    return stem


def _role(path: Path) -> str:
    stem = path.stem.lower()
    if path.suffix.lower() == ".sql" and stem.endswith(".up"):
        return "up"
    if path.suffix.lower() == ".sql" and stem.endswith(".down"):
        return "down"
    return "plain"


def _load(name: str, paths: list[Path], *, base_dir: Path) -> MigrationFile:
    shown = [_display(p, base_dir) for p in paths]
    by_role = {_role(p): p for p in paths}
    roles = [_role(p) for p in paths]
    if roles.count("plain") > 1:
        raise MigrationFileError(
            f"two migrations are named {name!r}: {' and '.join(shown)}",
            file=shown[0],
            hint="pgmigrations.name is the file name without its extension: rename one.",
        )
    for role in ("up", "down"):
        if roles.count(role) > 1:
            raise MigrationFileError(
                f"Duplicate .{role}.sql for {name} ({' and '.join(shown)})",
                file=shown[0],
                hint="Keep one file per direction.",
            )
    if "plain" in roles and len(roles) > 1:
        raise MigrationFileError(
            f"Conflicting SQL migration files for {name}: cannot mix .sql with .up/.down "
            f"({', '.join(shown)})",
            file=shown[0],
            hint="Keep either NAME.sql or the NAME.up.sql / NAME.down.sql pair.",
        )
    if "down" in by_role and "up" not in by_role:
        raise MigrationFileError(
            f"Found .down.sql without matching .up.sql for {name}",
            file=_display(by_role["down"], base_dir),
            hint=f"Add {name}.up.sql, or remove the .down.sql file.",
        )
    main = by_role.get("up") or by_role["plain"]
    if len(name) > MAX_NAME_LENGTH:
        raise MigrationFileError(
            f"the migration name is {len(name)} characters; pgmigrations.name holds at most 255",
            file=_display(main, base_dir),
        )
    down = by_role.get("down")
    return _read(
        name,
        main,
        base_dir=base_dir,
        down_file=down,
        whole_file_is_up=main is by_role.get("up"),
    )


def _read(
    name: str, path: Path, *, base_dir: Path, down_file: Path | None, whole_file_is_up: bool
) -> MigrationFile:
    shown = _display(path, base_dir)
    text = _text(path, shown)
    kind = _kind(path)
    assert kind is not None
    if kind is Kind.JS:
        return MigrationFile(
            name=name, path=shown, abspath=path, kind=kind, checksum=checksum(text)
        )
    section = statements.Section(text, 0) if whole_file_is_up else statements.up_section(text)
    parsed, problem = _parse(text, section)
    if down_file is not None:
        down_text = _text(down_file, _display(down_file, base_dir))
        down_parsed, down_problem = _parse(down_text, statements.Section(down_text, 0))
    else:
        down_section = statements.down_section(text)
        down_parsed, down_problem = _parse(text, down_section) if down_section else ((), None)
    has_down = down_file is not None or statements.down_section(text) is not None
    return MigrationFile(
        name=name,
        path=shown,
        abspath=path,
        kind=kind,
        checksum=checksum(text),
        statements=parsed,
        no_transaction_directive=bool(statements.NO_TRANSACTION_DIRECTIVE.search(section.text)),
        down_path=_display(down_file, base_dir) if down_file else None,
        problem=problem,
        down_statements=down_parsed if has_down else None,
        down_problem=down_problem,
    )


def _text(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MigrationFileError(
            f"not UTF-8 text (byte {exc.start})", file=shown, hint="Save the file as UTF-8."
        ) from exc
    except OSError as exc:
        raise MigrationFileError(f"cannot read: {exc.strerror}", file=shown) from exc


def _parse(text: str, section: statements.Section) -> tuple[tuple[Statement, ...], Problem | None]:
    try:
        return statements.split(text, section), None
    except statements.SqlProblem as exc:
        return (), exc.problem


def _display(path: Path, base_dir: Path) -> str:
    """The path as users see it: relative to the manifest's folder (already resolved)."""
    try:
        return path.relative_to(base_dir).as_posix()
    except ValueError:
        try:
            return path.resolve().relative_to(base_dir).as_posix()
        except ValueError:
            return str(path)
